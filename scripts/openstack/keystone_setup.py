#!/usr/bin/env python3
"""Register in a bootstrapped Keystone what the zun-compute-rs test stack needs.

    keystone_setup.py KEYSTONE_URL PLACEMENT_URL NEUTRON_URL ZUN_API_URL

As admin/admin (project admin): project `service`; role `service`; users
placement, neutron, zun, cinder and glance (password = name), each with roles
admin and service in project `service`; catalog services placement (placement),
neutron (network), zun (container), cinderv3 (volumev3, URL from ZUNRS_CINDER_URL)
and glance (image, URL from ZUNRS_OS_GLANCE_URL), each with a public, internal and
admin endpoint in RegionOne. Every step checks first, so running it again changes nothing.
Standard library only (runs with any python3).
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

KS, PLACEMENT, NEUTRON, ZUN = sys.argv[1:5]
REGION = 'RegionOne'


def request(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(KS + path, data=data, method=method)
    req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as err:
        raw = err.read()
        if err.code == 409:
            return 409, err.headers, None
        raise SystemExit('%s %s -> %d %s' % (method, path, err.code, raw[:300]))


def admin_token():
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': 'admin', 'domain': {'id': 'default'}, 'password': 'admin'}}},
        'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}}
    _, headers, _ = request('POST', '/auth/tokens', body)
    return headers['X-Subject-Token']


TOKEN = admin_token()


def api(method, path, body=None):
    return request(method, path, body, TOKEN)[2]


def find(collection, **query):
    qs = urllib.parse.urlencode(query)
    items = api('GET', '/%s?%s' % (collection, qs))[collection]
    return items[0]['id'] if items else None


def ensure(collection, singular, query, body):
    found = find(collection, **query)
    if found:
        return found
    api('POST', '/' + collection, {singular: body})
    return find(collection, **query)


project = ensure('projects', 'project', {'name': 'service'},
                 {'name': 'service', 'domain_id': 'default'})
admin_role = find('roles', name='admin')
service_role = ensure('roles', 'role', {'name': 'service'}, {'name': 'service'})
CINDER = os.environ.get('ZUNRS_CINDER_URL', 'http://127.0.0.1:8776/v3/%(project_id)s')
GLANCE = os.environ.get('ZUNRS_OS_GLANCE_URL', 'http://127.0.0.1:9292')

# (service user, catalog name, catalog type, endpoint URL)
SERVICES = (
    ('placement', 'placement', 'placement', PLACEMENT),
    ('neutron', 'neutron', 'network', NEUTRON),
    ('zun', 'zun', 'container', ZUN),
    ('cinder', 'cinderv3', 'volumev3', CINDER),
    ('glance', 'glance', 'image', GLANCE),
)


def ensure_user(user):
    """The service user (password = name), with roles admin and service in `service`."""
    uid = ensure('users', 'user', {'name': user},
                 {'name': user, 'password': user, 'domain_id': 'default'})
    for role in (admin_role, service_role):
        api('PUT', '/projects/%s/users/%s/roles/%s' % (project, uid, role))


def ensure_endpoints(name, stype, url):
    """The catalog service, with a public, internal and admin endpoint at `url`."""
    sid = ensure('services', 'service', {'type': stype},
                 {'name': name, 'type': stype, 'enabled': True})
    existing = api('GET', '/endpoints?service_id=%s' % sid)['endpoints']
    for iface in ('public', 'internal', 'admin'):
        same = [e for e in existing if e['interface'] == iface]
        if any(e['url'] == url and e.get('region_id') == REGION for e in same):
            continue
        for e in same:  # a stale URL (another port) is replaced
            api('DELETE', '/endpoints/%s' % e['id'])
        api('POST', '/endpoints', {'endpoint': {
            'service_id': sid, 'interface': iface, 'url': url, 'region_id': REGION}})


for user, name, stype, url in SERVICES:
    ensure_user(user)
    ensure_endpoints(name, stype, url)
    print('user %s; service %s (%s): public, internal, admin %s' % (user, name, stype, url))
