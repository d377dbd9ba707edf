#!/usr/bin/env bash
# scripts/demo-openstack.sh - `bash scripts/demo.sh --openstack`: the whole real path.
#   services (RabbitMQ, Docker, registry, MariaDB) and the OpenStack tier (Keystone,
#   Placement, Neutron, kuryr-libnetwork, zun-api 18.0.0: scripts/openstack.sh), the worker
#   built and started as zun-api's compute host, then the real CLI:
#   `openstack appcontainer run` (on a Neutron network), show, logs, exec, delete.
#   Prints the time of each step and the memory (RSS) of every service and of the worker.
#
#   bash scripts/demo.sh --openstack        run it (the stack and the worker stay up)
#   bash scripts/demo.sh --openstack stop   stop the demo worker (the stack: openstack.sh stop)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${ZUN_RS_STATE:-/var/tmp/zun-rs}
DEMO=$STATE/demo-openstack
PIDFILE=$DEMO/worker.pid
HOST=zunrs-demo-node
ADMIN=127.0.0.1:9513
NET=zunrs-demo
CIDR=10.99.0.0/24
mkdir -p "$DEMO"

stop_worker() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}
if [ "${1:-}" = stop ]; then stop_worker; echo "demo worker stopped (the stack: bash scripts/openstack.sh stop)"; exit 0; fi

now_ns() { date +%s%N; }
T0=$(now_ns)
STEP_T=$T0
step() { printf '\n== %s\n' "$*"; STEP_T=$(now_ns); }
took() { printf '   (%d ms)\n' $(( ($(now_ns) - STEP_T) / 1000000 )); }
# until SECONDS WHAT CMD...: poll with a deadline
until_ok() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(now_ns) + secs * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ns)" -lt "$end" ] || { echo "demo: $what: not after ${secs}s" >&2; return 1; }
    sleep 0.5
  done
}
rss_mib() { # rss_mib PID: the process and its children
  local p=$1
  ps -o rss= -p "$p" --ppid "$p" 2>/dev/null | awk '{s+=$1} END {printf "%.0f", s/1024}'
}

step "services (RabbitMQ, Docker, registry, MariaDB)"
bash scripts/services.sh >/dev/null
took
step "OpenStack tier (Keystone, Placement, Neutron, kuryr, zun-api, CLI)"
bash scripts/openstack.sh up
took
# shellcheck disable=SC1091
source "$STATE/openstack/env.sh"
OS() { "$ZUNRS_OS_OPENSTACK_CLI" "$@"; }

step "build"
command -v cargo >/dev/null || { echo "cargo is required (the rust toolchain)"; exit 1; }
cargo build --release --quiet
BIN=$ROOT/target/release/zun-compute-rs
took

step "Neutron network $NET ($CIDR)"
NET_ID=$(OS network show "$NET" -f value -c id 2>/dev/null || true)
if [ -z "$NET_ID" ]; then
  NET_ID=$(OS network create "$NET" -f value -c id)
  OS subnet create --network "$NET_ID" --subnet-range "$CIDR" "$NET" -f value -c id >/dev/null
fi
echo "   network $NET_ID"
took

step "worker $HOST (zun-api's database and vhost, keystone auth, Placement, kuryr)"
stop_worker
cat >"$DEMO/zun.conf" <<EOF
[DEFAULT]
host = $HOST
transport_url = $ZUNRS_OS_TRANSPORT_URL
state_path = $DEMO
[database]
connection = $ZUNRS_OS_DB_URL
[admin]
listen = $ADMIN
[keystone_auth]
auth_type = password
auth_url = $OS_AUTH_URL
username = zun
password = zun
project_name = service
user_domain_name = Default
project_domain_name = Default
[placement_client]
region_name = RegionOne
endpoint_type = publicURL
[neutron_client]
region_name = RegionOne
endpoint_type = publicURL
[network]
driver = kuryr
EOF
setsid "$BIN" --config-file "$DEMO/zun.conf" >>"$DEMO/worker.log" 2>&1 </dev/null &
echo $! >"$PIDFILE"
until_ok 60 "worker /readyz" curl -fsS "http://$ADMIN/readyz" \
  || { tail -n 30 "$DEMO/worker.log"; exit 1; }
until_ok 90 "zun-api lists $HOST and Placement has its provider" \
  bash -c "'$ZUNRS_OS_OPENSTACK_CLI' appcontainer host list -f value -c hostname | grep -qx '$HOST' &&
           '$ZUNRS_OS_OPENSTACK_CLI' resource provider list --name '$HOST' -f value -c uuid | grep -q ." \
  || { tail -n 30 "$DEMO/worker.log"; exit 1; }
echo "   worker pid $(cat "$PIDFILE") (log $DEMO/worker.log); provider $(OS resource provider list --name "$HOST" -f value -c uuid)"
took

NAME=zunrs-demo-$(date +%H%M%S)
step "openstack appcontainer run --net network=$NET --host $HOST busybox"
# -f/-c go before the image: everything after it is the container's command.
UUID=$(OS appcontainer run -f value -c uuid --host "$HOST" --net "network=$NET_ID" --name "$NAME" \
  --image-pull-policy ifnotpresent busybox sh -c 'echo hello from zun-compute-rs; exec sleep 3600')
until_ok 120 "$NAME Running" bash -c "[ \"\$('$ZUNRS_OS_OPENSTACK_CLI' appcontainer show $UUID -f value -c status)\" = Running ]" \
  || { OS appcontainer show "$UUID" -c status -c status_reason; tail -n 30 "$DEMO/worker.log"; exit 1; }
echo "   $UUID Running"
took
step "openstack appcontainer show"
OS appcontainer show "$UUID" -c name -c status -c host -c addresses -c image -c memory -c cpu
took
step "openstack appcontainer logs / exec"
OS appcontainer logs "$UUID"
OS appcontainer exec "$UUID" ip -o -4 addr show eth0
took

step "memory (RSS, MiB)"
for s in keystone placement neutron kuryr zun-api; do
  printf '   %-10s %5s\n' "$s" "$(rss_mib "$(cat "$STATE/openstack/run/$s.pid")")"
done
printf '   %-10s %5s\n' worker "$(rss_mib "$(cat "$PIDFILE")")"

step "openstack appcontainer delete"
OS appcontainer delete --stop "$UUID"
until_ok 60 "$NAME deleted" bash -c "! '$ZUNRS_OS_OPENSTACK_CLI' appcontainer show $UUID"
echo "   ports left for it: $(OS port list --device-id "$UUID" -f value -c ID | wc -l);" \
  "allocations left: $(OS resource provider show --allocations "$(OS resource provider list --name "$HOST" -f value -c uuid)" -f json | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("allocations", {})))')"
took

printf '\nwhole demo: %d ms. The stack and the worker keep running; stop the worker with\n' $(( ($(now_ns) - T0) / 1000000 ))
echo "  bash scripts/demo.sh --openstack stop   (and the stack with: bash scripts/openstack.sh stop)"
