#!/usr/bin/env bash
# scripts/rabbit-cluster.sh - a 3-node RabbitMQ cluster on loopback for the failover
# tests (tests/cluster_failover.rs). Separate from the shared broker (5672, dist 25672,
# epmd 4369), which it never touches.
#
#   up              start the nodes that are down and form the cluster (idempotent)
#   stop            stop all nodes and our epmd (data kept; `stop --purge` removes it)
#   status          one line per node; exit 1 unless all serve AMQP
#   kill-node N     SIGKILL node N's VM (a crash), wait until it is gone
#   start-node N    start node N again, wait until it serves AMQP and is in the cluster
#   url [VHOST]     the oslo transport_url listing the three nodes
#   ctl N ARGS...   rabbitmqctl against node N (add_vhost, list_queues, ...)
#   partition N     cut node N off (iptables, loopback, the cluster's own ports only):
#                   its distribution connections reset, no new distribution connection
#                   between any nodes (the other two keep theirs), its AMQP port resets
#                   what clients send and drops what it sends
#   heal            remove those rules (also done by `up`, and harmless when there are none)
#
# Node i (1..3): name zrs<i>@localhost, AMQP 127.0.0.1:$((5790+i)), Erlang distribution
# 127.0.0.1:$((25790+i)), a private epmd on 127.0.0.1:4371, data and logs under
# ${ZUN_RS_STATE:-/var/tmp/zun-rs}/rabbit-cluster/zrs<i>. Every command holds an
# exclusive flock on rabbit-cluster/script.lock; waits poll with deadlines.
set -euo pipefail

STATE=${ZUN_RS_STATE:-/var/tmp/zun-rs}
BASE=$STATE/rabbit-cluster
NODES=3
AMQP_BASE=5790
DIST_BASE=25790
EPMD_PORT=4371
CTL_MIN=35790
CTL_MAX=35810
CHAIN=ZRS_PARTITION
IPT="iptables -w 5"
BOOT_DEADLINE=${RABBIT_CLUSTER_BOOT_DEADLINE:-90}
RMQ_BIN=/usr/lib/rabbitmq/bin
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

ME=rabbit-cluster.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # close_inherited_fds (its die is redefined below)
say() { printf '[rabbit-cluster] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

node_no() {
  local n=${1:-}
  [[ $n =~ ^[1-3]$ ]] || die "node must be 1, 2 or 3 (got '${n}')"
  echo "$n"
}
nodename() { echo "zrs$1@localhost"; }
ndir() { echo "$BASE/zrs$1"; }
amqp_port() { echo $((AMQP_BASE + $1)); }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The environment of node $1 (and of the CLI talking to it); run in a subshell.
node_env() {
  local i=$1 d; d=$(ndir "$i")
  local args="-setcookie $(cat "$BASE/cookie") -kernel inet_dist_use_interface {127,0,0,1}"
  export HOME=$BASE/home
  export RABBITMQ_CONF_ENV_FILE=$BASE/empty-env.conf   # not /etc/rabbitmq/rabbitmq-env.conf
  export RABBITMQ_NODENAME; RABBITMQ_NODENAME=$(nodename "$i")
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT; RABBITMQ_NODE_PORT=$(amqp_port "$i")
  export RABBITMQ_DIST_PORT=$((DIST_BASE + i))
  export RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_PID_FILE=$d/beam.pid
  export RABBITMQ_PLUGINS_EXPAND_DIR=$d/plugins-expand
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=$args RABBITMQ_CTL_ERL_ARGS=$args
  export RABBITMQ_CTL_DIST_PORT_MIN=$CTL_MIN RABBITMQ_CTL_DIST_PORT_MAX=$CTL_MAX
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$EPMD_PORT
  unset RABBITMQ_ENV_LOADED
}

ctl() { local i=$1; shift; ( node_env "$i"; exec timeout 60 "$RMQ_BIN/rabbitmqctl" -n "$(nodename "$i")" "$@" ); }

# The VM pid of node $1 when it runs (checked against its environment), else nothing.
vm_pid() {
  local f pid; f="$(ndir "$1")/beam.pid"
  [[ -s $f ]] || return 0
  pid=$(tr -dc 0-9 < "$f")
  [[ -n $pid && -r /proc/$pid/environ ]] || return 0
  tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$(nodename "$1")" || return 0
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 0
  echo "$pid"
}

layout() {
  mkdir -p "$BASE/home"
  if [[ ! -s $BASE/cookie ]]; then
    head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 > "$BASE/cookie"
    chmod 400 "$BASE/cookie"
  fi
  [[ -e $BASE/home/.erlang.cookie ]] || { cp "$BASE/cookie" "$BASE/home/.erlang.cookie"; chmod 400 "$BASE/home/.erlang.cookie"; }
  : > "$BASE/empty-env.conf"
  local i j d
  for ((i = 1; i <= NODES; i++)); do
    d=$(ndir "$i"); mkdir -p "$d/log" "$d/mnesia"
    echo '[].' > "$d/enabled_plugins"
    {
      echo "listeners.tcp.1 = 127.0.0.1:$(amqp_port "$i")"
      echo "cluster_partition_handling = pause_minority"
      echo "log.console = false"
      echo "log.file.level = info"
      echo "cluster_formation.peer_discovery_backend = classic_config"
      echo "cluster_formation.discovery_retry_limit = 2"
      echo "cluster_formation.discovery_retry_interval = 200"
      for ((j = 1; j <= NODES; j++)); do echo "cluster_formation.classic_config.nodes.$j = $(nodename "$j")"; done
    } > "$d/rabbitmq.conf"
  done
}

epmd_up() {
  listening "$EPMD_PORT" && return 0
  ERL_EPMD_ADDRESS=127.0.0.1 detach "$BASE/epmd.log" epmd -port "$EPMD_PORT" -address 127.0.0.1
  record_pid "$BASE/epmd.pid" $!
  wait_until 10 "epmd on $EPMD_PORT" listening "$EPMD_PORT"
}

# wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds or the deadline passes.
wait_until() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(now_ms) + secs * 1000 ))
  until "$@"; do
    (( $(now_ms) < end )) || die "$what: not after ${secs} s"
    sleep 0.1
  done
}

