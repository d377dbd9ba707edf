#!/usr/bin/env bash
# scripts/test.sh - the whole test suite, from a fresh Debian machine (as root):
# installs and starts what the tests talk to (RabbitMQ, Docker, a local registry with
# busybox, MariaDB), builds the conformance venv (real zun 18.0.0 from PyPI), starts the
# OpenStack tier (scripts/openstack.sh: Keystone, Placement, Neutron, kuryr, zun-api), then runs
# every unit, property, integration, conformance and fault test, after `cargo fmt --check`
# and `cargo clippy -D warnings`. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (the rust toolchain)" >&2; exit 1; }
# Style and lints first: a tree that fails them fails here, in seconds, before any service starts.
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
bash scripts/services.sh
bash scripts/conformance-venv.sh >/dev/null
# the openstack tier: Keystone, Placement, Neutron, kuryr, zun-api and the CLI (tests/openstack_*)
bash scripts/openstack.sh up
# Benchmarks never run here (scripts/bench does); doc tests have nothing to run.
# Build every test binary once, then run the binaries side by side (scripts/run-tests.py:
# the suite mostly waits on real services; binaries that stop a shared service run alone).
# Arguments go to every test binary (e.g. a name filter).
# A link that runs out of disk dies with SIGBUS, minutes in; say so first. A fresh build of
# every test binary takes about 4 GiB of target/ (line tables only, see Cargo.toml).
mkdir -p target
free_kib=$(df -Pk target | awk 'NR == 2 {print $4}')
if [ "${free_kib:-0}" -lt $((5 * 1024 * 1024)) ]; then
  echo "test.sh: only $((free_kib / 1024)) MiB free where target/ is; a fresh build needs about 4 GiB" >&2
fi
build_json=$(mktemp)
trap 'rm -f "$build_json"' EXIT
cargo test --locked --workspace --no-run --lib --bins --tests --message-format=json-render-diagnostics >"$build_json"
python3 scripts/run-tests.py "$build_json" "$@"
