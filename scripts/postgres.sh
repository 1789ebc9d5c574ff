#!/usr/bin/env bash
# Throwaway PostgreSQL server for dbpool's tests, examples, demo and benchmarks.
#
#   scripts/postgres.sh start DIR      create DIR, initdb a cluster in DIR/data, generate TLS
#                                      certificates in DIR/tls, start postgres on a free port of
#                                      127.0.0.1 and a unix socket in DIR, create the test roles
#                                      and database, write DIR/env
#   scripts/postgres.sh stop DIR       stop the server started in DIR (immediate: its data is
#                                      thrown away) and remove DIR
#   scripts/postgres.sh restart DIR    stop (keeping the data) and start again, same port/socket
#   scripts/postgres.sh immediate DIR  pg_ctl stop -m immediate: no shutdown checkpoint, crash
#                                      recovery at the next start; keeps DIR (fault tests)
#   scripts/postgres.sh kill9 DIR      kill -9 the postmaster and every backend; keeps DIR
#   scripts/postgres.sh freeze DIR     SIGSTOP the postmaster and every backend: a server that
#                                      accepts TCP connections and never answers (fault tests)
#   scripts/postgres.sh thaw DIR       SIGCONT them again
#   scripts/postgres.sh status DIR     exit 0 when the server in DIR accepts connections
#
# It never touches a system PostgreSQL service: everything lives in DIR and the server listens
# only on 127.0.0.1 and DIR/.s.PGSQL.<port>. PostgreSQL refuses to run as root, so as root the
# server runs as the unprivileged user `postgres` (created by Debian's package) and DIR is
# chowned to it. Every wait is bounded. PG_BIN overrides the directory of initdb/pg_ctl.
set -euo pipefail

readonly TEST_USER=dbpool
readonly TEST_PASSWORD=dbpool-test-pw
readonly TEST_DATABASE=dbpool_test
readonly START_WAIT_SECONDS=30
readonly STOP_WAIT_SECONDS=20

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 {start|stop|restart|immediate|kill9|freeze|thaw|status} DIR" >&2
    exit 2
}

# The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin).
find_bin() {
    if [[ -n ${PG_BIN:-} ]]; then
        echo "$PG_BIN"
        return
    fi
    local candidate
    candidate=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)
    echo "$candidate"
}

# Installs the server, client library and openssl from Debian's archive when missing.
ensure_installed() {
    PG_BIN=$(find_bin)
    if [[ -n $PG_BIN && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] && command -v openssl >/dev/null; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL server binaries missing; as root: apt-get install postgresql libpq-dev openssl"
    # Debian's maintainer scripts would start the cluster they create: forbid service starts.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    local packages=(postgresql libpq-dev openssl)
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null ||
        {
            apt-get update >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                "${packages[@]}" >/dev/null
        }
    if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
    PG_BIN=$(find_bin)
    [[ -n $PG_BIN && -x $PG_BIN/initdb ]] || die "initdb still missing after apt-get"
}

# The OS user the server runs as: ourselves, or `postgres` when we are root.
server_user() {
    if [[ $(id -u) -ne 0 ]]; then
        id -un
        return
    fi
    getent passwd postgres >/dev/null ||
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postgres
    echo postgres
}

# Runs a command as the server user (directly when we are that user).
as_server() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$(server_user)" -- "$@"
    else
        "$@"
    fi
}

# shellcheck source=scripts/ports-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports-lib.sh"

server_answers() {
    [[ -f $DIR/port ]] || return 1
    "$PG_BIN/pg_isready" -q -h "$DIR" -p "$(cat "$DIR/port")" -U postgres -d postgres -t 2 \
        >/dev/null 2>&1
}

postmaster_pid() {
    if [[ -f $DIR/data/postmaster.pid ]]; then head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null || true; fi
}

# Runs SQL from stdin as the superuser over the unix socket (trust for local postgres only).
admin_sql() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$(cat "$DIR/port")" -U postgres \
        -d postgres >/dev/null
}

