#!/usr/bin/env bash
# scripts/openstack.sh - the real OpenStack services zun-compute-rs' OpenStack tests use.
#
#   Keystone 30        http://127.0.0.1:35357/v3  fernet tokens, 180 s lifetime (on purpose)
#   Placement 16       http://127.0.0.1:8778      keystone auth
#   Neutron 29         http://127.0.0.1:9696      ML2, API only, agentless driver zunrs_bind_all
#   kuryr-libnetwork   http://127.0.0.1:23750     Docker network plugin "kuryr"
#   zun-api 18.0.0     http://127.0.0.1:9517/v1   keystone auth, kuryr network driver
#   Cinder 29          http://127.0.0.1:8776/v3   api + scheduler + volume, loop-device driver zunrs_loopvol
#   Glance 33          http://127.0.0.1:9292      keystone auth, file store under state/glance (catalog `image`)
#   client             python-openstackclient + python-zunclient + osc-placement (`openstack appcontainer`, `openstack resource provider`)
#
# Usage:  bash scripts/openstack.sh up|status|stop|env [SERVICE...]
#   SERVICE: keystone placement neutron kuryr zun-api client cinder glance (default: all, in this order)
#   up      install (uv, pinned, venvs under the state dir), configure, start and wait
#           for each service that is not answering already. Idempotent, and safe to
#           run from several shells at once (lock). Restarting a service keeps its data.
#           Writes the env file (see `env`). Fails with the service's log tail.
#   status  one line per service; exit 1 when one of those asked for is down.
#   stop    stop the services this script started (by pid file), in reverse order.
#   env     print the env file: OS_* for the admin user, ZUNRS_OS_* for the tests.
#   reset   stop all, drop the databases and the RabbitMQ vhost (venvs are kept).
#
# Needs scripts/services.sh's MariaDB and RabbitMQ (and Docker + iptables for kuryr),
# python3 >= 3.9 with venv, and PyPI. State: ${ZUN_RS_STATE:-/var/tmp/zun-rs}/openstack.
# Databases zunrs_os_<svc>; RabbitMQ vhost zunrs_os (zun-api and the workers it drives).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJ=$(cd "$HERE/.." && pwd)
FILES=$HERE/openstack
STATE=${ZUN_RS_STATE:-/var/tmp/zun-rs}
OS=$STATE/openstack
ZUN_VENV=${ZUN_RS_VENV:-$STATE/venv}
KPORT=35357 PPORT=8778 NPORT=9696 KURYR_PORT=23750 ZPORT=9517
CPORT=8776
KURL=http://127.0.0.1:$KPORT/v3
VHOST=zunrs_os
DB_URL_BASE=mysql+pymysql://root@127.0.0.1
KURYR_SPEC=/etc/docker/plugins/kuryr.spec
ALL=(keystone placement neutron kuryr zun-api client)
ALL+=(cinder)
ALL+=(glance) # Glance: after keystone, nothing needs it earlier
GPORT=9292
TOKEN_LIFETIME=${ZUNRS_OS_TOKEN_LIFETIME:-180}

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac
export PATH
# every service writes bytecode-less venvs otherwise slow to start; uv compiles at install
unset PYTHONDONTWRITEBYTECODE || true

