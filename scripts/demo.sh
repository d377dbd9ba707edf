#!/usr/bin/env bash
# scripts/demo.sh - the main job, from a fresh Debian machine (as root):
#   services up (RabbitMQ, Docker, a local registry, MariaDB), zun's real database schema,
#   the worker built and running, and a real container created through the oslo wire by
#   zun's own rpcapi code (as zun-api does it), then shown.
#
#   bash scripts/demo.sh         run it (idempotent; the worker stays running)
#   bash scripts/demo.sh stop    stop the demo worker and remove the demo containers
#   bash scripts/demo.sh --openstack [stop]   the whole real path instead: Keystone, Placement,
#                                Neutron + kuryr, the real zun-api and `openstack appcontainer`
#                                (scripts/demo-openstack.sh), with time and memory
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --openstack ]; then shift; exec bash scripts/demo-openstack.sh "$@"; fi
ROOT=$PWD
STATE=/var/tmp/zun-rs/demo
PIDFILE=$STATE/worker.pid
HOST=demo-node
VHOST=zun-demo
DB=zun_demo
ADMIN=127.0.0.1:9512
mkdir -p "$STATE"

stop_worker() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 1 200); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

remove_demo_containers() {
  local ids
  ids=$(docker ps -aq --filter label=zun-rs-demo=1 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
}

if [ "${1:-}" = "stop" ]; then
  stop_worker
  remove_demo_containers
  echo "demo stopped"
  exit 0
fi

step() { printf '\n== %s\n' "$*"; }

step "services (RabbitMQ, Docker, registry, MariaDB)"
bash scripts/services.sh

step "conformance venv (the real zun 18.0.0 client code)"
VENV=$(bash scripts/conformance-venv.sh | tail -n1)

step "build"
command -v cargo >/dev/null || { echo "cargo is required (the rust toolchain)"; exit 1; }
cargo build --release --quiet
BIN=$ROOT/target/release/zun-compute-rs

step "zun database $DB (schema by zun-db-manage) and RabbitMQ vhost $VHOST"
stop_worker
remove_demo_containers
URL=$(bash scripts/zun-db.sh --fast "$DB" | tail -n1)
rabbitmqctl -q add_vhost "$VHOST" >/dev/null 2>&1 || true
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null

cat > "$STATE/zun.conf" <<EOF
[DEFAULT]
host = $HOST
transport_url = rabbit://guest:guest@127.0.0.1:5672/$VHOST
state_path = $STATE
rpc_response_timeout = 60

[database]
connection = $URL

[admin]
listen = $ADMIN
EOF

step "worker"
"$BIN" --config-file "$STATE/zun.conf" check-config 2>/dev/null | tail -n3
setsid "$BIN" --config-file "$STATE/zun.conf" >>"$STATE/worker.log" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
for i in $(seq 1 300); do
  if curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "worker exited:"; tail -n 30 "$STATE/worker.log"; exit 1; fi
  [ "$i" = 300 ] && { echo "worker not ready after 30 s"; tail -n 30 "$STATE/worker.log"; exit 1; }
  sleep 0.1
done
echo "worker pid $(cat "$PIDFILE") ready (log: $STATE/worker.log, metrics: http://$ADMIN/metrics)"

step "zun-api: create a container through the oslo wire, then show it"
PYTHONWARNINGS=ignore "$VENV/bin/python" scripts/zun-api-demo.py "$STATE/zun.conf" "$HOST" 127.0.0.1:5000/busybox:latest

step "docker"
docker ps --filter label=zun-rs-demo=1 --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'
echo
echo "The worker keeps running; stop it with: bash scripts/demo.sh stop"
