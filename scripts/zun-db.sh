#!/usr/bin/env bash
# scripts/zun-db.sh - a MariaDB database with zun 18.0.0's real schema, built by
# zun's own migrations (zun-db-manage upgrade, 84 alembic revisions).
#
# Usage:  bash scripts/zun-db.sh NAME          # drop NAME if it exists, create it (utf8),
#                                              # migrate; prints the SQLAlchemy URL last
#         bash scripts/zun-db.sh --fast NAME   # the same schema, loaded from a dump of a
#                                              # database that zun-db-manage migrated (the dump
#                                              # is cached per zun version under /var/tmp/zun-rs):
#                                              # ~1 s instead of ~9 s. ZUN_RS_DB_FAST=1 does the same.
#         bash scripts/zun-db.sh --drop NAME   # drop NAME
# Env:    ZUN_RS_VENV     venv with zun (default /var/tmp/zun-rs/venv; built on demand
#                         by scripts/conformance-venv.sh)
#         ZUN_RS_DB_HOST  default 127.0.0.1, ZUN_RS_DB_PORT default 3306 (user root, no password)
# Needs MariaDB from scripts/services.sh.
set -euo pipefail

VENV=${ZUN_RS_VENV:-/var/tmp/zun-rs/venv}
STATE=${ZUN_RS_STATE:-/var/tmp/zun-rs}
DB_HOST=${ZUN_RS_DB_HOST:-127.0.0.1}
DB_PORT=${ZUN_RS_DB_PORT:-3306}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "zun-db.sh: ERROR: $*" >&2; exit 1; }
usage() { die "usage: $0 [--fast] NAME | $0 --drop NAME"; }

DROP=0
FAST=${ZUN_RS_DB_FAST:-0}
case ${1:-} in
  --drop) DROP=1; NAME=${2:-} ;;
  --fast) FAST=1; NAME=${2:-} ;;
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  *) NAME=${1:-} ;;
esac
[ -n "$NAME" ] || usage
# a plain identifier: it goes into SQL and into a URL unquoted
[[ $NAME =~ ^[A-Za-z0-9_]{1,64}$ ]] || die "database name must match [A-Za-z0-9_]{1,64}: '$NAME'"

sql() { mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root --connect-timeout=5 "$@"; }
dump() { mariadb-dump --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root --skip-comments "$@"; }
sql -Nse 'SELECT 1' >/dev/null 2>&1 \
  || die "cannot log in as root@$DB_HOST:$DB_PORT; run: bash scripts/services.sh"

if [ "$DROP" = 1 ]; then
  sql -e "DROP DATABASE IF EXISTS \`$NAME\`" || die "DROP DATABASE $NAME failed"
  echo "zun-db.sh: dropped $NAME" >&2
  exit 0
fi

T0=$(date +%s%N)
if ! [ -x "$VENV/bin/zun-db-manage" ]; then
  echo "zun-db.sh: no $VENV/bin/zun-db-manage; building the venv" >&2
  VENV=$(ZUN_RS_VENV=$VENV bash "$HERE/conformance-venv.sh" | tail -n 1)
fi

HOSTPORT=$DB_HOST
[ "$DB_PORT" = 3306 ] || HOSTPORT=$DB_HOST:$DB_PORT
url_of() { echo "mysql+pymysql://root@$HOSTPORT/$1?charset=utf8"; }

TMP=$(mktemp -d /tmp/zun-db.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

create_db() {
  sql -e "DROP DATABASE IF EXISTS \`$1\`; CREATE DATABASE \`$1\` CHARACTER SET utf8" \
    || die "could not create database $1"
}

# migrate DB: run zun's own migrations on the empty database DB; prints the revision count
migrate() {
  printf '[DEFAULT]\nstate_path = %s\n[database]\nconnection = %s\n' "$TMP" "$(url_of "$1")" >"$TMP/zun.conf"
  if ! "$VENV/bin/zun-db-manage" --config-file "$TMP/zun.conf" upgrade >"$TMP/upgrade.log" 2>&1; then
    grep -v -i 'deprecat' "$TMP/upgrade.log" | tail -n 30 >&2
    die "zun-db-manage upgrade of $1 failed"
  fi
  grep -c 'Running upgrade' "$TMP/upgrade.log" || true
}

ms() { echo $(( ($(date +%s%N) - T0) / 1000000 )); }

if [ "$FAST" = 1 ]; then
  zv=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("zun"))' 2>/dev/null) \
    || die "cannot read zun's version in $VENV"
  CACHE=$STATE/zun-schema-$zv.sql
  mkdir -p "$STATE"
  exec 7>"$CACHE.lock"
  flock -w 300 7 || die "timeout waiting for $CACHE.lock"
  if [ ! -s "$CACHE" ]; then
    tmpl=zunrs_schema_template
    create_db "$tmpl"
    n=$(migrate "$tmpl")
    { dump --no-data "$tmpl"; dump --no-create-info "$tmpl" alembic_version; } >"$CACHE.tmp" \
      || die "mariadb-dump of $tmpl failed"
    mv "$CACHE.tmp" "$CACHE"
    sql -e "DROP DATABASE \`$tmpl\`" || true
    echo "zun-db.sh: cached zun $zv's migrated schema ($n revisions) in $CACHE" >&2
  fi
  exec 7>&-
  create_db "$NAME"
  sql "$NAME" <"$CACHE" || die "loading $CACHE into $NAME failed"
  echo "zun-db.sh: $NAME loaded from $CACHE in $(ms) ms" >&2
else
  create_db "$NAME"
  n=$(migrate "$NAME")
  echo "zun-db.sh: $NAME migrated ($n revisions) in $(ms) ms" >&2
fi
url_of "$NAME"
