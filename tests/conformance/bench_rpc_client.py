"""The load generator of scripts/bench: the real oslo.messaging RPC client as zun-api
uses it (zun's serializer chain, a zun RequestContext), calling or casting the no-op
method of the server `[DEFAULT] host` of CONFIG_FILE's broker.

    python bench_rpc_client.py CONFIG_FILE SERVER_HOST

Prints {"ready": true} after a connection warm-up, then reads one JSON command per
line on stdin and answers one JSON line each:
- {"mode": "call", "concurrency": C, "seconds": S}: C green threads calling `noop`
  back to back for S seconds -> calls, elapsed_s, calls_per_s, p50_ms, p99_ms,
  client_cpu_s, errors;
- {"mode": "cast", "count": N, "concurrency": C}: N `noop` casts -> casts, elapsed_s.
"""
import sys

import zun.cmd  # noqa: F401  (eventlet monkey-patching first, as zun-api does)

import json
import resource
import time

import eventlet
from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_messaging as messaging

from zun.common import context as zun_context
from zun.common import rpc as zun_rpc
from zun.common import service as zun_service
from zun.objects import base as objects_base

CONF = cfg.CONF


def make_ctx():
    return zun_context.make_context(
        user_id="9f8e7d6c5b4a49382716a5b4c3d2e1f0", project_id="6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b",
        roles=["member"], is_admin=False, auth_token="tok-bench",
        request_id=oslo_context.generate_request_id())


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentile(sorted_v, q):
    if not sorted_v:
        return 0.0
    i = min(len(sorted_v) - 1, max(0, int(round(q * (len(sorted_v) - 1)))))
    return sorted_v[i]


def run_calls(client, concurrency, seconds):
    lat = []
    errors = [0]
    deadline = time.monotonic() + seconds

    def worker():
        ctx = make_ctx()
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                client.call(ctx, "noop")
            except Exception:
                errors[0] += 1
                continue
            lat.append(time.perf_counter() - t)

    c0 = cpu_s()
    start = time.monotonic()
    pool = eventlet.GreenPool(concurrency)
    for _ in range(concurrency):
        pool.spawn_n(worker)
    pool.waitall()
    elapsed = time.monotonic() - start
    lat.sort()
    return {"calls": len(lat), "elapsed_s": elapsed, "calls_per_s": len(lat) / elapsed,
            "p50_ms": percentile(lat, 0.50) * 1000, "p99_ms": percentile(lat, 0.99) * 1000,
            "client_cpu_s": cpu_s() - c0, "errors": errors[0]}


def run_casts(client, count, concurrency):
    left = [count]

    def worker():
        ctx = make_ctx()
        while left[0] > 0:
            left[0] -= 1
            client.cast(ctx, "noop")

    start = time.monotonic()
    pool = eventlet.GreenPool(concurrency)
    for _ in range(concurrency):
        pool.spawn_n(worker)
    pool.waitall()
    return {"casts": count, "elapsed_s": time.monotonic() - start}


def main():
    conf_file, host = sys.argv[1], sys.argv[2]
    zun_service.prepare_service(["zun-bench-client", "--config-file", conf_file])
    target = messaging.Target(topic=CONF.compute.topic, server=host)
    serializer = zun_rpc.RequestContextSerializer(objects_base.ZunObjectSerializer())
    client = zun_rpc.get_client(target, serializer=serializer).prepare(timeout=60)
    if "--no-warmup" not in sys.argv:
        for _ in range(20):
            client.call(make_ctx(), "noop")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        try:
            if req["mode"] == "call":
                out = run_calls(client, int(req.get("concurrency", 1)), float(req.get("seconds", 3)))
            else:
                out = run_casts(client, int(req["count"]), int(req.get("concurrency", 1)))
        except Exception as e:  # reported to the driver as data
            out = {"error": repr(e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
