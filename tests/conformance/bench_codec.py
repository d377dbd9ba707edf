"""The Python side of scripts/bench's codec row: the real receive and reply chains of
zun-compute (kombu + oslo.messaging + zun's serializers, from the conformance venv) on
the captured bodies in tests/fixtures/oslo.

    python bench_codec.py [--seconds S] [--repeat R]

Prints one JSON object: messages per CPU-second of this thread (time.thread_time, so
other load on the machine does not count; median of R runs of S CPU-seconds) for
- create_decode / show_decode: kombu's JSON body decode, oslo's envelope decode,
  context unpacking, zun's context and object deserialization (a typed, field-coerced
  Container), as the RPC server and dispatcher do before calling the method;
- reply_encode: a Container back to its primitive, the reply message with its unique
  id, the 2.0 envelope, kombu's JSON body encode, as the server does to reply.
"""
import zun.cmd  # noqa: F401  (eventlet monkey-patching first, as zun-compute does)

import argparse
import json
import os
import statistics
import sys
import time

from kombu import serialization as kombu_ser
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import common as rpc_common

from zun.common import rpc_service
from zun import objects  # noqa: F401  (registers the object classes)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "oslo")


def load(name):
    with open(os.path.join(FIXTURES, name)) as f:
        fx = json.load(f)
    props = fx["properties"]
    return fx["body_raw"].encode("utf-8"), props["content_type"], props["content_encoding"]


def make_decoder(serializer):
    def full_decode(body, ctype, cenc):
        # kombu: Message.payload
        payload = kombu_ser.loads(body, ctype, cenc, accept=None)
        # oslo impl_rabbit: RabbitMessage(deserialize_msg(payload))
        message = rpc_common.deserialize_msg(payload)
        # oslo amqpdriver AMQPListener.__call__: context out of the message
        ctxt = rpc_amqp.unpack_context(message)
        ctxt_dict = ctxt.to_dict()
        # oslo rpc dispatcher: context and every argument through zun's serializer
        zctx = serializer.deserialize_context(ctxt_dict)
        args = {}
        for name, arg in message.get("args", {}).items():
            args[name] = serializer.deserialize_entity(zctx, arg)
        return zctx, message["method"], args
    return full_decode


def make_encoder(serializer, zctx):
    def reply_encode(container, msg_id):
        # oslo rpc dispatcher: the result through zun's serializer
        result = serializer.serialize_entity(zctx, container)
        # oslo amqpdriver AMQPIncomingMessage._send_reply
        msg = {"result": result, "failure": None, "ending": True, "_msg_id": msg_id}
        rpc_amqp._add_unique_id(msg)
        envelope = rpc_common.serialize_msg(msg)
        # kombu Producer.publish: the body
        _ctype, _cenc, body = kombu_ser.dumps(envelope, serializer="json")
        return body if isinstance(body, bytes) else body.encode("utf-8")
    return reply_encode


def rate(secs, repeat, fn):
    for _ in range(200):
        fn()
    rates = []
    for _ in range(max(1, repeat)):
        n = 0
        start = time.thread_time()
        while time.thread_time() - start < secs:
            for _ in range(20):
                fn()
            n += 20
        rates.append(n / (time.thread_time() - start))
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    serializer = rpc_service._init_serializer()
    decode = make_decoder(serializer)
    create = load("container_create_cast.json")
    show = load("container_show_call_request.json")

    # The reply's Container, decoded once outside the timed loop.
    rbody, rctype, rcenc = load("container_show_reply_success.json")
    reply = rpc_common.deserialize_msg(kombu_ser.loads(rbody, rctype, rcenc, accept=None))
    zctx, _method, show_args = decode(*show)
    container = serializer.deserialize_entity(zctx, reply["result"])
    assert type(container).__name__ == "Container", type(container)
    assert type(decode(*create)[2]["container"]).__name__ == "Container"
    show_msg_id = json.loads(json.loads(show[0])["oslo.message"])["_msg_id"]
    encode = make_encoder(serializer, zctx)
    encoded = encode(container, show_msg_id)

    out = {
        "impl": "python",
        "create_decode_per_s": rate(a.seconds, a.repeat, lambda: decode(*create)),
        "show_decode_per_s": rate(a.seconds, a.repeat, lambda: decode(*show)),
        "reply_encode_per_s": rate(a.seconds, a.repeat, lambda: encode(container, show_msg_id)),
        "reply_bytes": len(encoded),
        "python": sys.version.split()[0],
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