launch() {
  local i=$1
  [[ -n $(vm_pid "$i") ]] && return 0
  for p in $(amqp_port "$i") $((DIST_BASE + i)); do
    listening "$p" && die "port $p is in use by something else"
  done
  rm -f "$(ndir "$i")/beam.pid" "$(ndir "$i")/beam.pid.id"
  # (no inherited descriptor, the script lock or a test's, may live on in the daemon)
  ( close_inherited_fds; node_env "$i"; exec "$RMQ_BIN/rabbitmq-server" -detached ) >>"$(ndir "$i")/log/launch.out" 2>&1
}

serving() { listening "$(amqp_port "$1")"; }
vm_gone() { [[ -z $(vm_pid "$1") ]]; }
running_nodes() { ctl "$1" eval 'io:format("~p~n", [length(rabbit_mnesia:cluster_nodes(running))]).' 2>/dev/null | head -1 | tr -dc 0-9; }
all_running() { [[ $(running_nodes "$1") == "$NODES" ]]; }

cmd_up() {
  local t; t=$(now_ms)
  layout; epmd_up; cmd_heal
  local i
  for ((i = 1; i <= NODES; i++)); do launch "$i"; done
  for ((i = 1; i <= NODES; i++)); do wait_until "$BOOT_DEADLINE" "$(nodename "$i") serving AMQP" serving "$i"; done
  wait_until "$BOOT_DEADLINE" "all $NODES nodes running in one cluster" all_running 1
  say "up: $NODES nodes in $(( $(now_ms) - t )) ms"
}

cmd_stop() {
  local i pid
  for ((i = 1; i <= NODES; i++)); do
    pid=$(vm_pid "$i"); [[ -n $pid ]] || continue
    ctl "$i" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = 1; i <= NODES; i++)); do
    if ! wait_until_quiet 30 vm_gone "$i"; then pid=$(vm_pid "$i"); [[ -n $pid ]] && kill -KILL "$pid"; fi
  done
  if [[ -s $BASE/epmd.pid ]]; then
    pid=$(pid_of "$BASE/epmd.pid") # nothing when the file is stale and its pid reused
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$BASE/epmd.pid" "$BASE/epmd.pid.id"
  fi
  if [[ ${1:-} == --purge ]]; then rm -rf "${BASE:?}"/zrs*; say "stopped, data removed"; else say "stopped"; fi
}

wait_until_quiet() {
  local secs=$1; shift
  local end=$(( $(now_ms) + secs * 1000 ))
  until "$@"; do (( $(now_ms) < end )) || return 1; sleep 0.1; done
}

cmd_status() {
  local i ok=0 pid
  for ((i = 1; i <= NODES; i++)); do
    pid=$(vm_pid "$i")
    if serving "$i"; then echo "$(nodename "$i") pid=$pid amqp=127.0.0.1:$(amqp_port "$i") serving"; else
      echo "$(nodename "$i") pid=${pid:--} amqp=127.0.0.1:$(amqp_port "$i") down"; ok=1; fi
  done
  return $ok
}

