#!/usr/bin/env python3
"""Run the test binaries that `cargo test --no-run` built, several at once.

The suite talks to real services and most of its time is spent waiting on them (Docker,
the OpenStack CLI, broker failovers), so binaries run side by side instead of one after
another as `cargo test` would. Tests coordinate on shared services with flock (see
tests/common); binaries that stop a shared service for every other test (EXCLUSIVE) run
alone, after the others.

Lanes: binaries that use the OpenStack tier (`openstack_*`) spend most of their time waiting
on it and on each other (a test that stops a stack service holds the stack lock exclusive),
so they get their own lane and never hold every slot while the rest of the suite waits.

Usage: run-tests.py BUILD_JSON [test binary args...]
  BUILD_JSON: the output of `cargo test --no-run --message-format=json`.
Env: ZUN_RS_TEST_JOBS (binaries at once outside the stack lane, default 3),
     ZUN_RS_TEST_STACK_JOBS (stack binaries at once, default 2), ZUN_RS_TEST_THREADS (tests
     at once inside a binary, default 4), ZUN_RS_TEST_LOGS (per-binary output, default
     /var/tmp/zun-rs/test-logs).
Prints every binary's output when it ends, then one closing line `N passed, N failed`.
"""
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

# Stop or restart RabbitMQ, dockerd or MariaDB under every other test: run alone.
EXCLUSIVE = {"fault_injection"}
# Longest first, so the run ends with short binaries filling the gaps.
SLOW_FIRST = [
    "openstack_zun_api", "openstack_faults", "openstack_network", "openstack_placement",
    "openstack_keystone", "cluster_failover", "hostile_wire", "hostile_domain",
    "e2e_ordering", "e2e_containers", "fault_docker_events", "hostile_tls",
]
RESULT = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed")


def binaries(build_json):
    out = []
    for line in open(build_json, encoding="utf-8"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("profile", {}).get("test"):
            continue
        exe = msg.get("executable")
        if not exe:
            continue
        kind = msg["target"]["kind"][0]
        name = msg["target"]["name"] if kind == "test" else f"{kind}:{msg['target']['name']}"
        out.append((name, exe))
    return out


def run(name, exe, args, logs, threads, root):
    log = os.path.join(logs, name.replace(":", "_") + ".log")
    t0 = time.monotonic()
    with open(log, "wb") as f:
        rc = subprocess.call([exe, f"--test-threads={threads}", *args], cwd=root, stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return name, rc, time.monotonic() - t0, log


def report(name, rc, secs, log, totals):
    text = open(log, encoding="utf-8", errors="replace").read()
    print(f"\n===== {name}: exit {rc}, {secs:.0f} s =====", flush=True)
    print(text, end="" if text.endswith("\n") else "\n", flush=True)
    counted = False
    for line in text.splitlines():
        m = RESULT.match(line)
        if m:
            totals["passed"] += int(m.group(1))
            totals["failed"] += int(m.group(2))
            counted = True
    if rc != 0:
        totals["bad"].append(name)
        if not counted:  # a binary that died before its summary line still counts as a failure
            totals["failed"] += 1


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build_json, args = sys.argv[1], sys.argv[2:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    jobs = int(os.environ.get("ZUN_RS_TEST_JOBS", "3"))
    stack_jobs = int(os.environ.get("ZUN_RS_TEST_STACK_JOBS", "2"))
    threads = int(os.environ.get("ZUN_RS_TEST_THREADS", "4"))
    logs = os.environ.get("ZUN_RS_TEST_LOGS", "/var/tmp/zun-rs/test-logs")
    os.makedirs(logs, exist_ok=True)
    found = binaries(build_json)
    if not found:
        sys.exit("run-tests.py: no test binaries in " + build_json)
    rank = {n: i for i, n in enumerate(SLOW_FIRST)}
    shared = sorted((b for b in found if b[0] not in EXCLUSIVE), key=lambda b: rank.get(b[0], len(rank)))
    alone = [b for b in found if b[0] in EXCLUSIVE]
    totals = {"passed": 0, "failed": 0, "bad": []}
    t0 = time.monotonic()
    stack = [b for b in shared if b[0].startswith("openstack_")]
    rest = [b for b in shared if not b[0].startswith("openstack_")]
    with ThreadPoolExecutor(max_workers=stack_jobs) as stack_pool, ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = [stack_pool.submit(run, n, e, args, logs, threads, root) for n, e in stack]
        futs += [pool.submit(run, n, e, args, logs, threads, root) for n, e in rest]
        for fut in as_completed(futs):
            report(*fut.result(), totals)
    for n, e in alone:
        report(*run(n, e, args, logs, threads, root), totals)
    mins = (time.monotonic() - t0) / 60
    print(f"\n{len(found)} test binaries in {mins:.1f} min; failing binaries: {', '.join(totals['bad']) or 'none'}")
    print(f"{totals['passed']} passed, {totals['failed']} failed")
    sys.exit(1 if totals["bad"] else 0)


if __name__ == "__main__":
    main()