# CA, server certificate (CN and SAN localhost only, so verify-full passes for host=localhost
# and fails for host=127.0.0.1), a client certificate for the role dbpool_cert, and a second,
# unrelated CA that must be rejected.
make_certificates() {
    local tls=$DIR/tls
    mkdir -p "$tls"
    (
        cd "$tls"
        local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${key[@]}" -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=dbpool test CA" 2>/dev/null
        openssl req -x509 "${key[@]}" -keyout other-ca.key -out other-ca.crt -days 3650 \
            -subj "/CN=dbpool unrelated CA" 2>/dev/null
        openssl req "${key[@]}" -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        printf 'subjectAltName=DNS:localhost\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out server.crt -days 3650 -extfile server.ext 2>/dev/null
        openssl req "${key[@]}" -keyout client.key -out client.csr -subj "/CN=dbpool_cert" 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out client.crt -days 3650 2>/dev/null
        rm -f ./*.csr ./*.ext ./*.srl
        chmod 600 ./*.key
    ) || die "openssl could not generate the test certificates"
    # The server's key must belong to the server user; the client's stays with the caller.
    cp "$tls/server.key" "$DIR/data/server.key"
    cp "$tls/server.crt" "$DIR/data/server.crt"
    cp "$tls/ca.crt" "$DIR/data/root.crt"
    chmod 600 "$DIR/data/server.key"
    chown "$(server_user)" "$DIR/data/server.key" "$DIR/data/server.crt" "$DIR/data/root.crt"
}

write_config() {
    local port
    port=$(cat "$DIR/port")
    cat >>"$DIR/data/postgresql.conf" <<CONF

# --- scripts/postgres.sh: a throwaway test server ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR'
max_connections = 300
shared_buffers = 32MB
# Safe for tests: only an OS crash could lose data; synchronous_commit stays on, so a commit the
# client saw survives 'pg_ctl stop -m immediate' (WAL reaches the kernel before the reply).
fsync = off
full_page_writes = off
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
password_encryption = 'scram-sha-256'
log_min_messages = warning
log_connections = off
log_disconnections = off
CONF
    # First match wins. dbpool_tls must use TLS, dbpool_cert must present a client certificate.
    cat >"$DIR/data/pg_hba.conf" <<HBA
# TYPE     DATABASE  USER         ADDRESS         METHOD
local      all       postgres                     trust
local      all       all                          scram-sha-256
hostssl    all       dbpool_cert  127.0.0.1/32    cert
hostnossl  all       dbpool_cert  127.0.0.1/32    reject
hostssl    all       dbpool_tls   127.0.0.1/32    scram-sha-256
hostnossl  all       dbpool_tls   127.0.0.1/32    reject
host       all       all          127.0.0.1/32    scram-sha-256
HBA
}

launch() {
    if ! as_server "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -t "$START_WAIT_SECONDS" start >/dev/null 2>&1; then
        tail -n 20 "$DIR/server.log" >&2 || true
        die "server in $DIR did not start within ${START_WAIT_SECONDS}s"
    fi
    local deadline=$((SECONDS + START_WAIT_SECONDS))
    until server_answers; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$DIR/server.log" >&2 || true
            die "server in $DIR did not answer within ${START_WAIT_SECONDS}s"
        fi
        sleep 0.2
    done
}

# Stops the server with pg_ctl's `mode` (fast: a clean shutdown for a restart; immediate when
# the data is thrown away anyway), then kill -9 if it is still there.
stop_server() {
    local mode=$1 pid
    pid=$(postmaster_pid)
    [[ -n $pid ]] || return 0
    as_server "$PG_BIN/pg_ctl" -D "$DIR/data" -m "$mode" -w -t "$STOP_WAIT_SECONDS" stop \
        >/dev/null 2>&1 || true
    # pg_ctl returns once the pid file is gone, a moment before the process itself.
    local deadline=$((SECONDS + 5))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "postgres.sh: server $pid did not stop; kill -9" >&2
        kill9_server
    fi
}

kill9_server() {
    local pid
    pid=$(postmaster_pid)
    [[ -n $pid ]] || return 0
    local children
    children=$(pgrep -P "$pid" || true)
    kill -9 "$pid" 2>/dev/null || true
    # Backends outlive a killed postmaster; a new one refuses to start while they hold its
    # shared memory, so they go too.
    if [[ -n $children ]]; then
        # shellcheck disable=SC2086
        kill -9 $children 2>/dev/null || true
    fi
    local deadline=$((SECONDS + STOP_WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
}

# Sends `signal` to the postmaster and all its children (backends and auxiliary processes).
signal_server() {
    local signal=$1 pid
    pid=$(postmaster_pid)
    [[ -n $pid ]] || die "no server pid in $DIR"
    local children
    children=$(pgrep -P "$pid" || true)
    kill "-$signal" "$pid" || die "cannot signal $pid"
    if [[ -n $children ]]; then
        # shellcheck disable=SC2086
        kill "-$signal" $children 2>/dev/null || true
    fi
}

start() {
    ensure_installed
    [[ ${#DIR} -lt 80 ]] || die "DIR too long for a unix socket path: $DIR"
    if [[ -f $DIR/env ]] && server_answers; then
        echo "postgres.sh: server in $DIR already running"
        return
    fi
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local user
    user=$(server_user)
    chown "$user" "$DIR"
    chmod 755 "$DIR"
    free_ports 1 "$DIR" >"$DIR/port"
    local port
    port=$(cat "$DIR/port")
    as_server "$PG_BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >"$DIR/initdb.log" 2>&1 ||
        {
            tail -n 20 "$DIR/initdb.log" >&2
            die "initdb failed (see $DIR/initdb.log)"
        }
    make_certificates
    write_config
    launch
    admin_sql <<SQL
CREATE ROLE $TEST_USER LOGIN PASSWORD '$TEST_PASSWORD';
CREATE ROLE dbpool_tls LOGIN PASSWORD '$TEST_PASSWORD';
CREATE ROLE dbpool_cert LOGIN;
CREATE DATABASE $TEST_DATABASE OWNER $TEST_USER;
GRANT CONNECT ON DATABASE $TEST_DATABASE TO dbpool_tls, dbpool_cert;
SQL
    cat >"$DIR/env" <<ENV
DBPOOL_PG_SOCKET_DIR=$DIR
DBPOOL_PG_PORT=$port
DBPOOL_PG_USER=$TEST_USER
DBPOOL_PG_PASSWORD=$TEST_PASSWORD
DBPOOL_PG_DATABASE=$TEST_DATABASE
DBPOOL_PG_URL=postgresql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$port/$TEST_DATABASE?sslmode=disable
DBPOOL_PG_ADMIN_CONNINFO=host=$DIR port=$port user=postgres dbname=$TEST_DATABASE
DBPOOL_PG_TLS_DIR=$DIR/tls
ENV
    echo "PostgreSQL running (pid $(postmaster_pid), as $user), data and logs in $DIR"
    echo "  url:     postgresql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$port/$TEST_DATABASE?sslmode=disable"
    echo "  psql:    $PG_BIN/psql -h $DIR -p $port -U postgres $TEST_DATABASE"
    echo "  env:     set -a; . $DIR/env; set +a"
    echo "  stop:    $0 stop $DIR"
}

[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$2
[[ -n $DIR && $DIR != / ]] || die "refusing DIR '$DIR'"
PG_BIN=$(find_bin)

case $CMD in
    start) start ;;
    stop)
        if [[ -d $DIR ]]; then
            if [[ -n $PG_BIN ]]; then stop_server immediate; fi
            # Only remove what this script created (a cluster next to its own files).
            if [[ -f $DIR/data/PG_VERSION && -f $DIR/port ]] || [[ -z $(ls -A "$DIR") ]]; then
                release_ports "$DIR"
                rm -rf "$DIR"
            else
                die "$DIR does not look like a postgres.sh directory; not removing it"
            fi
        fi
        ;;
    restart)
        [[ -f $DIR/port && -d $DIR/data ]] || die "no server was started in $DIR"
        DIR=$(cd "$DIR" && pwd)
        stop_server fast
        launch
        echo "PostgreSQL restarted (pid $(postmaster_pid)) on port $(cat "$DIR/port")"
        ;;
    immediate)
        [[ -d $DIR/data ]] || die "no server was started in $DIR"
        as_server "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t "$STOP_WAIT_SECONDS" stop \
            >/dev/null 2>&1 || die "pg_ctl stop -m immediate failed"
        ;;
    kill9) kill9_server ;;
    freeze) signal_server STOP ;;
    thaw) signal_server CONT ;;
    status) server_answers ;;
    *) usage ;;
esac
