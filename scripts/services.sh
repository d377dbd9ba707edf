#!/usr/bin/env bash
# scripts/services.sh - the local services zun-compute-rs' tests talk to.
#
#   RabbitMQ   amqp://guest:guest@127.0.0.1:5672/  (Debian rabbitmq-server)
#   Docker     unix:///var/run/docker.sock          (Debian docker.io, dockerd we start)
#   busybox    busybox:latest, imported from busybox-static (no registry needed)
#   registry   http://127.0.0.1:5000, holding 127.0.0.1:5000/busybox:latest
#   MariaDB    mysql://root@127.0.0.1:3306  (empty password over TCP)
#   pciutils   lspci (the real zun-compute calls it)
#
# No systemd here: every daemon is started by this script, in its own session,
# with its pid file and log under $ZUN_RS_STATE (default /var/tmp/zun-rs).
# Everything listens on 127.0.0.1 (dockerd on its unix socket only).
#
# Usage:  bash scripts/services.sh [up|status|stop]
#   up      (default) install what is missing, start what is down, wait until
#           each service answers (deadlines, no fixed sleeps). Idempotent; well
#           under 2 s when everything is already up.
#   status  one line per service; exit 1 if any is not ok.
#   stop    stop the daemons this script started (by pid file).
set -euo pipefail

STATE=${ZUN_RS_STATE:-/var/tmp/zun-rs}
AMQP_HOST=127.0.0.1
AMQP_PORT=5672
DB_HOST=127.0.0.1
DB_PORT=3306
REGISTRY_ADDR=127.0.0.1:5000
DOCKER_SOCK=/var/run/docker.sock
KURYR_PORT=23750   # kuryr-libnetwork, started by scripts/openstack.sh
IMAGE=busybox:latest
REG_IMAGE=$REGISTRY_ADDR/busybox:latest
RABBIT_ENV=/etc/rabbitmq/rabbitmq-env.conf
RABBIT_VM_PID=/var/lib/rabbitmq/mnesia/rabbit@localhost.pid

# daemons live in sbin; keep the caller's PATH first (pyenv shims etc.)
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH=$PATH:/sbin ;; esac
export PATH

# ------------------------------------------------------------------ helpers
ME=services.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
T0=$(now_ns)
step() { STEP=$1; STEP_T=$(now_ns); }
step_done() { printf '  %-10s %-52s %6s ms\n' "$STEP" "$1" "$(ms_since "$STEP_T")"; }

# start_bg NAME CMD... : start CMD in its own session, log to $STATE/NAME.log,
# pid to $STATE/NAME.pid
start_bg() {
  local name=$1; shift
  detach "$STATE/$name.log" "$@"
  record_pid "$STATE/$name.pid" $!
}

