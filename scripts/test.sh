#!/usr/bin/env bash
# scripts/test.sh - the whole test suite, from a fresh Debian machine (as root):
# installs and starts what the tests talk to (RabbitMQ, Docker, a local registry with
# busybox, MariaDB), builds the conformance venv (real zun 18.0.0 from PyPI), starts the
# OpenStack tier (scripts/openstack.sh: Keystone, Placement, Neutron, kuryr, zun-api), then runs
# every unit, property, integration, conformance and fault test. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (the rust toolchain)" >&2; exit 1; }
bash scripts/services.sh
bash scripts/conformance-venv.sh >/dev/null
# the openstack tier: Keystone, Placement, Neutron, kuryr, zun-api and the CLI (tests/openstack_*)
bash scripts/openstack.sh up
# Benchmarks never run here (scripts/bench does); doc tests have nothing to run.
cargo test --locked --no-fail-fast --lib --bins --tests "$@"