ME=openstack.sh
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
T0=$(now_ns)
log() { printf 'openstack.sh: %s\n' "$*" >&2; }
http_code() { curl -s -m 3 -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
mysql_q() { mariadb --protocol=tcp -h 127.0.0.1 -u root -Nse "$1"; }

# ------------------------------------------------------------------ install (uv, pinned)
UV=$OS/uv/bin/uv
ensure_uv() {
  [ -x "$UV" ] && return 0
  log "bootstrapping uv"
  rm -rf "$OS/uv"
  python3 -m venv "$OS/uv" >/dev/null || die "python3 -m venv failed (bash scripts/services.sh installs python3-venv)"
  "$OS/uv/bin/pip" install -q "uv==0.13.9" >"$OS/log/uv-install.log" 2>&1 \
    || fail_with_log "$OS/log/uv-install.log" "pip install uv failed"
}
packages() {
  case $1 in
    keystone) echo "keystone==30.0.0 pymysql gunicorn" ;;
    placement) echo "openstack-placement==16.0.0 pymysql gunicorn" ;;
    neutron) echo "neutron==29.0.0 pymysql gunicorn $OS/src/zunrs_mech" ;;
    kuryr) echo "kuryr-libnetwork==18.0.0" ;;
    cinder) echo "cinder==29.0.0 pymysql gunicorn $OS/src/zunrs_loopvol" ;;
    glance) echo "glance==33.0.0 pymysql gunicorn" ;;
    client) echo "python-openstackclient==10.5.0 python-zunclient==5.5.0 osc-placement==4.9.1" ;;
  esac
}
# install_venv SVC: a venv per service, held to scripts/openstack/pins/SVC.txt.
# Skipped when the venv was built from the same package list and pins.
install_venv() {
  local svc=$1 v=$OS/venv/$1 t0 want
  t0=$(now_ns)
  want=$( { packages "$svc"; cat "$FILES/pins/$svc.txt" 2>/dev/null || true
            [ "$svc" = neutron ] && cat "$FILES"/zunrs_mech/zunrs_mech/*.py
            [ "$svc" = cinder ] && cat "$FILES"/zunrs_loopvol/zunrs_loopvol/*.py; true; } | sha256sum | cut -c1-16)
  if [ -x "$v/bin/python" ] && [ "$(cat "$v/.zunrs-built" 2>/dev/null || true)" = "$want" ]; then return 0; fi
  ensure_uv
  if [ "$svc" = neutron ]; then # build from a copy: setuptools writes build/ into the source
    rm -rf "$OS/src/zunrs_mech"; mkdir -p "$OS/src"; cp -r "$FILES/zunrs_mech" "$OS/src/"
  fi
  if [ "$svc" = cinder ]; then
    rm -rf "$OS/src/zunrs_loopvol"; mkdir -p "$OS/src"; cp -r "$FILES/zunrs_loopvol" "$OS/src/"
  fi
  [ -x "$v/bin/python" ] || "$UV" venv -q --python python3 "$v" >"$OS/log/install-$svc.log" 2>&1 \
    || fail_with_log "$OS/log/install-$svc.log" "uv venv $v failed"
  local pins=()
  [ -f "$FILES/pins/$svc.txt" ] && pins=(-c "$FILES/pins/$svc.txt")
  # shellcheck disable=SC2046
  "$UV" pip install -q --compile-bytecode --python "$v/bin/python" "${pins[@]}" $(packages "$svc") \
    >>"$OS/log/install-$svc.log" 2>&1 || fail_with_log "$OS/log/install-$svc.log" "installing $svc failed"
  echo "$want" >"$v/.zunrs-built"
  log "$svc installed in $(ms_since "$t0") ms"
}

# ------------------------------------------------------------------ helpers for servers
db_ensure() { # db_ensure NAME: create zunrs_os_NAME if missing (never dropped by up)
  mysql_q "CREATE DATABASE IF NOT EXISTS zunrs_os_$1 CHARACTER SET utf8" \
    || die "cannot create database zunrs_os_$1 on 127.0.0.1:3306 (bash scripts/services.sh)"
}
db_has_tables() { [ "$(mysql_q "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='zunrs_os_$1'" 2>/dev/null || echo 0)" -gt 0 ]; }

# start_daemon NAME CMD...: own session, log $OS/log/NAME.log, pid $OS/run/NAME.pid
start_daemon() {
  local name=$1; shift
  : >"$OS/log/$name.log"
  detach "$OS/log/$name.log" "$@"
  record_pid "$OS/run/$name.pid" $!
}
# serve NAME PORT APP [ENV=VAL...]: a WSGI app under gunicorn, waits for READY and HTTP
serve() {
  local name=$1 port=$2 app=$3; shift 3
  start_daemon "$name" env "$@" "$OS/venv/$name/bin/python" "$FILES/serve_wsgi.py" "$app" "$port"
  local pid; pid=$(pid_of "$OS/run/$name.pid")
  wait_for 90 "$name" "$pid" grep -q '^READY' "$OS/log/$name.log" \
    || fail_with_log "$OS/log/$name.log" "$name did not start (config $OS/etc/$name)"
}
authtoken() { # [keystone_authtoken] for service user $1
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KURL
auth_url = $KURL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $1
region_name = RegionOne
EOF
}

# probes: cheap, unauthenticated
ok_keystone() { [ "$(http_code "$KURL")" = 200 ]; }
ok_placement() { [ "$(http_code "http://127.0.0.1:$PPORT/")" = 200 ]; }
ok_neutron() { [ "$(http_code "http://127.0.0.1:$NPORT/")" = 200 ]; }
ok_kuryr() { [ "$(http_code -X POST "http://127.0.0.1:$KURYR_PORT/Plugin.Activate")" = 200 ] && [ -f "$KURYR_SPEC" ]; }
ok_zun-api() { [ "$(http_code "http://127.0.0.1:$ZPORT/")" = 200 ]; }
ok_cinder() { [ "$(http_code "http://127.0.0.1:$CPORT/")" = 300 ] && cinder_volume_up; }
ok_glance() { [ "$(http_code "http://127.0.0.1:$GPORT/")" = 300 ]; } # the version list
ok_client() { [ -x "$OS/venv/client/bin/openstack" ] && [ -f "$OS/venv/client/.zunrs-built" ]; }
probe() { "ok_$1"; }
port_of() {
  case $1 in keystone) echo $KPORT ;; placement) echo $PPORT ;; neutron) echo $NPORT ;;
    kuryr) echo $KURYR_PORT ;; zun-api) echo $ZPORT ;; cinder) echo $CPORT ;;
    glance) echo $GPORT ;;
    *) echo - ;; esac
}

# ------------------------------------------------------------------ keystone
start_keystone() {
  local e=$OS/etc/keystone
  mkdir -p "$e/fernet-keys" "$e/credential-keys"
  chmod 700 "$e/fernet-keys" "$e/credential-keys"
  db_ensure keystone
  cat >"$e/keystone.conf" <<EOF
# written by zun-compute-rs scripts/openstack.sh
[DEFAULT]
log_file = $OS/log/keystone-app.log
[database]
connection = $DB_URL_BASE/zunrs_os_keystone?charset=utf8
[token]
provider = fernet
# short on purpose: the test suite crosses token expiry
expiration = $TOKEN_LIFETIME
[fernet_tokens]
key_repository = $e/fernet-keys
[credential]
key_repository = $e/credential-keys
EOF
  local K=("$OS/venv/keystone/bin/keystone-manage" --config-file "$e/keystone.conf")
  local mlog=$OS/log/keystone-manage.log
  if ! db_has_tables keystone || [ ! -f "$OS/state/keystone.bootstrapped" ]; then
    {
      "${K[@]}" db_sync
      [ -n "$(ls -A "$e/fernet-keys")" ] || "${K[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
      [ -n "$(ls -A "$e/credential-keys")" ] || "${K[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
      "${K[@]}" bootstrap --bootstrap-password admin --bootstrap-username admin \
        --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "$KURL/" --bootstrap-public-url "$KURL/" --bootstrap-internal-url "$KURL/"
    } >"$mlog" 2>&1 || fail_with_log "$mlog" "keystone-manage failed"
  fi
  serve keystone $KPORT keystone.wsgi.api:application OS_KEYSTONE_CONFIG_DIR="$e"
  wait_for 30 "keystone /v3" "$(pid_of "$OS/run/keystone.pid")" ok_keystone \
    || fail_with_log "$OS/log/keystone.log" "keystone does not answer $KURL"
  python3 "$FILES/keystone_setup.py" "$KURL" "http://127.0.0.1:$PPORT" "http://127.0.0.1:$NPORT" \
    "http://127.0.0.1:$ZPORT/v1" >"$OS/log/keystone-setup.log" 2>&1 \
    || fail_with_log "$OS/log/keystone-setup.log" "registering users and the catalog in keystone failed"
  touch "$OS/state/keystone.bootstrapped"
}

# ------------------------------------------------------------------ placement
start_placement() {
  local e=$OS/etc/placement
  mkdir -p "$e"
  db_ensure placement
  { cat <<EOF
# written by zun-compute-rs scripts/openstack.sh
[DEFAULT]
log_file = $OS/log/placement-app.log
[api]
auth_strategy = keystone
[placement_database]
connection = $DB_URL_BASE/zunrs_os_placement?charset=utf8
EOF
    authtoken placement; } >"$e/placement.conf"
  "$OS/venv/placement/bin/placement-manage" --config-file "$e/placement.conf" db sync \
    >"$OS/log/placement-manage.log" 2>&1 || fail_with_log "$OS/log/placement-manage.log" "placement-manage db sync failed"
  serve placement $PPORT placement.wsgi.api:application OS_PLACEMENT_CONFIG_DIR="$e"
  wait_for 30 placement "$(pid_of "$OS/run/placement.pid")" ok_placement \
    || fail_with_log "$OS/log/placement.log" "placement does not answer on $PPORT"
}

# ------------------------------------------------------------------ neutron
start_neutron() {
  local e=$OS/etc/neutron
  mkdir -p "$e" "$OS/state/neutron/lock"
  db_ensure neutron
  { cat <<EOF
# written by zun-compute-rs scripts/openstack.sh
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
bind_host = 127.0.0.1
bind_port = $NPORT
api_paste_config = $OS/venv/neutron/etc/neutron/api-paste.ini
state_path = $OS/state/neutron
log_file = $OS/log/neutron-app.log
# API only: no agents consume RPC, the notifier needs a URL all the same
transport_url = fake://
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0
[database]
connection = $DB_URL_BASE/zunrs_os_neutron?charset=utf8
[oslo_concurrency]
lock_path = $OS/state/neutron/lock
[agent]
root_helper = true
EOF
    authtoken neutron; } >"$e/neutron.conf"
  cat >"$e/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,local,vxlan
tenant_network_types = local
mechanism_drivers = zunrs_bind_all
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
[ml2_type_vxlan]
vni_ranges = 1:1000
EOF
  if ! db_has_tables neutron || [ ! -f "$OS/state/neutron.migrated" ]; then
    "$OS/venv/neutron/bin/neutron-db-manage" --config-file "$e/neutron.conf" --config-file "$e/ml2_conf.ini" \
      upgrade heads >"$OS/log/neutron-manage.log" 2>&1 || fail_with_log "$OS/log/neutron-manage.log" "neutron-db-manage failed"
    touch "$OS/state/neutron.migrated"
  fi
  serve neutron $NPORT neutron.wsgi.api:application OS_NEUTRON_CONFIG_FILES="$e/neutron.conf;$e/ml2_conf.ini"
  wait_for 30 neutron "$(pid_of "$OS/run/neutron.pid")" ok_neutron \
    || fail_with_log "$OS/log/neutron.log" "neutron does not answer on $NPORT"
}

# ------------------------------------------------------------------ kuryr-libnetwork
start_kuryr() {
  local e=$OS/etc/kuryr
  mkdir -p "$e"
  [ "$(curl -s -m 3 --unix-socket /var/run/docker.sock http://localhost/_ping 2>/dev/null || true)" = OK ] \
    || die "kuryr needs dockerd (bash scripts/services.sh)"
  ok_neutron || die "kuryr needs neutron up (openstack.sh up neutron)"
  cat >"$e/kuryr.conf" <<EOF
# written by zun-compute-rs scripts/openstack.sh
[DEFAULT]
bindir = $OS/venv/kuryr/libexec/kuryr
kuryr_uri = http://127.0.0.1:$KURYR_PORT
capability_scope = local
process_external_connectivity = False
log_file = $OS/log/kuryr-app.log
[neutron]
auth_url = $KURL
auth_type = password
username = zun
password = zun
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
endpoint_type = public
EOF
  start_daemon kuryr "$OS/venv/kuryr/bin/kuryr-server" --config-file "$e/kuryr.conf"
  wait_for 60 kuryr "$(pid_of "$OS/run/kuryr.pid")" \
    bash -c "[ \"\$(curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:$KURYR_PORT/Plugin.Activate)\" = 200 ]" \
    || fail_with_log "$OS/log/kuryr.log" "kuryr-server does not answer on $KURYR_PORT"
  # dockerd finds plugins through spec files when a network names the driver: no restart
  mkdir -p "$(dirname "$KURYR_SPEC")"
  echo "http://127.0.0.1:$KURYR_PORT" >"$KURYR_SPEC"
  # Docker's FORWARD policy is DROP and br_netfilter is loaded: let kuryr's bridges forward
  iptables -C DOCKER-USER -i brq+ -o brq+ -j ACCEPT -m comment --comment zunrs-kuryr 2>/dev/null \
    || iptables -I DOCKER-USER -i brq+ -o brq+ -j ACCEPT -m comment --comment zunrs-kuryr \
    || die "cannot add the DOCKER-USER rule for kuryr's brq+ bridges"
}
stop_kuryr_extras() {
  rm -f "$KURYR_SPEC"
  while iptables -D DOCKER-USER -i brq+ -o brq+ -j ACCEPT -m comment --comment zunrs-kuryr 2>/dev/null; do :; done
}

# ------------------------------------------------------------------ zun-api
zun_conf() {
  cat <<EOF
# written by zun-compute-rs scripts/openstack.sh; zun-api and the workers of the tests share it
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/$VHOST
state_path = $OS/state/zun
log_file = $OS/log/zun-api-app.log
host = zunrs-os-api
# capsules: the sandbox (infra) container's image, made by ensure_sandbox_image
sandbox_image = $SANDBOX_IMAGE
[api]
host_ip = 127.0.0.1
port = $ZPORT
workers = 1
api_paste_config = $ZUN_VENV/etc/zun/api-paste.ini
# image validation calls image_search on a compute host, which searches Docker Hub
enable_image_validation = false
[database]
connection = $DB_URL_BASE/zunrs_os_zun?charset=utf8
[oslo_concurrency]
lock_path = $OS/state/zun/lock
[quota]
# many tests share the admin project
driver = zun.common.quota.NoopQuotaDriver
[network]
driver = kuryr
[placement_client]
region_name = RegionOne
endpoint_type = publicURL
[neutron_client]
region_name = RegionOne
endpoint_type = publicURL
[cinder_client]
region_name = RegionOne
endpoint_type = publicURL
api_version = 3
[keystone_auth]
auth_type = password
auth_url = $KURL
username = zun
password = zun
project_name = service
user_domain_name = Default
project_domain_name = Default
EOF
  authtoken zun
}
# ------------------------------------------------------------------ capsules' sandbox image
# zun's default sandbox image (kubernetes/pause) is on Docker Hub; this host is offline. The
# sandbox only has to hold the capsule's namespaces: busybox sleeping, ending at SIGTERM at
# once (a PID 1 without a handler would make every `docker stop` wait 10 s). Committed from
# the local registry's busybox and pushed there (zun-compute pulls it: master's pull policy
# for a capsule without one is `always`).
SANDBOX_IMAGE=${ZUNRS_OS_SANDBOX_IMAGE:-127.0.0.1:5000/zunrs-pause:3.9}
ensure_sandbox_image() {
  if docker manifest inspect --insecure "$SANDBOX_IMAGE" >/dev/null 2>&1; then return 0; fi
  local tmp=zunrs-pause-build-$$
  docker rm -f "$tmp" >/dev/null 2>&1 || true
  if docker create --name "$tmp" 127.0.0.1:5000/busybox:latest >/dev/null 2>&1 \
    && docker commit --change 'CMD ["sh", "-c", "trap \"exit 0\" TERM INT; sleep 2147483647 & wait"]' "$tmp" "$SANDBOX_IMAGE" >/dev/null \
    && docker push "$SANDBOX_IMAGE" >/dev/null; then
    log "sandbox image $SANDBOX_IMAGE pushed"
  else
    log "WARNING: cannot make the sandbox image $SANDBOX_IMAGE (bash scripts/services.sh): capsules will fail"
  fi
  docker rm -f "$tmp" >/dev/null 2>&1 || true
}
start_zun-api() {
  ensure_sandbox_image
  [ -x "$ZUN_VENV/bin/zun-api" ] || bash "$HERE/conformance-venv.sh" >/dev/null \
    || die "cannot build the zun 18.0.0 venv (scripts/conformance-venv.sh)"
  local e=$OS/etc/zun
  mkdir -p "$e" "$OS/state/zun/lock"
  db_ensure zun
  if ! rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$VHOST"; then
    rabbitmqctl -q add_vhost "$VHOST" >/dev/null || die "rabbitmqctl add_vhost $VHOST failed (bash scripts/services.sh)"
  fi
  rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
  zun_conf >"$e/zun.conf"
  if ! db_has_tables zun || [ ! -f "$OS/state/zun.migrated" ]; then
    "$ZUN_VENV/bin/zun-db-manage" --config-file "$e/zun.conf" upgrade >"$OS/log/zun-db-manage.log" 2>&1 \
      || fail_with_log "$OS/log/zun-db-manage.log" "zun-db-manage upgrade failed"
    touch "$OS/state/zun.migrated"
  fi
  start_daemon zun-api "$ZUN_VENV/bin/zun-api" --config-file "$e/zun.conf"
  wait_for 60 zun-api "$(pid_of "$OS/run/zun-api.pid")" ok_zun-api \
    || fail_with_log "$OS/log/zun-api-app.log" "zun-api does not answer on $ZPORT (log also $OS/log/zun-api.log)"
}

start_client() { :; } # the venv is the whole service

# ------------------------------------------------------------------ cinder (helper volumes)
# api (WSGI under serve_wsgi.py), scheduler and volume, one worker each; backend
# zunrs_loopvol (scripts/openstack/zunrs_loopvol): sparse files handed out as loop devices,
# so zun-compute-rs mounts a real block device. RabbitMQ vhost zunrs_os_cinder.
CINDER_VHOST=zunrs_os_cinder
cinder_volume_up() { # cinder-volume reported within the last 30 s
  [ "$(mysql_q "SELECT COUNT(*) FROM zunrs_os_cinder.services WHERE \`binary\`='cinder-volume' AND disabled=0 AND deleted=0 AND updated_at > UTC_TIMESTAMP() - INTERVAL 30 SECOND" 2>/dev/null || echo 0)" -gt 0 ]
}
start_cinder() {
  local e=$OS/etc/cinder b
  mkdir -p "$e" "$OS/state/cinder/lock" "$OS/state/cinder/volumes"
  ok_keystone || die "cinder needs keystone up (openstack.sh up keystone)"
  db_ensure cinder
  if ! rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$CINDER_VHOST"; then
    rabbitmqctl -q add_vhost "$CINDER_VHOST" >/dev/null || die "rabbitmqctl add_vhost $CINDER_VHOST failed"
  fi
  rabbitmqctl -q set_permissions -p "$CINDER_VHOST" guest '.*' '.*' '.*' >/dev/null
  cp "$OS/venv/cinder/etc/cinder/api-paste.ini" "$e/api-paste.ini"
  { cat <<EOF
# written by zun-compute-rs scripts/openstack.sh
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/$CINDER_VHOST
auth_strategy = keystone
state_path = $OS/state/cinder
api_paste_config = $e/api-paste.ini
my_ip = 127.0.0.1
host = zunrs-os-cinder
osapi_volume_listen = 127.0.0.1
osapi_volume_workers = 1
enabled_backends = zunrs_loopvol
[database]
connection = $DB_URL_BASE/zunrs_os_cinder?charset=utf8
[oslo_concurrency]
lock_path = $OS/state/cinder/lock
[oslo_messaging_notifications]
driver = noop
[zunrs_loopvol]
volume_driver = zunrs_loopvol.LoopDeviceDriver
volume_backend_name = zunrs_loopvol
zunrs_loopvol_dir = $OS/state/cinder/volumes
EOF
    authtoken cinder; } >"$e/cinder.conf"
  if ! db_has_tables cinder || [ ! -f "$OS/state/cinder.migrated" ]; then
    "$OS/venv/cinder/bin/cinder-manage" --config-file "$e/cinder.conf" db sync >"$OS/log/cinder-manage.log" 2>&1 \
      || fail_with_log "$OS/log/cinder-manage.log" "cinder-manage db sync failed"
    touch "$OS/state/cinder.migrated"
  fi
  ZUNRS_CINDER_URL="http://127.0.0.1:$CPORT/v3/%(project_id)s" python3 "$FILES/keystone_setup.py" "$KURL" \
    "http://127.0.0.1:$PPORT" "http://127.0.0.1:$NPORT" "http://127.0.0.1:$ZPORT/v1" >"$OS/log/keystone-setup-cinder.log" 2>&1 \
    || fail_with_log "$OS/log/keystone-setup-cinder.log" "registering cinder in keystone failed"
  for b in scheduler volume; do
    if alive "$(pid_of "$OS/run/cinder-$b.pid")"; then stop_one "cinder-$b"; fi
    start_daemon "cinder-$b" "$OS/venv/cinder/bin/cinder-$b" --config-file "$e/cinder.conf" --log-file "$OS/log/cinder-$b-app.log"
  done
  serve cinder $CPORT cinder.wsgi.api:application ZUNRS_APP_ARGV="--config-file $e/cinder.conf"
  wait_for 90 "cinder-volume reporting" "$(pid_of "$OS/run/cinder-volume.pid")" cinder_volume_up \
    || fail_with_log "$OS/log/cinder-volume-app.log" "cinder-volume did not report up"
  wait_for 30 cinder "$(pid_of "$OS/run/cinder.pid")" ok_cinder \
    || fail_with_log "$OS/log/cinder.log" "cinder-api does not answer on $CPORT"
}

# ------------------------------------------------------------------ glance
# glance-api 33 under serve_wsgi.py, keystone auth (service user `glance`), the file store
# under $OS/state/glance. Its user and its `image` catalog entry come from
# keystone_setup.py (run again here: idempotent, and Keystone may predate this block).
start_glance() {
  local e=$OS/etc/glance d=$OS/state/glance
  mkdir -p "$e" "$d/images" "$d/staging" "$d/tasks"
  ok_keystone || die "glance needs keystone up (openstack.sh up keystone)"
  db_ensure glance
  python3 "$FILES/keystone_setup.py" "$KURL" "http://127.0.0.1:$PPORT" "http://127.0.0.1:$NPORT" \
    "http://127.0.0.1:$ZPORT/v1" >"$OS/log/keystone-setup-glance.log" 2>&1 \
    || fail_with_log "$OS/log/keystone-setup-glance.log" "registering glance in keystone failed"
  { cat <<EOF
# written by zun-compute-rs scripts/openstack.sh
[DEFAULT]
log_file = $OS/log/glance-app.log
bind_host = 127.0.0.1
bind_port = $GPORT
enabled_backends = file:file
[database]
connection = $DB_URL_BASE/zunrs_os_glance?charset=utf8
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $d/images
[os_glance_staging_store]
filesystem_store_datadir = $d/staging
[os_glance_tasks_store]
filesystem_store_datadir = $d/tasks
[paste_deploy]
flavor = keystone
EOF
    authtoken glance; } >"$e/glance-api.conf"
  cp "$OS/venv/glance/etc/glance/glance-api-paste.ini" "$e/" \
    || die "no glance-api-paste.ini in $OS/venv/glance/etc/glance"
  if ! db_has_tables glance || [ ! -f "$OS/state/glance.migrated" ]; then
    "$OS/venv/glance/bin/glance-manage" --config-file "$e/glance-api.conf" db_sync \
      >"$OS/log/glance-manage.log" 2>&1 || fail_with_log "$OS/log/glance-manage.log" "glance-manage db_sync failed"
    touch "$OS/state/glance.migrated"
  fi
  serve glance $GPORT glance.wsgi.api:application OS_GLANCE_CONFIG_DIR="$e"
  wait_for 30 glance "$(pid_of "$OS/run/glance.pid")" ok_glance \
    || fail_with_log "$OS/log/glance.log" "glance does not answer on $GPORT"
}

# ------------------------------------------------------------------ env file
write_env() {
  cat >"$OS/env.sh.tmp" <<EOF
# written by zun-compute-rs scripts/openstack.sh; source it
export OS_AUTH_URL=$KURL
export OS_USERNAME=admin OS_PASSWORD=admin OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne OS_IDENTITY_API_VERSION=3 OS_INTERFACE=public
# zun 18.0.0 serves up to 1.40; 1.39 brings --host (requested destination). osc-placement: 1.39
export OS_CONTAINER_API_VERSION=1.39 OS_PLACEMENT_API_VERSION=1.39
export ZUNRS_OS_STATE=$OS
export ZUNRS_OS_KEYSTONE_URL=$KURL
export ZUNRS_OS_PLACEMENT_URL=http://127.0.0.1:$PPORT
export ZUNRS_OS_NEUTRON_URL=http://127.0.0.1:$NPORT
export ZUNRS_OS_KURYR_URL=http://127.0.0.1:$KURYR_PORT
export ZUNRS_OS_ZUN_API_URL=http://127.0.0.1:$ZPORT/v1
export ZUNRS_OS_ZUN_CONF=$OS/etc/zun/zun.conf
export ZUNRS_OS_TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/$VHOST
export ZUNRS_OS_DB_URL=$DB_URL_BASE/zunrs_os_zun?charset=utf8
export ZUNRS_OS_DB_NAME=zunrs_os_zun
export ZUNRS_OS_OPENSTACK_CLI=$OS/venv/client/bin/openstack
export ZUNRS_OS_TOKEN_LIFETIME=$TOKEN_LIFETIME
export ZUNRS_OS_LOCK=$OS/stack.lock
export ZUNRS_OS_CINDER_URL=http://127.0.0.1:$CPORT/v3
export ZUNRS_OS_GLANCE_URL=http://127.0.0.1:$GPORT
EOF
  mv "$OS/env.sh.tmp" "$OS/env.sh"
}

# ------------------------------------------------------------------ commands
want_list() { if [ $# -gt 0 ]; then printf '%s\n' "$@"; else printf '%s\n' "${ALL[@]}"; fi; }
check_names() {
  local s a ok
  for s in "$@"; do
    ok=0; for a in "${ALL[@]}"; do [ "$s" = "$a" ] && ok=1; done
    [ $ok = 1 ] || die "unknown service '$s' (one of: ${ALL[*]})"
  done
}

cmd_up() {
  local svcs s t0 pid
  mapfile -t svcs < <(want_list "$@")
  mkdir -p "$OS"/{venv,etc,log,run,state}
  for s in "${svcs[@]}"; do
    t0=$(now_ns)
    case $s in keystone|placement|neutron|kuryr|client|cinder) install_venv "$s" ;; esac
    case $s in glance) install_venv "$s" ;; esac
    pid=$(pid_of "$OS/run/$s.pid")
    if probe "$s"; then
      if [ "$s" != client ] && ! alive "$pid"; then
        die "$s: port $(port_of "$s") answers, but not a process this script started (pid file $OS/run/$s.pid)"
      fi
      printf '  %-10s %-44s %6s ms\n' "$s" "up" "$(ms_since "$t0")" >&2
      continue
    fi
    if alive "$pid"; then # ours but not answering: restart it
      log "$s (pid $pid) does not answer: restarting it"
      stop_one "$s"
    fi
    "start_$s"
    printf '  %-10s %-44s %6s ms\n' "$s" "started ($(port_of "$s"))" "$(ms_since "$t0")" >&2
  done
  write_env
  if ok_kuryr && ok_client && ok_neutron; then prune_kuryr_leftovers; fi
  log "up in $(ms_since "$T0") ms; env file $OS/env.sh"
}

# What kuryr leaves behind when its Neutron objects are gone (a test killed midway, a reset
# Neutron), pruned at every `up`:
# - Docker keeps a kuryr network after its Neutron network is gone; every one costs
#   dockerd time at each start.
# - kuryr's bridge binding makes a bridge `brq<network id[:11]>` per network and a veth
#   pair `tap<port id[:11]>` / `t_c<port id[:11]>` per endpoint. Neutron has no agent here
#   to remove them: several hundred had piled up on this host, and every endpoint kuryr
#   makes reloads the host's links (pyroute2), which slowed its CreateEndpoint to over a
#   minute under the suite. Deleting the tap deletes its peer.
# Docker's networks and the host's links are listed before Neutron's networks and ports
# (each listed once), and kuryr makes its network and links after the Neutron object, so
# one being made right now is never taken for a stale one.
prune_kuryr_leftovers() {
  local t0 docker_nets bridges taps nets ports='' n l nets_rm=0 links_rm=0
  t0=$(now_ns)
  docker_nets=$(docker network ls --filter driver=kuryr --format '{{.Name}}' 2>/dev/null || true)
  bridges=$(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^brq[0-9a-f-]{11}$' || true)
  taps=$(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^tap[0-9a-f-]{11}$' || true)
  [ -n "$docker_nets$bridges$taps" ] || return 0
  nets=$( (. "$OS/env.sh" && "$OS/venv/client/bin/openstack" network list -f value -c ID) 2>/dev/null) \
    || { log "cannot list Neutron networks: stale kuryr networks and links are left"; return 0; }
  if [ -n "$taps" ]; then
    ports=$( (. "$OS/env.sh" && "$OS/venv/client/bin/openstack" port list -f value -c ID) 2>/dev/null) \
      || { log "cannot list Neutron ports: stale kuryr veths are left"; taps=''; }
  fi
  for n in $docker_nets; do
    grep -qxF "$n" <<<"$nets" && continue
    [ "$(docker network inspect "$n" --format '{{len .Containers}}' 2>/dev/null)" = 0 ] || continue
    docker network rm "$n" >/dev/null 2>&1 && nets_rm=$((nets_rm + 1))
  done
  for l in $taps; do
    grep -q "^${l#tap}" <<<"$ports" && continue
    ip link del "$l" 2>/dev/null && links_rm=$((links_rm + 1))
  done
  for l in $bridges; do
    grep -q "^${l#brq}" <<<"$nets" && continue
    ip link del "$l" 2>/dev/null && links_rm=$((links_rm + 1))
  done
  printf '  %-10s %-44s %6s ms\n' prune "$nets_rm networks, $links_rm bridges/veths removed" "$(ms_since "$t0")" >&2
}

stop_one() {
  local s=$1 pf=$OS/run/$1.pid pid
  pid=$(pid_of "$pf")
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 20 "$s stop" "" eval "! alive $pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      wait_for 10 "$s kill" "" eval "! alive $pid" 2>/dev/null || true
    fi
    log "stopped $s (pid $pid)"
  fi
  rm -f "$pf" "$pf.id"
  [ "$s" = kuryr ] && stop_kuryr_extras
  [ "$s" = cinder ] && { stop_one cinder-volume; stop_one cinder-scheduler; }
  return 0
}

cmd_stop() {
  local svcs i
  mapfile -t svcs < <(want_list "$@")
  for ((i = ${#svcs[@]} - 1; i >= 0; i--)); do stop_one "${svcs[$i]}"; done
}

cmd_status() {
  local svcs s bad=0 pid
  mapfile -t svcs < <(want_list "$@")
  for s in "${svcs[@]}"; do
    pid=$(pid_of "$OS/run/$s.pid")
    if probe "$s"; then printf '%-10s %-6s ok%s\n' "$s" "$(port_of "$s")" "${pid:+ (pid $pid)}"
    else printf '%-10s %-6s DOWN\n' "$s" "$(port_of "$s")"; bad=1; fi
  done
  return $bad
}

cmd_reset() {
  cmd_stop
  local d
  for d in keystone placement neutron zun cinder; do mysql_q "DROP DATABASE IF EXISTS zunrs_os_$d" || true; done
  mysql_q "DROP DATABASE IF EXISTS zunrs_os_glance" || true
  rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
  rm -rf "$OS/state" "$OS/etc" "$OS/run" "$OS/env.sh"
  log "reset: databases, vhost and state removed (venvs kept)"
}

mode=${1:-}
shift || true
case $mode in
  up|stop|status|reset) check_names "$@" ;;
  env) mkdir -p "$OS"/{run,state,etc,log}; [ -f "$OS/env.sh" ] || write_env; cat "$OS/env.sh"; exit 0 ;;
  -h|--help|help|'') sed -n '2,22p' "$0"; exit 0 ;;
  *) die "usage: $0 up|status|stop|env|reset [SERVICE...]" ;;
esac
[ "$mode" = status ] && { cmd_status "$@"; exit $?; }
[ "$(id -u)" = 0 ] || die "must run as root (kuryr writes $KURYR_SPEC and iptables rules)"
mkdir -p "$OS"/{venv,etc,log,run,state}
# one up/stop/reset at a time; tests hold $OS/stack.lock (a different lock) while they run
exec 9>"$OS/script.lock"
if ! flock -n 9; then
  log "waiting for another openstack.sh (lock $OS/script.lock)"
  flock -w 900 9 || die "another openstack.sh holds $OS/script.lock"
fi
case $mode in
  up) cmd_up "$@" ;;
  stop) cmd_stop "$@" ;;
  reset) cmd_reset ;;
esac