# ------------------------------------------------------------------ probes (cheap)
# RabbitMQ: a real AMQP 0-9-1 greeting; the broker answers with a method frame (type 1)
amqp_ok() {
  local b
  b=$(timeout 2 bash -c 'exec 3<>/dev/tcp/'"$AMQP_HOST/$AMQP_PORT"' || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3; head -c 1 <&3 | od -An -tu1' 2>/dev/null) || return 1
  [ "${b// /}" = 1 ]
}
docker_ok() { [ "$(curl -s -m 3 --unix-socket "$DOCKER_SOCK" http://localhost/_ping 2>/dev/null)" = OK ]; }
# /info takes libnetwork's controller lock and /_ping takes no lock. So a dockerd stuck in
# docker 20.10's lock-order deadlock answers the ping and nothing else. The deadlock is
# between getSvcRecords and processEndpointDelete (moby/libnetwork#2649, fixed after
# Debian's 20.10.24); it happened here once when many containers were removed at the
# same time.
docker_info_ok() {
  [ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' --unix-socket "$DOCKER_SOCK" http://localhost/info 2>/dev/null)" = 200 ]
}
registry_ok() { [ "$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$REGISTRY_ADDR/v2/" 2>/dev/null)" = 200 ]; }
registry_has_busybox() {
  local t
  t=$(curl -s -m 3 "http://$REGISTRY_ADDR/v2/busybox/tags/list" 2>/dev/null) || return 1
  [[ $t == *'"latest"'* ]]
}
db_sock_ok() { mariadb-admin --connect-timeout=2 ping >/dev/null 2>&1; }
db_tcp_ok() {
  [ "$(mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root --connect-timeout=2 -Nse 'SELECT 1' 2>/dev/null)" = 1 ]
}
image_ok() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

# ------------------------------------------------------------------ status
status_line() { printf '%-9s %-42s %s\n' "$1" "$2" "$3"; }
cmd_status() {
  local bad=0 v
  if amqp_ok; then status_line rabbitmq "amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/" ok
  else status_line rabbitmq "amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/" FAIL; bad=1; fi
  if docker_ok; then
    v=$(curl -s -m 3 --unix-socket "$DOCKER_SOCK" http://localhost/version | sed -n 's/.*"ApiVersion":"\([^"]*\)".*/API \1/p')
    status_line docker "unix://$DOCKER_SOCK" "ok${v:+ ($v)}"
    if image_ok; then status_line busybox "$IMAGE" ok; else status_line busybox "$IMAGE" FAIL; bad=1; fi
  else
    status_line docker "unix://$DOCKER_SOCK" FAIL; status_line busybox "$IMAGE" FAIL; bad=1
  fi
  if registry_ok && registry_has_busybox; then status_line registry "http://$REGISTRY_ADDR ($REG_IMAGE)" ok
  else status_line registry "http://$REGISTRY_ADDR ($REG_IMAGE)" FAIL; bad=1; fi
  if db_tcp_ok; then status_line mariadb "mysql://root@$DB_HOST:$DB_PORT" ok
  else status_line mariadb "mysql://root@$DB_HOST:$DB_PORT" FAIL; bad=1; fi
  if command -v lspci >/dev/null; then status_line pciutils "$(command -v lspci)" ok
  else status_line pciutils lspci FAIL; bad=1; fi
  return $bad
}

# ------------------------------------------------------------------ stop
stop_pid() {  # stop_pid NAME PIDFILE SECONDS
  local name=$1 pf=$2 secs=$3 pid
  pid=$(pid_of "$pf")
  if alive "$pid"; then
    echo "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$secs" "$name stop" "" eval "! alive $pid" 2>/dev/null; then
      echo "  $name did not stop in ${secs}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pf" "$pf.id"
}

cmd_stop() {
  local pid
  stop_pid registry "$STATE/registry.pid" 10
  stop_pid dockerd "$STATE/dockerd.pid" 60
  # dockerd leaves its netns mount behind; harmless, cleaned at the next start
  stop_pid mariadb "$STATE/mariadb.pid" 60
  pid=$(pid_of "$STATE/rabbitmq.pid")
  if alive "$pid"; then
    echo "stopping rabbitmq (pid $pid)"
    timeout 60 rabbitmqctl -q shutdown >/dev/null 2>&1 || true
    # the Erlang VM runs under 'su rabbitmq' in a session of its own; it writes its pid here
    local beam
    beam=$(pid_of "$RABBIT_VM_PID")
    if alive "$beam"; then
      kill -TERM "$beam" 2>/dev/null || true
      wait_for 30 "rabbitmq stop" "" eval "! alive $beam" 2>/dev/null || kill -KILL "$beam" 2>/dev/null || true
    fi
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$STATE/rabbitmq.pid" "$STATE/rabbitmq.pid.id"
  echo "stopped"
}

# ------------------------------------------------------------------ packages
PKGS=(rabbitmq-server docker.io tini iptables busybox-static docker-registry
      mariadb-server mariadb-client pciutils curl)

wait_apt_lock() {
  wait_for 600 "dpkg lock" "" bash -c '! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1' \
    || die "the dpkg lock is still held by another process"
}

ensure_packages() {
  step packages
  local missing=() line p
  declare -A have=()
  while read -r p line; do
    [ "$line" = installed ] && have[$p]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PKGS[@]}" python3-venv 2>/dev/null || true)
  for p in "${PKGS[@]}"; do [ -n "${have[$p]:-}" ] || missing+=("$p"); done
  # python3 -m venv needs ensurepip, which Debian ships in python3-venv
  if [ -z "${have[python3-venv]:-}" ] \
     && { ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 \
          || { [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }; }; then
    missing+=(python3-venv)
  fi
  if [ ${#missing[@]} -eq 0 ]; then step_done "all installed"; return 0; fi
  echo "  installing: ${missing[*]}"
  wait_apt_lock
  DEBIAN_FRONTEND=noninteractive apt-get update -q >"$STATE/apt.log" 2>&1 \
    || fail_with_log "$STATE/apt.log" "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >>"$STATE/apt.log" 2>&1 \
    || fail_with_log "$STATE/apt.log" "apt-get install ${missing[*]} failed"
  step_done "installed ${#missing[@]} package(s), log $STATE/apt.log"
}

# ------------------------------------------------------------------ rabbitmq
# Start without waiting; rabbit_wait finishes the job (its boot overlaps the rest).
RABBIT_STARTED=0
rabbit_start() {
  step rabbitmq
  if amqp_ok; then step_done "already running on $AMQP_HOST:$AMQP_PORT"; return 0; fi
  # node name and listeners: loopback only; read by rabbitmq-server and rabbitmqctl alike
  local want
  want=$(cat <<EOF
# written by zun-compute-rs scripts/services.sh
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=$AMQP_HOST
NODE_PORT=$AMQP_PORT
LOGS=-
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
)
  if [ "$(cat "$RABBIT_ENV" 2>/dev/null || true)" != "$want" ]; then
    mkdir -p "$(dirname "$RABBIT_ENV")"
    printf '%s\n' "$want" >"$RABBIT_ENV"
  fi
  local pid rc=0 beam
  pid=$(pid_of "$STATE/rabbitmq.pid")
  if alive "$pid"; then
    # Alive but not answering: booting (it answers soon) or shutting down after a
    # `rabbitmqctl shutdown` that has already closed its port (it exits soon; a fault
    # test restarts RabbitMQ this way). Wait for either; start anew only in the second case.
    wait_for 60 "rabbitmq (pid $pid)" "$pid" amqp_ok 2>/dev/null || rc=$?
    if [ "$rc" -ne 2 ]; then
      RABBIT_STARTED=1; step_done "starting already (pid $pid)"; return 0
    fi
    # its Erlang VM (own session, pid file of its own) must be gone too before a new node starts
    beam=$(pid_of "$RABBIT_VM_PID")
    if alive "$beam"; then
      wait_for 30 "rabbitmq VM exit" "" eval "! alive $beam" 2>/dev/null || kill -KILL "$beam" 2>/dev/null || true
    fi
  fi
  start_bg rabbitmq rabbitmq-server
  RABBIT_STARTED=1
  step_done "started pid $(pid_of "$STATE/rabbitmq.pid"), log $STATE/rabbitmq.log"
}

rabbit_wait() {
  [ "$RABBIT_STARTED" = 1 ] || return 0
  step rabbitmq
  wait_for 180 rabbitmq "$(pid_of "$STATE/rabbitmq.pid")" amqp_ok \
    || fail_with_log "$STATE/rabbitmq.log" "RabbitMQ did not come up on $AMQP_HOST:$AMQP_PORT"
  # the CLI must reach the node too (tests run rabbitmqctl add_vhost)
  timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1 \
    || fail_with_log "$STATE/rabbitmq.log" "RabbitMQ answers AMQP but 'rabbitmqctl await_startup' fails"
  step_done "up on $AMQP_HOST:$AMQP_PORT, rabbitmqctl ok"
}

# ------------------------------------------------------------------ docker
docker_up() {
  step dockerd
  local pid
  if docker_ok; then
    if docker_info_ok; then step_done "already running ($DOCKER_SOCK)"; return 0; fi
    # Wedged: SIGQUIT makes dockerd write its goroutines to its log and exit at once,
    # without cleanup. The start below then begins afresh; restart policies bring the
    # containers back.
    pid=$(pgrep -x dockerd | head -n 1)
    echo "  dockerd pid $pid answers /_ping but not /info within 30 s: wedged; restarting it (goroutines in $STATE/dockerd.log)"
    kill -QUIT "$pid" 2>/dev/null || true
    if ! wait_for 30 "dockerd exit" "" eval "! alive $pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait_for 10 "dockerd exit" "" eval "! alive $pid" 2>/dev/null || die "dockerd pid $pid does not exit"
  fi
  # never a second dockerd: if one exists (ours or not), only wait for it
  if pid=$(pgrep -x dockerd | head -n 1) && [ -n "$pid" ]; then
    echo "  dockerd pid $pid exists but $DOCKER_SOCK does not answer yet: waiting"
  else
    # leftovers of a dockerd that was killed. No dockerd runs, so its pid file is stale even
    # when the pid in it now names a live process (dockerd would refuse to start over it)
    rm -f /var/run/docker.pid
    local m
    for m in $(awk '$2 ~ "^/run/docker/netns/" || $2 ~ "^/var/run/docker/netns/" {print $2}' /proc/mounts); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if ! grep -qE ' /sys/fs/cgroup[ /]' /proc/mounts; then
      die "no cgroup filesystem is mounted at /sys/fs/cgroup; dockerd cannot run containers"
    fi
    # dockerd activates the kuryr plugin for every kuryr network it reloads and retries for
    # 15 s each when kuryr is down (it is after a reboot: kuryr starts after dockerd, in
    # scripts/openstack.sh). A stand-in answers in its place until dockerd is up.
    local standin=""
    if grep -qas kuryr /var/lib/docker/network/files/local-kv.db \
      && ! curl -s -m 2 -o /dev/null -X POST "http://127.0.0.1:$KURYR_PORT/Plugin.Activate"; then
      mkdir -p /etc/docker/plugins
      echo "http://127.0.0.1:$KURYR_PORT" >/etc/docker/plugins/kuryr.spec
      start_bg kuryr-standin python3 "$(dirname "${BASH_SOURCE[0]}")/openstack/kuryr-standin.py" "$KURYR_PORT"
      standin=$(pid_of "$STATE/kuryr-standin.pid")
      wait_for 10 kuryr-standin "$standin" \
        curl -s -m 2 -o /dev/null -X POST "http://127.0.0.1:$KURYR_PORT/Plugin.Activate" \
        || fail_with_log "$STATE/kuryr-standin.log" "the kuryr stand-in does not answer on $KURYR_PORT"
    fi
    start_bg dockerd dockerd
    pid=$(pid_of "$STATE/dockerd.pid")
  fi
  local rc=0
  wait_for 60 dockerd "$pid" docker_ok || rc=$?
  if [ -n "${standin:-}" ]; then stop_pid kuryr-standin "$STATE/kuryr-standin.pid" 10 >/dev/null; fi
  [ "$rc" = 0 ] || fail_with_log "$STATE/dockerd.log" "dockerd did not answer /_ping on $DOCKER_SOCK"
  step_done "started pid $pid, log $STATE/dockerd.log"
}

busybox_image() {
  step busybox
  if image_ok; then step_done "$IMAGE present"; return 0; fi
  local root=$STATE/busybox-rootfs a
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,tmp,proc,sys,dev,root,var,usr/bin,usr/sbin}
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" -cf "$STATE/busybox-rootfs.tar" .
  docker import \
    -c 'CMD ["/bin/sh"]' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$STATE/busybox-rootfs.tar" "$IMAGE" >/dev/null \
    || die "docker import of $IMAGE failed"
  rm -rf "$root"
  step_done "imported $IMAGE from busybox-static"
}

# ------------------------------------------------------------------ registry
registry_up() {
  step registry
  if registry_ok; then step_done "already running on $REGISTRY_ADDR"; else
    local dir=$STATE/registry pid
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
# written by zun-compute-rs scripts/services.sh (no auth; NOT Debian's /etc/docker/registry/config.yml)
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    pid=$(pid_of "$STATE/registry.pid")
    if ! alive "$pid"; then
      start_bg registry docker-registry serve "$dir/config.yml"
      pid=$(pid_of "$STATE/registry.pid")
    fi
    wait_for 30 registry "$pid" registry_ok \
      || fail_with_log "$STATE/registry.log" "the registry did not answer http://$REGISTRY_ADDR/v2/"
    step_done "started pid $pid, log $STATE/registry.log"
  fi

  step push
  if registry_has_busybox; then step_done "$REG_IMAGE present"; return 0; fi
  docker tag "$IMAGE" "$REG_IMAGE"
  docker push "$REG_IMAGE" >"$STATE/push.log" 2>&1 || fail_with_log "$STATE/push.log" "docker push $REG_IMAGE failed"
  # drop the local tag: a test that uses $REG_IMAGE then really pulls it
  docker rmi "$REG_IMAGE" >/dev/null 2>&1 || true
  registry_has_busybox || die "$REG_IMAGE is not listed by the registry after the push"
  step_done "pushed $REG_IMAGE"
}

# ------------------------------------------------------------------ mariadb
DB_STARTED=0
# A throw-away test server: no fsync per commit or data-file write (one fsync
# costs ~3 ms on this disk). ZUN_RS_DB_DURABLE=1 keeps MariaDB's defaults.
DB_FAST_OPTS=(--innodb-flush-log-at-trx-commit=0 --innodb-flush-method=nosync --innodb-doublewrite=0)
[ "${ZUN_RS_DB_DURABLE:-0}" = 1 ] && DB_FAST_OPTS=()
db_start() {
  step mariadb
  if db_tcp_ok; then step_done "already running on $DB_HOST:$DB_PORT"; return 0; fi
  DB_STARTED=1
  if db_sock_ok || pgrep -x mariadbd >/dev/null || pgrep -x mysqld >/dev/null; then
    step_done "server process exists; waiting for it"; return 0
  fi
  install -d -o mysql -g mysql -m 755 /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    echo "  initialising /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >>"$STATE/mariadb.log" 2>&1 \
      || fail_with_log "$STATE/mariadb.log" "mariadb-install-db failed"
  fi
  touch "$STATE/mariadb.log"; chown mysql:mysql "$STATE/mariadb.log"
  (
    close_inherited_fds
    exec start-stop-daemon --start --background --make-pidfile --pidfile "$STATE/mariadb.pid" \
      --exec /usr/sbin/mariadbd -- --user=mysql --bind-address="$DB_HOST" --port="$DB_PORT" \
      --log-error="$STATE/mariadb.log" --max-connections="$DB_MAX_CONN" "${DB_FAST_OPTS[@]}"
  ) || fail_with_log "$STATE/mariadb.log" "could not start mariadbd"
  step_done "started pid $(pid_of "$STATE/mariadb.pid"), log $STATE/mariadb.log"
}

# The suite's test processes, their workers' pools and the OpenStack services share one
# server; MariaDB's default of 151 connections was reached once (tests failed with "Too
# many connections"). A server already running with fewer is raised (not persisted).
DB_MAX_CONN=1000
db_conn_limit() {
  step mariadb
  local n
  n=$(mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root -Nse 'SELECT @@GLOBAL.max_connections' 2>/dev/null) || n=''
  case $n in '' | *[!0-9]*) die "cannot read MariaDB's max_connections" ;; esac
  if [ "$n" -ge "$DB_MAX_CONN" ]; then return 0; fi
  mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root -e "SET GLOBAL max_connections = $DB_MAX_CONN" \
    || die "cannot raise MariaDB's max_connections"
  step_done "max_connections $n -> $DB_MAX_CONN"
}

db_wait() {
  [ "$DB_STARTED" = 1 ] || return 0
  step mariadb
  local pid
  pid=$(pid_of "$STATE/mariadb.pid")
  alive "$pid" || pid=""
  wait_for 60 mariadb "$pid" db_sock_ok \
    || fail_with_log "$STATE/mariadb.log" "mariadbd does not answer 'mariadb-admin ping'"
  if ! db_tcp_ok; then
    # Debian's root@localhost uses unix_socket only; add an empty password for TCP
    mariadb -u root <<'SQL' || die "could not set up root over TCP"
ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  fi
  db_tcp_ok || die "MariaDB is up but root@$DB_HOST cannot log in over TCP"
  step_done "up on $DB_HOST:$DB_PORT, root over TCP ok"
}

# ------------------------------------------------------------------ main
cmd_up() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  ensure_packages
  rabbit_start
  db_start
  docker_up
  busybox_image
  registry_up
  db_wait
  db_conn_limit
  rabbit_wait
  echo "services.sh: up in $(ms_since "$T0") ms"
  cmd_status || die "some service is not ok (see above)"
}

mode=${1:-up}
case $mode in
  up|stop) ;;
  status) cmd_status; exit $? ;;
  -h|--help|help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "usage: $0 [up|status|stop]" ;;
esac

mkdir -p "$STATE"
# one up/stop at a time (parallel test runs may all call 'up')
exec 9>"$STATE/services.lock"
if ! flock -n 9; then
  echo "services.sh: waiting for another services.sh (lock $STATE/services.lock)" >&2
  flock -w 900 9 || die "another process holds $STATE/services.lock: pids $(fuser "$STATE/services.lock" 2>/dev/null)"
fi
case $mode in
  up) cmd_up ;;
  stop) cmd_stop ;;
esac
