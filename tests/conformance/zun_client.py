"""The real zun code, driven the way zun-api drives zun-compute, for the conformance tests.

Run with the conformance venv's python (zun==18.0.0, oslo.messaging from PyPI):

    python zun_client.py CONFIG_FILE [--no-db]

It reads one JSON command per line on stdin and writes one JSON answer per line on
stdout: {"ok": <result>} or {"error": {"class", "module", "message", "code", ...}}.
--no-db patches zun-api's `check_container_host` lookup so RPCs go out without a
database (wire tests only).
"""
import sys

# Answers go to the real stdout; everything else (oslo.log's default handler included,
# e.g. broker reconnect warnings) goes to stderr, so the JSON lines stay clean.
ANSWERS = sys.stdout
sys.stdout = sys.stderr

import zun.cmd  # noqa: F401  (eventlet monkey-patching must come first, as in zun-api)

import json
import traceback

from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_messaging as messaging

from zun.common import context as zun_context
from zun.common import exception
from zun.common import rpc as zun_rpc
from zun.common import service as zun_service
from zun.compute import rpcapi
from zun import objects
from zun.objects import base as objects_base

CONF = cfg.CONF


def make_ctx(params):
    return zun_context.make_context(
        user_id=params.get("user_id", "9f8e7d6c5b4a49382716a5b4c3d2e1f0"),
        project_id=params.get("project_id", "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b"),
        roles=params.get("roles", ["member"]),
        is_admin=params.get("is_admin", False),
        auth_token=params.get("auth_token", "tok-secret-do-not-log"),
        request_id=params.get("request_id") or oslo_context.generate_request_id(),
    )


