"""The zun-api side of the demo, with zun's own code (zun==18.0.0 in the conformance venv):
insert the container row and the 'create' action with zun.objects, cast container_create
with zun.compute.rpcapi.API (the real oslo wire), wait for the worker to run it, then call
container_show and print what it returns.

    VENV/bin/python scripts/zun-api-demo.py ZUN_CONF HOST IMAGE
"""
import sys

import zun.cmd  # noqa: F401  (eventlet first, as zun-api does)

import time

from oslo_context import context as oslo_context

from zun.common import context as zun_context
from zun.common import service as zun_service
from zun.compute import rpcapi
from zun import objects


def main():
    conf, host, image = sys.argv[1], sys.argv[2], sys.argv[3]
    zun_service.prepare_service(["zun-api-demo", "--config-file", conf])
    ctx = zun_context.make_context(user_id="demo", project_id="demo", roles=["member"],
                                   request_id=oslo_context.generate_request_id())
    c = objects.Container(ctx, name="zun-rs-demo", image=image, image_pull_policy="always",
                          command=["sh", "-c", "echo hello from zun-compute-rs; exec sleep 3600"],
                          memory="64", cpu=0.5, status="Creating", labels={"zun-rs-demo": "1"},
                          project_id="demo", user_id="demo", interactive=False, tty=False)
    c.create(ctx)
    objects.ContainerAction.action_start(ctx, c.uuid, "create", want_result=False)
    api = rpcapi.API(context=ctx)
    t0 = time.time()
    api.container_create(ctx, host, c, {}, [], {c.uuid: []}, True, None)
    print("zun-api: container_create cast for %s to zun-compute.%s" % (c.uuid, host), flush=True)
    deadline = t0 + 120
    while True:
        row = objects.Container.get_by_uuid(ctx, c.uuid)
        if row.task_state is None and row.status in ("Running", "Error"):
            break
        if time.time() > deadline:
            print("zun-api: gave up waiting; last status %s/%s" % (row.status, row.task_state))
            return 1
        time.sleep(0.1)
    print("zun-api: %s reached %s in %.2f s" % (c.uuid, row.status, time.time() - t0), flush=True)
    if row.status != "Running":
        print("zun-api: status_reason: %s" % row.status_reason)
        return 1
    shown = api.container_show(ctx, row)
    logs = api.container_logs(ctx, row, True, True, False, "all", None)
    print("container_show: uuid=%s name=%s status=%s status_detail=%s host=%s docker_id=%s image=%s"
          % (shown.uuid, shown.name, shown.status, shown.status_detail, shown.host,
             (shown.container_id or "")[:12], shown.image))
    print("container_logs: %s" % logs.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
