# scripts/lib/common.sh - shell helpers shared by scripts/services.sh and scripts/openstack.sh
# (and the daemon launcher of scripts/rabbit-cluster.sh). Sourced, never run; the caller sets
# ME to its own name (used in messages) and `set -euo pipefail` itself.

now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
die() { printf '%s: ERROR: %s\n' "$ME" "$*" >&2; exit 1; }
fail_with_log() { # fail_with_log LOGFILE MESSAGE: the log's tail, then die
  if [ -f "$1" ]; then echo "--- last lines of $1:" >&2; tail -n 30 "$1" >&2; fi
  die "$2"
}
pid_of() { if [ -f "$1" ]; then cat "$1" 2>/dev/null || true; fi; }
# alive PID: a live process (a zombie waiting to be reaped counts as dead)
alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
  [ "$st" != Z ]
}
# wait_for SECONDS WHAT PID CMD...: poll CMD every 0.1 s until it succeeds; returns 1 at the
# deadline, 2 when PID (if not empty) has exited.
wait_for() {
  local secs=$1 what=$2 pid=$3; shift 3
  local end=$(( $(now_ns) + secs * 1000000000 ))
  while :; do
    "$@" && return 0
    if [ -n "$pid" ] && ! alive "$pid"; then echo "$ME: $what: process $pid exited" >&2; return 2; fi
    [ "$(now_ns)" -lt "$end" ] || { echo "$ME: $what: not ready after ${secs}s" >&2; return 1; }
    sleep 0.1
  done
}
# close_inherited_fds: in a subshell about to exec a daemon, close every descriptor but
# stdio. A daemon must not inherit a caller's lock (a test's flock on a service lock, the
# script's own lock): it would hold it for as long as it runs.
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}
# detach LOGFILE CMD...: start CMD in the background in its own session, stdin from
# /dev/null, stdout and stderr appended to LOGFILE, no inherited descriptors. $! is its pid.
detach() {
  local logfile=$1; shift
  (
    close_inherited_fds
    exec setsid "$@" >>"$logfile" 2>&1 </dev/null
  ) &
}
