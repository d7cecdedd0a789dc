#!/usr/bin/env bash
# tests/rgw/rgw.sh -- a throw-away, real S3 server for the broker's tests:
# Ceph RADOS Gateway 16 (Debian bookworm packages) on 127.0.0.1, backed by a
# one-node Ceph cluster (1 mon, 1 OSD on memstore, no mgr). Object data lives
# in the OSD's memory, so every start is an empty S3 and stop leaves nothing.
#
#   tests/rgw/rgw.sh install  install the Debian packages if missing (root only)
#   tests/rgw/rgw.sh start    install if needed, start, print env
#   tests/rgw/rgw.sh env      print the env of the running gateway
#   tests/rgw/rgw.sh status   exit 0 when it is up and answering
#   tests/rgw/rgw.sh stop     stop the daemons (by PID file only), wipe state
#
# stdout of start/env: KEY=VALUE lines, the ones the test fixture reads:
#   BROKER_TEST_S3_ENDPOINT_URL  AWS_ACCESS_KEY_ID  AWS_SECRET_ACCESS_KEY
#   AWS_DEFAULT_REGION  BROKER_TEST_S3_SERVER (e.g. ceph-rgw-16.2.15, for tests
#   that document one implementation's behaviour)
# e.g.  set -a; eval "$(tests/rgw/rgw.sh start)"; set +a
# All progress and errors go to stderr.
#
# Settings (environment, defaults in brackets):
#   BROKER_RGW_DIR        state dir, wiped on stop   [${TMPDIR:-/tmp}/broker-rgw]
#   BROKER_RGW_PORT       S3 (HTTP) port             [7480]
#   BROKER_RGW_MON_PORT   Ceph monitor port (msgr2)  [17300]
#   BROKER_RGW_ACCESS_KEY S3 access key              [broker-test-access]
#   BROKER_RGW_SECRET_KEY S3 secret key              [broker-test-secret]
#   BROKER_RGW_REGION     region printed for clients [us-east-1]
#   BROKER_RGW_TIMEOUT    seconds allowed per stage  [90]
#   BROKER_RGW_KEEP       1: stop keeps the state dir (logs) [0]
#
# start is idempotent: when the gateway of BROKER_RGW_DIR is already up it only
# prints its env. Several instances can run side by side with distinct dirs
# and ports (the pytest fixture does that).
set -euo pipefail

