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
# start_ticks PID: when PID started, in clock ticks since boot (no wall clock involved);
# empty when there is no such process
start_ticks() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # shellcheck disable=SC2086 # split the fields after "(comm) "; starttime is field 22
  set -- ${st##*) }
  if [ $# -ge 20 ]; then echo "${20}"; fi
}
# started_at PID: when PID started, in whole seconds since the epoch; empty when unknown.
# Derived from the boot time, so a step of the wall clock since then moves it.
started_at() {
  local t btime
  t=$(start_ticks "$1")
  btime=$(sed -n 's/^btime //p' /proc/stat)
  if [ -n "$t" ] && [ -n "$btime" ]; then echo $(( btime + t / $(getconf CLK_TCK) )); fi
}
boot_id() { cat /proc/sys/kernel/random/boot_id 2>/dev/null || true; }
# record_pid FILE PID: writes the pid file and, beside it, FILE.id: "PID BOOT_ID START_TICKS",
# which pid_of checks instead of the wall clock
record_pid() {
  echo "$2" >"$1"
  echo "$2 $(boot_id) $(start_ticks "$2")" >"$1.id"
}
# pid_of FILE: the pid a pid file names, or nothing. A pid file can outlive its process (a
# machine or container restarted with the state directory kept, a CI run in another pid
# namespace) and the kernel reuses pids, so a live process behind the pid may be someone
# else's, which pid_of must not name (callers kill what it names).
# - With a FILE.id record (record_pid) at least as new as the file: the pid is ours when
#   the boot and the process's start tick are the recorded ones. The wall clock plays no
#   part: a clock stepped forward once made every pid file of a running stack look stale
#   (the old check below), and `openstack.sh stop` then stopped nothing.
# - Without one (a pid file a daemon wrote itself): a live process that started after the
#   file was last written is someone else's (2 s of slack covers the clocks' rounding);
#   when the pid passes, the record is written so that later checks need no clock.
# A dead pid is still named, so that callers see the process exit.
pid_of() {
  [ -f "$1" ] || return 0
  local pid start at written rpid rboot rstart
  pid=$(head -c 64 "$1" 2>/dev/null) || true # without its trailing newline
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  start=$(start_ticks "$pid")
  if [ -f "$1.id" ] && ! [ "$1" -nt "$1.id" ] \
    && read -r rpid rboot rstart _ <"$1.id" 2>/dev/null && [ "$rpid" = "$pid" ]; then
    if [ -n "$start" ] && { [ "$rboot" != "$(boot_id)" ] || [ "$rstart" != "$start" ]; }; then return 0; fi
    echo "$pid"
    return 0
  fi
  if [ -n "$start" ]; then
    written=$(stat -c %Y "$1" 2>/dev/null || echo 0)
    at=$(started_at "$pid")
    if [ -n "$at" ] && [ "$at" -gt $((written + 2)) ]; then return 0; fi
    echo "$pid $(boot_id) $start" >"$1.id" 2>/dev/null || true
  fi
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
