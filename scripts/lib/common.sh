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
# started_at PID: when PID started, in whole seconds since the epoch; empty when unknown
started_at() {
  local st btime
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  btime=$(sed -n 's/^btime //p' /proc/stat)
  # shellcheck disable=SC2086 # split the fields after "(comm) "; starttime is field 22
  set -- ${st##*) }
  if [ -n "$btime" ] && [ $# -ge 20 ]; then echo $(( btime + ${20} / $(getconf CLK_TCK) )); fi
}
# pid_of FILE: the pid a pid file names, or nothing. A pid file can outlive its process (a
# machine or container restarted with the state directory kept) and the kernel reuses pids,
# so a live process that started after the file was last written is someone else's: the
# file is stale and pid_of names nobody. (A daemon's own pid file is written after it
# starts, ours right after the fork; 2 s of slack covers the clocks' rounding.)
pid_of() {
  [ -f "$1" ] || return 0
  local pid start written
  pid=$(head -c 64 "$1" 2>/dev/null) || true # without its trailing newline
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  start=$(started_at "$pid")
  written=$(stat -c %Y "$1" 2>/dev/null || echo 0)
  if [ -n "$start" ] && [ "$start" -gt $((written + 2)) ]; then return 0; fi
  echo "$pid"
}
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
