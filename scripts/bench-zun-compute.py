#!/usr/bin/env python3
"""Runs the real zun-compute (zun 18.0.0 from the conformance venv) on a machine without
Keystone, Placement or Neutron, as scripts/bench's reference. Takes the same arguments
as the `zun-compute` console script:

    VENV/bin/python scripts/bench-zun-compute.py --config-file zun.conf

zun-compute is started the way its console script starts it; site-packages is not
edited. Before `main()` three things are replaced in memory:

- Placement: the report client gets no Keystone session, pushing inventory to
  Placement does nothing, and deleting a container's allocation reports "none held".
  (zun has no switch for Placement and cannot start without Keystone otherwise.)
- Networking: `[network] driver = noop` selects a driver that makes no Neutron call and
  leaves Docker's default bridge network in place (kuryr and cni both need Neutron).
- An empty requested_networks list is accepted (zun-api always sends one network; the
  Docker driver pops from the list unconditionally).

When the RPC server has started consuming, one JSON line goes to stdout:
{"consuming": <seconds since this process was exec'd>}.
"""
import json
import os
import sys

# The console script's import order: zun.cmd monkey-patches eventlet first.
from zun.cmd import compute as compute_cmd  # noqa: E402


def seconds_since_exec():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])  # field 22: starttime, clock ticks after boot
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def without_placement():
    from zun.compute import compute_node_tracker
    from zun.scheduler.client import report

    def no_client(self):
        self.clear_provider_cache(init=True)
        return None, None

    report.SchedulerReportClient._create_client = no_client
    report.SchedulerReportClient.delete_allocation_for_container = lambda self, *a, **k: False
    compute_node_tracker.ComputeNodeTracker._update_to_placement = lambda self, *a, **k: None


def noop_network():
    from zun.common import exception
    from zun.network import network as zun_network
    import zun.conf

    conf = zun.conf.CONF

    class NoNeutron(object):
        def __getattr__(self, name):
            def unavailable(*a, **k):
                raise exception.ZunException("no Neutron on this machine (%s)" % name)
            return unavailable

    class NoopNetwork(zun_network.Network):
        def init(self, context, docker_api=None, **kwargs):
            self.context = context
            self.docker = docker_api
            self.neutron_api = NoNeutron()

        def get_or_create_network(self, *a, **k):
            return None

        def create_network(self, *a, **k):
            raise exception.ZunException("the noop network driver creates no networks")

        def remove_network(self, *a, **k):
            return None

        def process_networking_config(self, *a, **k):
            return None  # Docker's default network

        def connect_container_to_network(self, *a, **k):
            return []

        def disconnect_container_from_network(self, *a, **k):
            return None

        def add_security_groups_to_ports(self, *a, **k):
            raise exception.ZunException("the noop network driver has no security groups")

        remove_security_groups_from_ports = add_security_groups_to_ports

        def on_container_started(self, container):
            return None

        def on_container_stopped(self, container):
            return None

    loader = zun_network.driver

    def driver(*a, **k):
        if conf.network.driver != "noop":
            return loader(*a, **k)
        d = NoopNetwork()
        d.init(*a, **k)
        return d

    zun_network.driver = driver


def empty_networks_accepted():
    from zun.container.docker import driver as docker_driver

    create = docker_driver.DockerDriver.create

    def create_with_placeholder(self, context, container, image, requested_networks, requested_volumes):
        return create(self, context, container, image, requested_networks or [{"network": None}], requested_volumes)

    docker_driver.DockerDriver.create = create_with_placeholder


def announce_consuming():
    from zun.common import rpc_service

    start = rpc_service.Service.start

    def start_and_announce(self):
        start(self)
        print(json.dumps({"consuming": seconds_since_exec()}), flush=True)

    rpc_service.Service.start = start_and_announce


if __name__ == "__main__":
    without_placement()
    noop_network()
    empty_networks_accepted()
    announce_consuming()
    sys.argv[0] = "zun-compute"
    sys.exit(compute_cmd.main())
