"""A real oslo.messaging RPC server wired like zun-compute (eventlet executor, zun's
serializer, DefaultRPCAccessPolicy), for topology and side-by-side tests.

    python oslo_server.py CONFIG_FILE HOST

Prints {"ready": true} when consuming; stops on SIGTERM or when stdin closes.
"""
import sys

import zun.cmd  # noqa: F401  (eventlet monkey-patching first, as zun-compute does)

import json
import signal

import eventlet
from oslo_config import cfg
import oslo_messaging as messaging

from zun.common import rpc as zun_rpc
from zun.common import service as zun_service
from zun.objects import base as objects_base
from zun import objects

CONF = cfg.CONF


class Endpoint(object):
    def echo_args(self, ctxt, **kwargs):
        return kwargs

    def noop(self, ctxt, **kwargs):
        return None


def main():
    conf_file, host = sys.argv[1], sys.argv[2]
    zun_service.prepare_service(["oslo-server", "--config-file", conf_file])

    target = messaging.Target(topic=CONF.compute.topic, server=host)
    serializer = zun_rpc.RequestContextSerializer(objects_base.ZunObjectSerializer())
    server = messaging.get_rpc_server(zun_rpc.TRANSPORT, target, [Endpoint()], executor="eventlet",
                                      serializer=serializer,
                                      access_policy=messaging.DefaultRPCAccessPolicy)
    server.start()
    print(json.dumps({"ready": True}), flush=True)
    stop = eventlet.event.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.send(True) if not stop.ready() else None)

    def watch_stdin():
        sys.stdin.read()
        if not stop.ready():
            stop.send(True)

    eventlet.spawn(eventlet.tpool.execute, watch_stdin)
    stop.wait()
    server.stop()
    server.wait()


if __name__ == "__main__":
    main()
