"""Read back, through the real zun 18.0.0 objects, what zun-compute-rs' store wrote.

Run with the conformance venv's python (zun==18.0.0 + pymysql), by tests/store_mariadb.rs:

  store_readback.py --config-file ZUN_CONF read --uuid U --request-id R --host H
      Container.get_by_uuid, ContainerAction.get_by_request_id, ContainerActionEvent.get_by_action,
      ZunService.list_by_binary('zun-compute') (with ServiceGroup().service_is_up) and
      ComputeNode.get_by_name, printed as one JSON object.
  store_readback.py --config-file ZUN_CONF api-create --uuid U --request-id R
      What zun-api does before a create cast: objects.Container(...).create() and
      ContainerAction.action_start(); prints the row as Container.get_by_uuid sees it.
  store_readback.py --config-file ZUN_CONF service-wait --host H --expect up|down --deadline S
      Polls zun-api's own servicegroup verdict (service_down_time from the config file) until
      it equals --expect or the deadline passes; prints {"reached": bool, "elapsed": seconds}.

The last line of stdout is the JSON result.
"""
import zun.cmd  # noqa: F401  (eventlet monkey patching must come first, as in zun's services)

import argparse
import datetime
import json
import sys
import time

import zun.conf
from zun.api import servicegroup
from zun.common import context as zun_context
from zun import objects

CONF = zun.conf.CONF


def jsonable(v):
    if isinstance(v, datetime.datetime):
        return v.strftime('%Y-%m-%dT%H:%M:%S')
    if isinstance(v, (set, frozenset, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def fields_of(obj):
    return {f: jsonable(getattr(obj, f)) for f in obj.fields if obj.obj_attr_is_set(f)}


def admin():
    return zun_context.get_admin_context(all_projects=True)


def cmd_read(args):
    ctx = admin()
    out = {}
    if args.uuid:
        c = objects.Container.get_by_uuid(ctx, args.uuid)
        out['container'] = c.obj_to_primitive()
        # The typed values zun sees (JsonFields decoded, booleans, ...).
        out['container_fields'] = {
            k: jsonable(getattr(c, k)) for k in (
                'status', 'task_state', 'host', 'memory', 'cpu', 'addresses', 'exposed_ports',
                'annotations', 'labels', 'environment', 'started_at', 'auto_remove', 'disk')
        }
    if args.uuid and args.request_id:
        a = objects.ContainerAction.get_by_request_id(ctx, args.uuid, args.request_id)
        out['action'] = fields_of(a) if a else None
        if a:
            events = objects.ContainerActionEvent.get_by_action(ctx, a.id)
            out['events'] = sorted((fields_of(e) for e in events), key=lambda e: e['id'])
    services = objects.ZunService.list_by_binary(ctx, 'zun-compute')
    sg = servicegroup.ServiceGroup()
    out['services'] = [dict(fields_of(s), is_up=sg.service_is_up(s)) for s in services]
    if args.host:
        try:
            node = objects.ComputeNode.get_by_name(ctx, args.host)
            out['compute_node'] = fields_of(node)
            out['compute_node']['numa_topology'] = node.numa_topology._to_dict()
        except Exception as e:  # noqa: BLE001  (report, the Rust side asserts)
            out['compute_node_error'] = '%s: %s' % (type(e).__name__, e)
    return out


def cmd_api_create(args):
    ctx = zun_context.make_context(
        user_id='c9d8e7f6a5b44c3d9e2f1a0b9c8d7e6f',
        project_id='5f3e1c2a9b8d4e7f8a6b5c4d3e2f1a0b',
        request_id=args.request_id, is_admin=False)
    c = objects.Container(
        ctx, uuid=args.uuid, name='from-zun-api', image='busybox',
        image_pull_policy='ifnotpresent', command=['sleep', '300'], memory='64',
        cpu=0.5, environment={'K': 'V'}, labels={'app': 'acc'}, image_driver='docker',
        status='Creating', project_id=ctx.project_id, user_id=ctx.user_id,
        auto_remove=False, interactive=False, tty=False, privileged=False,
        auto_heal=False, restart_policy={}, security_groups=[],
        exposed_ports={'80/tcp': {}}, healthcheck={}, annotations={'a': 'b'})
    c.create(ctx)
    objects.ContainerAction.action_start(ctx, args.uuid, 'create', want_result=False)
    got = objects.Container.get_by_uuid(admin(), args.uuid)
    return {'container': got.obj_to_primitive()}


def cmd_service_wait(args):
    sg = servicegroup.ServiceGroup()
    start = time.monotonic()
    want = args.expect == 'up'
    last = None
    while True:
        services = [s for s in objects.ZunService.list_by_binary(admin(), 'zun-compute')
                    if s.host == args.host]
        last = sg.service_is_up(services[0]) if services else None
        elapsed = time.monotonic() - start
        if last is want:
            return {'reached': True, 'elapsed': elapsed, 'is_up': last,
                    'service_down_time': CONF.service_down_time}
        if elapsed > args.deadline:
            return {'reached': False, 'elapsed': elapsed, 'is_up': last,
                    'service_down_time': CONF.service_down_time}
        time.sleep(0.2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--config-file', required=True)
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('read')
    r.add_argument('--uuid')
    r.add_argument('--request-id')
    r.add_argument('--host')
    a = sub.add_parser('api-create')
    a.add_argument('--uuid', required=True)
    a.add_argument('--request-id', required=True)
    w = sub.add_parser('service-wait')
    w.add_argument('--host', required=True)
    w.add_argument('--expect', choices=['up', 'down'], required=True)
    w.add_argument('--deadline', type=float, default=30.0)
    args = p.parse_args()

    CONF(['--config-file', args.config_file], project='zun')
    result = {'read': cmd_read, 'api-create': cmd_api_create,
              'service-wait': cmd_service_wait}[args.cmd](args)
    sys.stdout.write(json.dumps(result, sort_keys=True) + '\n')


if __name__ == '__main__':
    main()