STATE=${BROKER_RGW_DIR:-${TMPDIR:-/tmp}/broker-rgw}
[[ $STATE = /* ]] || STATE=$PWD/$STATE   # the daemons chdir to /
S3_PORT=${BROKER_RGW_PORT:-7480}
MON_PORT=${BROKER_RGW_MON_PORT:-17300}
ACCESS_KEY=${BROKER_RGW_ACCESS_KEY:-broker-test-access}
SECRET_KEY=${BROKER_RGW_SECRET_KEY:-broker-test-secret}
REGION=${BROKER_RGW_REGION:-us-east-1}
STAGE_TIMEOUT=${BROKER_RGW_TIMEOUT:-90}
KEEP_STATE=${BROKER_RGW_KEEP:-0}

MARKER=.broker-rgw            # only a dir holding this file is ever wiped
CONF=$STATE/ceph.conf
ENV_FILE=$STATE/s3.env
# daemon name -> executable (what /proc/PID/comm must say before we signal it)
DAEMONS=(mon.a osd.0 client.rgw.s3)
declare -A EXE=([mon.a]=ceph-mon [osd.0]=ceph-osd [client.rgw.s3]=radosgw)
PACKAGES=(radosgw ceph-mon ceph-osd ceph-common curl)
BINARIES=(ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl)

STARTED_US=${EPOCHREALTIME/[.,]/}
say() {
  local us=$(( ${EPOCHREALTIME/[.,]/} - STARTED_US ))
  printf 'rgw.sh [%d.%02ds] %s\n' $(( us / 1000000 )) $(( us / 10000 % 100 )) "$*" >&2
}
# fail loudly: the message, the end of every log, then stop what is running
# (the state dir stays, for its logs; the next start or stop wipes it)
fail() {
  say "FAILED: $*"
  local f
  for f in "$STATE"/log/*; do
    [ -s "$f" ] || continue
    printf -- '----- %s (last 20 lines)\n' "$f" >&2
    tail -n 20 "$f" >&2
  done
  KEEP_STATE=1 cmd_stop
  exit 1
}

pidfile() { echo "$STATE/run/$1.pid"; }
# alive PID: the process exists and is not a zombie (an exited daemon stays a
# zombie until PID 1 reaps it, which some container inits never do)
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ] && [ "${stat:0:1}" != X ]
}

# our_pid NAME: print the PID of daemon NAME if its PID file names a live
# process that is that daemon's executable *and* runs on this state's config.
our_pid() {
  local pf pid comm
  pf=$(pidfile "$1")
  [ -s "$pf" ] || return 1
  pid=$(<"$pf")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "${EXE[$1]}" ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$CONF" || return 1
  echo "$pid"
}
s3_answers() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" 2>/dev/null) || return 1
  [ "$code" = 200 ] || [ "$code" = 403 ]
}
is_up() {
  [ -f "$ENV_FILE" ] || return 1
  local d
  for d in "${DAEMONS[@]}"; do our_pid "$d" >/dev/null || return 1; done
  # the port of the running instance is the one it was started with
  S3_PORT=$(sed -n 's#^BROKER_TEST_S3_ENDPOINT_URL=http://127.0.0.1:##p' "$ENV_FILE")
  s3_answers
}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_until WHAT DAEMON|- COMMAND...: poll COMMAND; give up when DAEMON dies
wait_until() {
  local what=$1 daemon=$2 deadline=$(( SECONDS + STAGE_TIMEOUT ))
  shift 2
  until "$@" >/dev/null 2>&1; do
    # (no PID file yet: the daemon is still starting)
    if [ "$daemon" != - ] && [ -s "$(pidfile "$daemon")" ] && ! our_pid "$daemon" >/dev/null; then
      fail "$what: ${EXE[$daemon]} exited"
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not ready after ${STAGE_TIMEOUT}s"
    sleep 0.1
  done
}

# ---------------------------------------------------------------- install
ensure_installed() {
  local b missing=()
  for b in "${BINARIES[@]}"; do command -v "$b" >/dev/null || missing+=("$b"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    say "missing: ${missing[*]}; as root run:"
    say "  apt-get update && apt-get install -y --no-install-recommends ${PACKAGES[*]}"
    exit 2
  fi
  command -v apt-get >/dev/null || { say "missing ${missing[*]} and no apt-get"; exit 2; }
  # parallel starts on a fresh machine: one installs, the others wait for it
  local lock=${TMPDIR:-/tmp}/broker-rgw-apt.lock
  exec 8>"$lock"
  command -v flock >/dev/null && flock 8
  missing=()
  for b in "${BINARIES[@]}"; do command -v "$b" >/dev/null || missing+=("$b"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    local aptlog t0=$SECONDS
    aptlog=$(mktemp "${TMPDIR:-/tmp}/broker-rgw-apt.XXXXXX")
    say "installing ${PACKAGES[*]} (apt, log in $aptlog)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get -q update && apt-get -q install -y --no-install-recommends \
             -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 "${PACKAGES[@]}"; } \
         >"$aptlog" 2>&1; then
      tail -n 30 "$aptlog" >&2
      say "FAILED: apt-get (full log: $aptlog)"
      exit 2
    fi
    rm -f "$aptlog"
    say "installed in $(( SECONDS - t0 ))s"
  fi
  exec 8>&-
  for b in "${BINARIES[@]}"; do
    command -v "$b" >/dev/null || { say "FAILED: $b still missing after install"; exit 2; }
  done
}

# ---------------------------------------------------------------- config
write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
# generated by tests/rgw/rgw.sh -- single node, throw-away, loopback only
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
ms bind msgr1 = false
ms bind ipv6 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $STATE/keyring
run dir = $STATE/run
pid file = $STATE/run/\$name.pid
admin socket = $STATE/run/\$name.asok
log file = $STATE/log/\$name.log
log to stderr = false
err to stderr = false
crash dir = $STATE/crash
# a single OSD holds the only copy of everything
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# CI disks are often nearly full: the mon must not stop for that
mon data avail warn = 1
mon data avail crit = 0
mon warn on insecure global id reclaim allowed = false
# rgw creates several pools at startup; commit each map change at once
# instead of batching for a second
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = $STATE/mon/\$id
keyring = $STATE/mon/\$id/keyring
mon cluster log file = $STATE/log/cluster.log

[osd]
osd data = $STATE/osd/\$id
keyring = $STATE/osd/\$id/keyring
osd objectstore = memstore
# nominal capacity; the data itself lives in the ceph-osd's RAM
memstore device bytes = 1073741824
osd op num shards = 1
osd op num threads per shard = 2

[client.rgw.s3]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT
rgw data = $STATE/rgw
rgw dns name = localhost
rgw thread pool size = 32
rgw enable usage log = false
# deleted objects' data sits in RAM: collect it after 30 s, not 2 h
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
}

# ---------------------------------------------------------------- commands
cmd_env() {
  is_up || { say "not running (state dir $STATE)"; exit 1; }
  cat "$ENV_FILE"
}

cmd_status() {
  if is_up; then say "up: $(head -n1 "$ENV_FILE")"; else say "down"; exit 1; fi
}

cmd_stop() {
  local d pid deadline
  # one at a time, gateway first: each shuts down in ~0.1 s while the daemon
  # it talks to is still there (an OSD whose monitor is gone hangs on SIGTERM)
  for d in client.rgw.s3 osd.0 mon.a; do
    pid=$(our_pid "$d") || continue
    say "stopping ${EXE[$d]} (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || continue
    deadline=$(( SECONDS + 5 ))
    while alive "$pid"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "${EXE[$d]} (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$(( SECONDS + 5 ))
      fi
      sleep 0.02
    done
  done
  if [ -f "$STATE/$MARKER" ]; then
    if [ "$KEEP_STATE" = 1 ]; then
      rm -f "$STATE"/run/*.pid "$ENV_FILE"
      say "stopped; state kept in $STATE"
    else
      rm -rf "$STATE"
      say "stopped; $STATE removed"
    fi
  else
    say "nothing to wipe in $STATE"
  fi
}

cmd_start() {
  ensure_installed
  if is_up; then
    say "already up (state dir $STATE)"
    cat "$ENV_FILE"
    return 0
  fi
  # leftovers of a broken run: stop them, then start from an empty dir
  if [ -e "$STATE" ]; then
    if [ -f "$STATE/$MARKER" ]; then
      cmd_stop
    elif [ -n "$(ls -A "$STATE" 2>/dev/null)" ]; then
      say "refusing to use $STATE: not empty and not made by rgw.sh"
      exit 2
    fi
  fi
  local p
  for p in "$S3_PORT" "$MON_PORT"; do
    port_taken "$p" && { say "port $p on 127.0.0.1 is already in use"; exit 3; }
  done
  mkdir -p "$STATE"/{run,log,crash,rgw,mon/a,osd/0}
  : >"$STATE/$MARKER"
  # unix socket paths are limited to 107 bytes
  [ ${#STATE} -le 70 ] || say "warning: state dir path is long; admin sockets may fail"

  local fsid osd_uuid
  fsid=$(</proc/sys/kernel/random/uuid)
  osd_uuid=$(</proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  local mklog=$STATE/log/mkfs.log
  local ceph=(ceph -c "$CONF" --connect-timeout 15)

  say "keys and monitor (state in $STATE, mon port $MON_PORT)"
  {
    ceph-authtool --create-keyring "$STATE/keyring" --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *'
    ceph-authtool "$STATE/keyring" --gen-key -n client.rgw.s3 \
      --cap mon 'allow rw' --cap osd 'allow rwx'
    ceph-authtool --create-keyring "$STATE/osd/0/keyring" --gen-key -n osd.0 \
      --cap mon 'allow profile osd' --cap osd 'allow *'
    ceph-authtool --create-keyring "$STATE/mon-seed.keyring" --gen-key -n mon. --cap mon 'allow *'
    ceph-authtool "$STATE/mon-seed.keyring" --import-keyring "$STATE/keyring"
    ceph-authtool "$STATE/mon-seed.keyring" --import-keyring "$STATE/osd/0/keyring"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$STATE/monmap"
    ceph-mon -c "$CONF" -i a --mkfs --monmap "$STATE/monmap" --keyring "$STATE/mon-seed.keyring"
  } >>"$mklog" 2>&1 || fail "creating keys / mon store"
  ceph-mon -c "$CONF" -i a 2>>"$STATE/log/ceph-mon.stderr" || fail "ceph-mon did not start"
  wait_until "monitor" mon.a "${ceph[@]}" mon stat

  say "osd (memstore)"
  "${ceph[@]}" osd new "$osd_uuid" 0 >>"$mklog" 2>&1 || fail "ceph osd new"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$mklog" 2>&1 || fail "ceph-osd --mkfs"
  ceph-osd -c "$CONF" -i 0 2>>"$STATE/log/ceph-osd.stderr" || fail "ceph-osd did not start"
  osd_is_up() { "${ceph[@]}" osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1'; }
  wait_until "osd" osd.0 osd_is_up

  say "radosgw on 127.0.0.1:$S3_PORT"
  radosgw -c "$CONF" -n client.rgw.s3 2>>"$STATE/log/radosgw.stderr" || fail "radosgw did not start"
  wait_until "radosgw" client.rgw.s3 s3_answers

  radosgw-admin -c "$CONF" -n client.admin user create --uid=broker-test \
    --display-name="broker tests" --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
    >>"$mklog" 2>&1 || fail "radosgw-admin user create"

  local version
  version=$(radosgw --version 2>/dev/null | awk '{print $3; exit}')
  cat >"$ENV_FILE" <<EOF
BROKER_TEST_S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_DEFAULT_REGION=$REGION
BROKER_TEST_S3_SERVER=ceph-rgw-${version:-unknown}
EOF
  local rss=0 d pid kb
  for d in "${DAEMONS[@]}"; do
    pid=$(our_pid "$d") || fail "${EXE[$d]} is gone"
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    rss=$(( rss + kb ))
  done
  say "ready: http://127.0.0.1:$S3_PORT (daemons use $(( rss / 1024 )) MiB RSS)"
  cat "$ENV_FILE"
}

case ${1:-} in
  install) ensure_installed ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|start|stop|env|status   (settings: see the head of this file)" >&2; exit 64 ;;
esac