def to_jsonable(v):
    if hasattr(v, "obj_to_primitive"):
        return v.obj_to_primitive()
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: to_jsonable(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def container_fields(c):
    out = {}
    for name in c.fields:
        if name in ("pci_devices", "exec_instances", "registry"):
            continue
        if c.obj_attr_is_set(name):
            out[name] = to_jsonable(getattr(c, name))
    return out


def error_dict(e):
    # oslo rebuilds remote exceptions as subclasses named <Class>_Remote whose str()
    # carries the remote traceback after the message; report the class zun-api catches.
    cls = type(e)
    if cls.__name__.endswith("_Remote"):
        cls = cls.__bases__[0]
    d = {"class": cls.__name__, "module": cls.__module__, "message": str(e).split("\n")[0],
         "full": str(e)}
    if isinstance(e, messaging.RemoteError):
        d["exc_type"] = e.exc_type
        d["value"] = e.value
    code = getattr(e, "code", None)
    if isinstance(code, int):
        d["code"] = code
    return d


class _AnyHost(str):
    """Equal to every host: with --no-db, zun-api's host check sees every host up."""

    def __eq__(self, other):
        return True

    def __hash__(self):
        return 0


class _UpService(object):
    host = _AnyHost("*")


class Driver:
    def __init__(self, no_db):
        if no_db:
            from zun.api import servicegroup
            objects.ZunService.list_by_binary = classmethod(lambda cls, ctx, binary: [_UpService()])
            servicegroup.ServiceGroup.service_is_up = lambda self, member: True

    def client(self, params):
        target = messaging.Target(topic=params.get("topic", "zun-compute"), server=params.get("server"))
        serializer = zun_rpc.RequestContextSerializer(objects_base.ZunObjectSerializer())
        client = zun_rpc.get_client(target, serializer=serializer)
        kw = {"timeout": params.get("timeout", 30)}
        if params.get("call_monitor_timeout"):
            kw["call_monitor_timeout"] = params["call_monitor_timeout"]
        return client.prepare(**kw)

    # --- raw oslo RPC -------------------------------------------------------
    def cmd_call(self, p):
        ctx = make_ctx(p)
        return to_jsonable(self.client(p).call(ctx, p["method"], **p.get("kwargs", {})))

    def cmd_cast(self, p):
        ctx = make_ctx(p)
        self.client(p).cast(ctx, p["method"], **p.get("kwargs", {}))
        return None

    # --- zun-api's own paths --------------------------------------------------
    def new_container(self, ctx, fields):
        return objects.Container(ctx, **fields)

    def cmd_rpcapi_create(self, p):
        """zun-api's POST /containers: insert the row (unless no_db), action_start, cast."""
        ctx = make_ctx(p)
        fields = dict(p["fields"])
        c = self.new_container(ctx, fields)
        if p.get("write_db", True):
            c.create(ctx)
            objects.ContainerAction.action_start(ctx, c.uuid, "create", want_result=False)
        api = rpcapi.API(context=ctx)
        requested_volumes = p.get("requested_volumes", {c.uuid: []})
        if p.get("volumes"):
            requested_volumes = self.build_requested_volumes(ctx, c, p["volumes"])
        api.container_create(ctx, p["host"], c, p.get("limits", {}), p.get("requested_networks", []),
                             requested_volumes, p.get("run", True), None)
        return {"uuid": c.uuid, "request_id": ctx.request_id}

    def build_requested_volumes(self, ctx, c, mounts):
        """zun-api's `_build_requested_volumes`, with the Cinder volume looked up by the
        test (`cinder_volume_id`, `auto_remove`) instead of through Cinder: a Volume row
        per mount, an unsaved VolumeMapping naming it."""
        out = {c.uuid: []}
        for m in mounts:
            d = {"cinder_volume_id": None, "auto_remove": False, "contents": None,
                 "user_id": ctx.user_id, "project_id": ctx.project_id}
            if m.get("type", "volume") == "bind":
                d["contents"] = m.get("source", "")
                d["volume_provider"] = "local"
            else:
                d["cinder_volume_id"] = m["cinder_volume_id"]
                d["auto_remove"] = bool(m.get("auto_remove", False))
                d["volume_provider"] = "cinder"
            vol = objects.Volume(ctx, **d)
            vol.create(ctx)
            d["volume_id"] = vol.id
            d["container_path"] = m["destination"]
            out[c.uuid].append(objects.VolumeMapping(ctx, **d))
        return out

    def cmd_volume_mappings(self, p):
        """zun's own objects reading back what zun-compute wrote: VolumeMapping.list_by_container
        with each mapping's volume attributes (lazy-loaded from the volume row)."""
        ctx = make_ctx(p)
        out = []
        for vm in objects.VolumeMapping.list_by_container(ctx, p["uuid"]):
            row = {k: getattr(vm, k) for k in ("uuid", "container_uuid", "container_path", "volume_id",
                                                "volume_provider", "cinder_volume_id", "auto_remove",
                                                "connection_info", "host", "project_id", "user_id")}
            row["volume_uuid"] = vm.volume.uuid
            out.append(row)
        return out

    def cmd_volume_exists(self, p):
        ctx = make_ctx(p)
        try:
            objects.Volume.get_by_id(ctx, p["id"])
            return True
        except exception.VolumeNotFound:
            return False

    def cmd_rpcapi_delete(self, p):
        ctx = make_ctx(p)
        if p.get("write_db", True):
            c = objects.Container.get_by_uuid(ctx, p["uuid"])
            if p.get("host"):
                c.host = p["host"]
        else:
            c = self.new_container(ctx, dict(p["fields"]))
            c.host = p.get("host")
            c.obj_reset_changes()
        c.status = "Deleting"
        if p.get("write_db", True):
            objects.ContainerAction.action_start(ctx, c.uuid, "delete", want_result=False)
        rpcapi.API(context=ctx).container_delete(ctx, c, p.get("force", False))
        return {"uuid": c.uuid, "request_id": ctx.request_id}

    def cmd_rpcapi(self, p):
        """Any other rpcapi method on a container loaded from the DB, with its action row."""
        ctx = make_ctx(p)
        c = objects.Container.get_by_uuid(ctx, p["uuid"])
        for k, v in p.get("set", {}).items():
            setattr(c, k, v)
        if p.get("save"):
            c.save(ctx)
        if p.get("action"):
            objects.ContainerAction.action_start(ctx, c.uuid, p["action"], want_result=False)
        api = rpcapi.API(context=ctx)
        res = getattr(api, p["method"])(ctx, c, *p.get("args", []), **p.get("kwargs", {}))
        return {"result": to_jsonable(res), "request_id": ctx.request_id}

    # --- capsules, as zun-api 18's POST/DELETE /capsules build them -------------------
    def cmd_capsule_create(self, p):
        """The capsule row, then its members (capsule_id = the capsule's id, init containers
        first), the create action, and the cast of container_create with the Capsule.
        `list_init` / `list_containers` (index lists) set the object's own member lists,
        as a hostile sender could; zun-api leaves them unset."""
        ctx = make_ctx(p)
        capsule = objects.Capsule(ctx, **p.get("fields", {}))
        capsule.project_id = ctx.project_id
        capsule.user_id = ctx.user_id
        capsule.status = "Creating"
        capsule.create(ctx)
        made = {}
        for key, cls in (("init_containers", objects.CapsuleInitContainer), ("containers", objects.CapsuleContainer)):
            made[key] = []
            for spec in p.get(key, []):
                d = dict(spec)
                d.update(capsule_id=capsule.id, project_id=ctx.project_id, user_id=ctx.user_id)
                d.setdefault("status", "Creating")
                m = cls(ctx, **d)
                m.create(ctx)
                made[key].append(m)
        for key, order in (("init_containers", p.get("list_init")), ("containers", p.get("list_containers"))):
            if order is not None:
                setattr(capsule, key, [made[key][i] for i in order])
                capsule.obj_reset_changes([key])
        objects.ContainerAction.action_start(ctx, capsule.uuid, "create", want_result=False)
        requested_volumes = p.get("requested_volumes", {})
        if p.get("volumes"):
            requested_volumes = self.build_capsule_volumes(ctx, made, p["volumes"])
        rpcapi.API(context=ctx).container_create(ctx, p["host"], capsule, {}, p.get("requested_networks", []),
                                                 requested_volumes, False, None)
        return {"uuid": capsule.uuid, "id": capsule.id, "request_id": ctx.request_id,
                "init_containers": [m.uuid for m in made["init_containers"]],
                "containers": [m.uuid for m in made["containers"]]}

    def build_capsule_volumes(self, ctx, made, volumes):
        """zun-api's capsule `_build_requested_volumes`: a Volume row per volume, and per
        mount an unsaved VolumeMapping that names only the row, the path and the owner.
        `volumes`: [{"contents": base64 (a local volume; zun-api's own path makes Cinder
        ones), "mounts": [["containers"|"init_containers", index, path], ...]}]."""
        out = {}
        for v in volumes:
            vol = objects.Volume(ctx, volume_provider="local", contents=v["contents"], auto_remove=False,
                                 cinder_volume_id=None, user_id=ctx.user_id, project_id=ctx.project_id)
            vol.create(ctx)
            for key, index, path in v["mounts"]:
                member = made[key][index]
                out.setdefault(member.uuid, []).append(objects.VolumeMapping(
                    ctx, container_path=path, user_id=ctx.user_id, project_id=ctx.project_id, volume_id=vol.id))
        return out

    def cmd_capsule_delete(self, p):
        ctx = make_ctx(p)
        capsule = objects.Capsule.get_by_uuid(ctx, p["uuid"])
        capsule.task_state = "container_deleting"
        capsule.save(ctx)
        objects.ContainerAction.action_start(ctx, capsule.uuid, "delete", want_result=False)
        rpcapi.API(context=ctx).container_delete(ctx, capsule)
        return {"uuid": capsule.uuid, "request_id": ctx.request_id}

    def cmd_capsule_members(self, p):
        """The capsule's members as zun-api reads them (status, reason, container_id)."""
        ctx = make_ctx(dict(p, is_admin=True))
        out = []
        for cls in (objects.CapsuleInitContainer, objects.CapsuleContainer):
            for m in cls.list_by_capsule_id(ctx, p["id"]):
                out.append({"type": cls.__name__, "uuid": m.uuid, "name": m.name, "status": m.status,
                            "status_reason": m.status_reason, "container_id": m.container_id})
        return out

    def cmd_capsule_get(self, p):
        ctx = make_ctx(dict(p, is_admin=True))
        try:
            c = objects.Capsule.get_by_uuid(ctx, p["uuid"])
        except exception.ContainerNotFound:
            return None
        return {"uuid": c.uuid, "status": c.status, "status_reason": c.status_reason, "host": c.host,
                "container_id": c.container_id, "task_state": c.task_state, "addresses": to_jsonable(c.addresses)}

    # --- reading the DB as zun-api does -------------------------------------------
    def cmd_get(self, p):
        ctx = make_ctx(dict(p, is_admin=True))
        try:
            c = objects.Container.get_by_uuid(ctx, p["uuid"])
        except exception.ContainerNotFound:
            return None
        return container_fields(c)

    def cmd_actions(self, p):
        ctx = make_ctx(dict(p, is_admin=True))
        out = []
        for a in objects.ContainerAction.get_by_container_uuid(ctx, p["uuid"]):
            events = objects.ContainerActionEvent.get_by_action(ctx, a.id)
            out.append({
                "action": a.action, "request_id": a.request_id, "message": a.message,
                "start_time": to_jsonable(a.start_time), "finish_time": to_jsonable(a.finish_time),
                "events": [{"event": e.event, "result": e.result, "traceback": e.traceback,
                            "start_time": to_jsonable(e.start_time), "finish_time": to_jsonable(e.finish_time)}
                           for e in events],
            })
        return out

    def cmd_services(self, p):
        from zun.api import servicegroup
        ctx = make_ctx(dict(p, is_admin=True))
        sg = servicegroup.ServiceGroup()
        return [{"host": s.host, "binary": s.binary, "report_count": s.report_count,
                 "up": sg.service_is_up(s), "disabled": s.disabled,
                 "availability_zone": s.availability_zone}
                for s in objects.ZunService.list_by_binary(ctx, "zun-compute")]

    def cmd_compute_node(self, p):
        ctx = make_ctx(dict(p, is_admin=True))
        n = objects.ComputeNode.get_by_name(ctx, p["hostname"])
        return {k: to_jsonable(getattr(n, k)) for k in n.fields if n.obj_attr_is_set(k)}


def main():
    conf_file = sys.argv[1]
    no_db = "--no-db" in sys.argv[2:]
    zun_service.prepare_service(["zun-conformance", "--config-file", conf_file])

    driver = Driver(no_db)
    print(json.dumps({"ready": True}), file=ANSWERS, flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            fn = getattr(driver, "cmd_" + req.pop("cmd"))
            out = {"ok": fn(req)}
        except Exception as e:  # every failure goes back to the Rust test as data
            out = {"error": error_dict(e), "traceback": traceback.format_exc()}
        print(json.dumps(out, default=str), file=ANSWERS, flush=True)


if __name__ == "__main__":
    main()
