#!/usr/bin/env python3
"""Answer Docker's kuryr plugin calls while dockerd starts and kuryr-libnetwork is not up yet.

dockerd re-reads every network it knows at start. For a network made by kuryr it activates
the legacy `kuryr` plugin and retries for 15 s per network when nothing answers, so a host
with a dozen kuryr networks left from earlier runs takes minutes to answer /_ping. This
stand-in answers activation and capabilities exactly as kuryr-libnetwork does (dockerd
caches them), and refuses every other call, so dockerd marks those networks unusable for
now and starts at once. scripts/services.sh stops it as soon as dockerd answers; the real
kuryr-server (scripts/openstack.sh) then listens on the same address, which is all dockerd
keeps of a legacy plugin.

usage: kuryr-standin.py PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

ANSWERS = {
    "/Plugin.Activate": {"Implements": ["NetworkDriver", "IpamDriver"]},
    "/NetworkDriver.GetCapabilities": {"Scope": "local"},
    "/IpamDriver.GetCapabilities": {"RequiresMACAddress": True},
    "/IpamDriver.GetDefaultAddressSpaces": {
        "LocalDefaultAddressSpace": "no_address_space",
        "GlobalDefaultAddressSpace": "no_address_space",
    },
}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        body = ANSWERS.get(self.path, {"Err": "kuryr-libnetwork is not running yet"})
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("kuryr-standin: %s\n" % (fmt % args))


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
