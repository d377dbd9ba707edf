#!/usr/bin/env bash
# scripts/conformance-venv.sh - the Python venv that holds the REAL zun 18.0.0
# (zun-db-manage, zun's RPC client and objects, oslo.messaging) for the
# conformance tests and scripts/zun-db.sh.
#
# Usage:  bash scripts/conformance-venv.sh            # create or repair; prints the venv path last
#         bash scripts/conformance-venv.sh --freeze   # also rewrite scripts/conformance-constraints.txt
# Env:    ZUN_RS_VENV   venv path (default /var/tmp/zun-rs/venv)
#         ZUN_RS_PYTHON interpreter to build it with (default: python3.11, else python3)
#
# Idempotent: when VENV/bin/python imports zun, oslo_messaging and pymysql it
# does nothing (about 1 s). A fresh build takes about 35 s (PyPI).
# When scripts/conformance-constraints.txt exists, pip is held to those versions.
set -euo pipefail

VENV=${ZUN_RS_VENV:-/var/tmp/zun-rs/venv}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONSTRAINTS=$HERE/conformance-constraints.txt
REQS=(zun==18.0.0 pymysql)
FREEZE=0
[ "${1:-}" = --freeze ] && FREEZE=1

die() { echo "conformance-venv.sh: ERROR: $*" >&2; exit 1; }
log() { echo "conformance-venv.sh: $*" >&2; }
T0=$(date +%s%N)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

venv_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/zun-db-manage" ] \
    && "$VENV/bin/python" -c 'import zun, oslo_messaging, pymysql' >/dev/null 2>&1
}

mkdir -p "$(dirname "$VENV")"
# one builder at a time
exec 8>"$VENV.lock"
flock -w 600 8 || die "another conformance-venv.sh holds $VENV.lock"

if venv_ok && [ "$FREEZE" = 0 ]; then
  log "ok, already built ($(ms_since "$T0") ms)"
  echo "$VENV"
  exit 0
fi

pick_python() {
  local c v
  for c in ${ZUN_RS_PYTHON:-} python3.11 python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    # zun 18.0.0 wants Python >= 3.9 (measured on 3.11)
    v=$("$c" -c 'import sys; print("%d%02d" % sys.version_info[:2])' 2>/dev/null) || continue
    [ "$v" -ge 309 ] || continue
    "$c" -c 'import ensurepip, venv' >/dev/null 2>&1 || continue
    echo "$c"; return 0
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  PY=$(pick_python) || die "no usable python3 (>= 3.9 with venv/ensurepip); try: bash scripts/services.sh (installs python3-venv)"
  log "creating $VENV with $PY ($("$PY" --version 2>&1))"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "$PY -m venv $VENV failed"
fi

PIP_ARGS=(install -q --disable-pip-version-check)
if [ -f "$CONSTRAINTS" ] && [ "$FREEZE" = 0 ]; then PIP_ARGS+=(-c "$CONSTRAINTS"); fi
log "pip ${PIP_ARGS[*]} ${REQS[*]}"
"$VENV/bin/python" -m pip "${PIP_ARGS[@]}" "${REQS[@]}" >"$VENV.pip.log" 2>&1 || {
  tail -n 30 "$VENV.pip.log" >&2
  die "pip install failed (log $VENV.pip.log)"
}
venv_ok || die "the venv was built but 'import zun, oslo_messaging, pymysql' fails"

if [ "$FREEZE" = 1 ]; then
  {
    echo "# pip freeze of the conformance venv (zun==18.0.0 pymysql), made by conformance-venv.sh --freeze"
    "$VENV/bin/python" -m pip freeze --disable-pip-version-check | grep -v '^-e '
  } >"$CONSTRAINTS"
  log "wrote $CONSTRAINTS"
fi
log "built in $(ms_since "$T0") ms: zun $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("zun"), "oslo.messaging", m.version("oslo.messaging"))' 2>/dev/null)"
echo "$VENV"
