#!/usr/bin/env python3
"""Run one OpenStack WSGI application on 127.0.0.1 for the zun-compute-rs test stack.

    python serve_wsgi.py MODULE:CALLABLE PORT [--threads N]

Keystone, Placement and Neutron ship their API as a WSGI callable and no
server. gunicorn's own command line cannot serve Keystone: Keystone parses
sys.argv with oslo.config at import time and dies on gunicorn's options, so
the worker restarts forever. Here sys.argv is emptied before the application
module is imported, and gunicorn is configured in code: one gthread worker,
no control socket, no keep-alive, access log on stdout.

Keep-alive is off because a kept-alive connection races its own expiry: the
server closes it when its keepalive timeout runs out (gunicorn's default is
2 s) while the client, which pools connections and never expires them, may be
sending the next request on it at that moment. That request then fails with
"Connection reset by peer". keystonemiddleware does not retry a token
validation, so a service answers 503 and zun-api, calling Placement, fails the
user's request with a 500. With keep-alive off every response carries
"Connection: close" and no client reuses a connection; on 127.0.0.1 a new
connection per request costs nothing measurable.

Once the worker has booted, the line "READY http://127.0.0.1:PORT" is printed
on stdout; scripts/openstack.sh waits for it (and for an HTTP answer).
"""
import argparse
import importlib
import os
import shlex
import sys


def load_app(spec):
    module, _, attr = spec.partition(':')
    return getattr(importlib.import_module(module), attr or 'application')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('app')
    parser.add_argument('port', type=int)
    parser.add_argument('--threads', type=int, default=4)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the application must not see our arguments
    # ...but may get its own (Cinder reads --config-file from sys.argv): ZUNRS_APP_ARGV
    sys.argv += shlex.split(os.environ.get('ZUNRS_APP_ARGV', ''))

    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            cfg = self.cfg
            cfg.set('bind', '127.0.0.1:%d' % args.port)
            cfg.set('workers', 1)
            cfg.set('worker_class', 'gthread')
            cfg.set('threads', args.threads)
            cfg.set('timeout', 120)
            cfg.set('keepalive', 0)  # see the module docstring
            cfg.set('graceful_timeout', 5)
            cfg.set('accesslog', '-')
            if 'control_socket_disable' in cfg.settings:  # gunicorn >= 24
                cfg.set('control_socket_disable', True)
            cfg.set('post_worker_init', lambda _worker: print(
                'READY http://127.0.0.1:%d' % args.port, flush=True))

        def load(self):
            return load_app(args.app)

    Server().run()


if __name__ == '__main__':
    main()
