"""The Python reference server of scripts/bench: a real oslo.messaging RPC server set up
exactly as zun-compute sets up its own (eventlet executor, zun's serializer chain from
zun.common.rpc_service, DefaultRPCAccessPolicy), serving a no-op endpoint.

    python bench_oslo_server.py CONFIG_FILE [--expect N]

Prints {"ready": true, "pid": ...} once started. With --expect N it prints
{"drained": N, "ready_to_last_s", "cpu_ticks_since_ready", "first_to_last_s", "cpu_ticks"}
when the N-th request ran: wall time and utime+stime (/proc/self/stat) from the start
of the server, and from the first request, to the N-th.
Stops when stdin closes.
"""
import sys

import zun.cmd  # noqa: F401  (eventlet monkey-patching first, as zun-compute does)

import json
import os
import time

import eventlet
from oslo_config import cfg
import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher

from zun.common import rpc_service
from zun.common import service as zun_service
from zun import objects  # noqa: F401  (registers the object classes)

CONF = cfg.CONF


def cpu_ticks():
    with open("/proc/self/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3; utime and stime are fields 14 and 15
    return int(rest[11]) + int(rest[12])


class Endpoint(object):
    def __init__(self, expect):
        self.expect = expect
        self.count = 0
        self.first = None
        self.ready = None

    def _seen(self):
        self.count += 1
        if self.count == 1:
            self.first = (time.monotonic(), cpu_ticks())
        if self.expect and self.count == self.expect:
            t0, c0 = self.first
            tr, cr = self.ready
            now, cpu = time.monotonic(), cpu_ticks()
            print(json.dumps({"drained": self.count, "first_to_last_s": now - t0, "cpu_ticks": cpu - c0,
                              "ready_to_last_s": now - tr, "cpu_ticks_since_ready": cpu - cr}), flush=True)

    def noop(self, ctxt, **kwargs):
        self._seen()
        return None

    def echo_args(self, ctxt, **kwargs):
        self._seen()
        return kwargs


def main():
    conf_file = sys.argv[1]
    expect = int(sys.argv[sys.argv.index("--expect") + 1]) if "--expect" in sys.argv else 0
    zun_service.prepare_service(["zun-compute", "--config-file", conf_file])

    endpoint = Endpoint(expect)
    target = messaging.Target(topic=CONF.compute.topic, server=CONF.host)
    transport = messaging.get_rpc_transport(CONF)
    server = messaging.get_rpc_server(transport, target, [endpoint], executor="eventlet",
                                      serializer=rpc_service._init_serializer(),
                                      access_policy=dispatcher.DefaultRPCAccessPolicy)
    # The drain clock starts as the server starts (connection, topology, consumers).
    endpoint.ready = (time.monotonic(), cpu_ticks())
    server.start()
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)

    done = eventlet.event.Event()

    def watch_stdin():
        sys.stdin.read()

    def stdin_closed():
        eventlet.tpool.execute(watch_stdin)
        done.send(True)

    eventlet.spawn(stdin_closed)
    done.wait()
    server.stop()
    server.wait()
    print(json.dumps({"stopped": True, "handled": endpoint.count}), flush=True)


if __name__ == "__main__":
    main()
