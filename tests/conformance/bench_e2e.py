"""The zun-api side of scripts/bench's end-to-end and footprint rows: N container
creates issued through the real zun code exactly as zun-api issues them (the row and
its "create" action written by zun.objects, then zun.compute.rpcapi's
container_create cast), then the database polled until every row is settled.

    python bench_e2e.py CONFIG_FILE HOST --n N [--image IMG] [--run 1|0]
                        [--timeout S] [--prefix P]

The rows and actions are written first (not timed); the clock starts at the first cast
and stops when all N rows are Running (run=1) or Created (run=0) with no task_state.
Prints one JSON object: n, casts_s (time to send the casts), elapsed_s, statuses
(when not all settled), uuids.
"""
import sys

import zun.cmd  # noqa: F401  (eventlet monkey-patching first, as zun-api does)

import argparse
import json
import time
import uuid as uuidlib

from oslo_config import cfg
from oslo_context import context as oslo_context
import sqlalchemy as sa

from zun.common import context as zun_context
from zun.common import service as zun_service
from zun.compute import rpcapi
from zun import objects

CONF = cfg.CONF
PROJECT = "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b"
USER = "9f8e7d6c5b4a49382716a5b4c3d2e1f0"


def make_ctx():
    return zun_context.make_context(user_id=USER, project_id=PROJECT, roles=["member"], is_admin=False,
                                    auth_token="tok-bench", request_id=oslo_context.generate_request_id())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("conf")
    ap.add_argument("host")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--image", default="127.0.0.1:5000/busybox:latest")
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--prefix", default="bench")
    a = ap.parse_args()
    zun_service.prepare_service(["zun-bench-e2e", "--config-file", a.conf])

    # zun-api's POST /containers, up to the cast: row + action, per container.
    pending = []
    for i in range(a.n):
        ctx = make_ctx()
        c = objects.Container(ctx, uuid=str(uuidlib.uuid4()), name="%s-%d" % (a.prefix, i), image=a.image,
                              image_pull_policy="ifnotpresent", command=["sleep", "3600"], memory="64", cpu=0.5,
                              environment={"K": "V"}, labels={"app": "bench"}, status="Creating",
                              project_id=PROJECT, user_id=USER, interactive=False, tty=False)
        c.create(ctx)
        objects.ContainerAction.action_start(ctx, c.uuid, "create", want_result=False)
        # zun-api builds its rpcapi per request: the cast carries this request's context.
        pending.append((ctx, c, rpcapi.API(context=ctx)))
    uuids = [c.uuid for _, c, _ in pending]

    engine = sa.create_engine(CONF.database.connection)
    want = "Running" if a.run else "Created"
    q = sa.text("SELECT status, task_state, COUNT(*) FROM container WHERE uuid IN :u GROUP BY status, task_state"
                ).bindparams(sa.bindparam("u", expanding=True))

    start = time.monotonic()
    for ctx, c, api in pending:
        api.container_create(ctx, a.host, c, {}, [], {c.uuid: []}, bool(a.run), None)
    casts_s = time.monotonic() - start
    statuses = {}
    deadline = start + a.timeout
    done = False
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(q, {"u": uuids}).fetchall()
            conn.commit()
            statuses = {"%s/%s" % (s, t): n for s, t, n in rows}
            if statuses.get("%s/None" % want, 0) == a.n:
                done = True
                break
            # Settled, some in Error: stop waiting (reported in statuses).
            if statuses.get("%s/None" % want, 0) + statuses.get("Error/None", 0) == a.n:
                break
            time.sleep(0.05)
    elapsed = time.monotonic() - start
    out = {"n": a.n, "run": bool(a.run), "casts_s": casts_s, "elapsed_s": elapsed, "done": done, "uuids": uuids,
           "errors": statuses.get("Error/None", 0)}
    if not done:
        out["statuses"] = statuses
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