cmd_kill() {
  local i; i=$(node_no "${1:-}")
  local pid; pid=$(vm_pid "$i")
  [[ -n $pid ]] || { say "$(nodename "$i") is not running"; return 0; }
  kill -KILL "$pid"
  wait_until 10 "$(nodename "$i") gone" vm_gone "$i"
  say "killed $(nodename "$i") (pid $pid)"
}

cmd_start() {
  local i t; i=$(node_no "${1:-}"); t=$(now_ms)
  layout; epmd_up; launch "$i"
  wait_until "$BOOT_DEADLINE" "$(nodename "$i") serving AMQP" serving "$i"
  wait_until "$BOOT_DEADLINE" "$(nodename "$i") back in the cluster" all_running "$i"
  say "$(nodename "$i") serving again after $(( $(now_ms) - t )) ms"
}

# The local ports of the Erlang distribution connections that node $1's VM opened to its
# peers (the ones it accepted use its own distribution port).
own_dist_ports() {
  local pid j filter=""; pid=$(vm_pid "$1"); [[ -n $pid ]] || return 0
  for ((j = 1; j <= NODES; j++)); do
    (( j == $1 )) && continue
    filter+="${filter:+ or }dport = :$((DIST_BASE + j))"
  done
  ss -tnpH state established "( $filter )" 2>/dev/null | awk -v p="pid=$pid," 'index($0, p) {print $3}' | sed 's/.*://' | sort -un
}

cmd_partition() {
  local i; i=$(node_no "${1:-}")
  [[ -n $(vm_pid "$i") ]] || die "$(nodename "$i") is not running"
  cmd_heal
  $IPT -N "$CHAIN"
  local a=$(amqp_port "$i") d=$((DIST_BASE + i)) p ports
  ports=$(own_dist_ports "$i")
  # The resets below pass (REJECT's own reset would otherwise meet the same rules).
  $IPT -A "$CHAIN" -p tcp --tcp-flags RST RST -j RETURN
  # No new distribution connection between the nodes (the two others keep theirs):
  # node N cannot reconnect, and nobody reconnects to it.
  $IPT -A "$CHAIN" -p tcp --syn -m multiport --dports "$((DIST_BASE + 1)):$((DIST_BASE + NODES))" -j DROP
  # Node N's distribution connections: every segment either side sends is answered with
  # a reset, so both ends see the link fail at their next tick (as a cut cable shows
  # itself), not only after net_ticktime.
  for p in $d $ports; do
    $IPT -A "$CHAIN" -p tcp --dport "$p" -j REJECT --reject-with tcp-reset
    $IPT -A "$CHAIN" -p tcp --sport "$p" -j REJECT --reject-with tcp-reset
  done
  # Its AMQP port: clients get a reset for what they send; what it sends is lost.
  $IPT -A "$CHAIN" -p tcp --dport "$a" -j REJECT --reject-with tcp-reset
  $IPT -A "$CHAIN" -p tcp --sport "$a" -j DROP
  $IPT -I OUTPUT -o lo -p tcp -j "$CHAIN"
  say "partition: $(nodename "$i") cut off (amqp $a, dist $d, its own dist connections from ports: ${ports:-none})"
}

cmd_heal() {
  $IPT -S "$CHAIN" >/dev/null 2>&1 || return 0
  while $IPT -D OUTPUT -o lo -p tcp -j "$CHAIN" 2>/dev/null; do :; done
  $IPT -F "$CHAIN"; $IPT -X "$CHAIN"
  say "partition rules removed"
}

cmd_url() {
  local i s="" vhost=${1:-}
  for ((i = 1; i <= NODES; i++)); do s+="${s:+,}guest:guest@127.0.0.1:$(amqp_port "$i")"; done
  echo "rabbit://$s/$vhost"
}

cmd=${1:-}; shift || true
case $cmd in
  up|stop|kill-node|start-node|partition|heal) ;;
  status) cmd_status; exit ;;
  url) cmd_url "$@"; exit ;;
  ctl) i=$(node_no "${1:-}"); shift; ctl "$i" "$@"; exit ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
mkdir -p "$BASE"
exec 9>"$BASE/script.lock"
flock -w 300 9 || die "another rabbit-cluster.sh holds $BASE/script.lock"
case $cmd in
  up) cmd_up ;;
  stop) cmd_stop "$@" ;;
  kill-node) cmd_kill "$@" ;;
  start-node) cmd_start "$@" ;;
  partition) cmd_partition "$@" ;;
  heal) cmd_heal ;;
esac
