#!/usr/bin/env bash
# Throwaway MariaDB server for dbpool's tests, examples and demo.
#
#   scripts/mariadb.sh start DIR    create DIR, initialise a data directory, make throwaway TLS
#                                   certificates in DIR/tls, start mariadbd on a free loopback
#                                   port and DIR/mysqld.sock with TLS enabled, create the test
#                                   users and database, write DIR/env
#   scripts/mariadb.sh stop DIR     stop the server started in DIR and remove DIR
#   scripts/mariadb.sh restart DIR  stop (keeping the data) and start again, same port/socket
#   scripts/mariadb.sh kill9 DIR    kill -9 the server, keep DIR (for fault tests)
#   scripts/mariadb.sh status DIR   exit 0 when the server in DIR answers
#
# It never touches a system MariaDB service: everything lives in DIR and the server only
# listens on 127.0.0.1. Every wait is bounded.
#
# TLS (DIR/tls, all throwaway, valid for 2 days): ca.pem signs server-cert.pem (issued to the
# DNS name "localhost" only, so a client that checks the host name accepts "localhost" and
# refuses "127.0.0.1") and client-cert.pem/client-key.pem (for the REQUIRE X509 user);
# wrong-ca.pem is an unrelated CA that signed nothing here.
set -euo pipefail

readonly TEST_USER=dbpool
readonly TEST_PASSWORD=dbpool-test-pw
readonly TEST_DATABASE=dbpool_test
readonly X509_USER=dbpool_x509
readonly X509_PASSWORD=dbpool-x509-pw
readonly START_WAIT_SECONDS=30
readonly STOP_WAIT_SECONDS=20

die() {
    echo "mariadb.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 {start|stop|restart|kill9|status} DIR" >&2
    exit 2
}

# Installs the server and client library from Debian's archive when they are missing.
ensure_installed() {
    if command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null &&
        command -v mariadb >/dev/null; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "mariadbd is missing; run as root or: apt-get install mariadb-server"
    # Stop Debian's maintainer scripts from starting (or touching) a system service.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        mariadb-server mariadb-client libmariadb-dev >/dev/null ||
        {
            apt-get update >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                mariadb-server mariadb-client libmariadb-dev >/dev/null
        }
    [[ $created_policy -eq 1 ]] && rm -f "$policy"
    command -v mariadbd >/dev/null || die "mariadbd still missing after apt-get"
}

# shellcheck source=scripts/ports-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports-lib.sh"

# Runs SQL from stdin as root over the socket.
client_script() {
    mariadb --no-defaults --protocol=socket --socket="$DIR/mysqld.sock" -uroot
}

server_answers() {
    mariadb-admin --no-defaults --protocol=socket --socket="$DIR/mysqld.sock" -uroot \
        --connect-timeout=2 ping >/dev/null 2>&1
}

server_pid() {
    if [[ -f $DIR/mysqld.pid ]]; then cat "$DIR/mysqld.pid" 2>/dev/null || true; fi
}

# Writes the throwaway CA, server, client and unrelated-CA certificates into DIR/tls.
make_certificates() {
    command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
    local tls=$DIR/tls
    mkdir -p "$tls"
    (
        cd "$tls"
        local -a ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca-key.pem -out ca.pem -days 2 \
            -subj "/CN=dbpool test CA" 2>/dev/null
        openssl req -x509 "${ec[@]}" -keyout wrong-ca-key.pem -out wrong-ca.pem -days 2 \
            -subj "/CN=dbpool unrelated CA" 2>/dev/null
        printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl req -new "${ec[@]}" -keyout server-key.pem -out server.csr \
            -subj "/CN=localhost" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -days 2 -extfile server.ext -out server-cert.pem 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl req -new "${ec[@]}" -keyout client-key.pem -out client.csr \
            -subj "/CN=dbpool x509 client" 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -days 2 -extfile client.ext -out client-cert.pem 2>/dev/null
        rm -f ./*.csr ./*.ext ./*.srl
        chmod 600 ./*-key.pem
    ) || die "creating the TLS certificates in $tls failed"
}

launch() {
    local port
    port=$(cat "$DIR/port")
    local -a user_opt=() tls_opt=()
    [[ $(id -u) -eq 0 ]] && user_opt=(--user=root)
    if [[ -f $DIR/tls/server-cert.pem ]]; then
        tls_opt=(--ssl-ca="$DIR/tls/ca.pem" --ssl-cert="$DIR/tls/server-cert.pem"
            --ssl-key="$DIR/tls/server-key.pem")
    fi
    # setsid: the server must not die with the shell that started it (ctest, demo.sh).
    setsid mariadbd --no-defaults "${user_opt[@]}" \
        --datadir="$DIR/data" --socket="$DIR/mysqld.sock" --pid-file="$DIR/mysqld.pid" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="$DIR/error.log" --innodb-buffer-pool-size=32M \
        --innodb-log-file-size=16M --performance-schema=OFF --max-connections=500 \
        "${tls_opt[@]}" --skip-log-bin --tmpdir="$DIR/tmp" \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci </dev/null >>"$DIR/server.out" 2>&1 &
    local deadline=$((SECONDS + START_WAIT_SECONDS))
    until server_answers; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$DIR/error.log" >&2 || true
            die "server in $DIR did not answer within ${START_WAIT_SECONDS}s"
        fi
        sleep 0.2
    done
}

stop_server() {
    local pid
    pid=$(server_pid)
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + STOP_WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "mariadb.sh: server $pid did not stop in ${STOP_WAIT_SECONDS}s; kill -9" >&2
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$DIR/mysqld.pid"
}

kill9_server() {
    local pid
    pid=$(server_pid)
    [[ -n $pid ]] || die "no server pid in $DIR"
    kill -9 "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    rm -f "$DIR/mysqld.pid"
}

start() {
    ensure_installed
    [[ ${#DIR} -lt 90 ]] || die "DIR too long for a unix socket path: $DIR"
    if [[ -f $DIR/env ]] && server_answers; then
        echo "mariadb.sh: server in $DIR already running"
        return
    fi
    mkdir -p "$DIR/tmp"
    DIR=$(cd "$DIR" && pwd)
    free_ports 1 "$DIR" >"$DIR/port"
    local port
    port=$(cat "$DIR/port")
    local -a user_opt=()
    [[ $(id -u) -eq 0 ]] && user_opt=(--user=root)
    # Its own --tmpdir: bootstraps running at once (ctest -j starts several beds together) clash
    # on the temporary tables they create in the shared /tmp ("Unknown table
    # 'mysql.tmp_user_sys'"; 1 of 4 parallel installs failed, none of 18 with their own tmpdir).
    mariadb-install-db --no-defaults "${user_opt[@]}" --auth-root-authentication-method=normal \
        --datadir="$DIR/data" --tmpdir="$DIR/tmp" --skip-test-db >"$DIR/install.log" 2>&1 ||
        {
            tail -n 20 "$DIR/install.log" >&2
            die "mariadb-install-db failed (see $DIR/install.log)"
        }
    make_certificates
    launch
    client_script <<SQL
CREATE DATABASE IF NOT EXISTS \`$TEST_DATABASE\`;
CREATE USER IF NOT EXISTS '$TEST_USER'@'localhost' IDENTIFIED BY '$TEST_PASSWORD';
CREATE USER IF NOT EXISTS '$TEST_USER'@'127.0.0.1' IDENTIFIED BY '$TEST_PASSWORD';
GRANT ALL PRIVILEGES ON \`$TEST_DATABASE\`.* TO '$TEST_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`$TEST_DATABASE\`.* TO '$TEST_USER'@'127.0.0.1';
GRANT PROCESS, CONNECTION ADMIN ON *.* TO '$TEST_USER'@'localhost';
GRANT PROCESS, CONNECTION ADMIN ON *.* TO '$TEST_USER'@'127.0.0.1';
CREATE USER IF NOT EXISTS '$X509_USER'@'localhost' IDENTIFIED BY '$X509_PASSWORD' REQUIRE X509;
CREATE USER IF NOT EXISTS '$X509_USER'@'127.0.0.1' IDENTIFIED BY '$X509_PASSWORD' REQUIRE X509;
GRANT ALL PRIVILEGES ON \`$TEST_DATABASE\`.* TO '$X509_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`$TEST_DATABASE\`.* TO '$X509_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
    cat >"$DIR/env" <<ENV
DBPOOL_TEST_SOCKET=$DIR/mysqld.sock
DBPOOL_TEST_PORT=$port
DBPOOL_TEST_USER=$TEST_USER
DBPOOL_TEST_PASSWORD=$TEST_PASSWORD
DBPOOL_TEST_DATABASE=$TEST_DATABASE
DBPOOL_TEST_URL=mysql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$port/$TEST_DATABASE
DBPOOL_TEST_TLS_DIR=$DIR/tls
DBPOOL_TEST_X509_USER=$X509_USER
DBPOOL_TEST_X509_PASSWORD=$X509_PASSWORD
ENV
    echo "MariaDB running (pid $(server_pid)), data and logs in $DIR"
    echo "  connect: mariadb --socket=$DIR/mysqld.sock -u$TEST_USER -p$TEST_PASSWORD $TEST_DATABASE"
    echo "  url:     mysql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$port/$TEST_DATABASE"
    echo "  env:     set -a; . $DIR/env; set +a"
    echo "  stop:    $0 stop $DIR"
}

[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$2
[[ -n $DIR && $DIR != / ]] || die "refusing DIR '$DIR'"

case $CMD in
    start) start ;;
    stop)
        if [[ -d $DIR ]]; then
            stop_server
            # Only remove what this script created (a data dir next to its own files).
            if [[ -d $DIR/data && -f $DIR/port ]] || [[ -z $(ls -A "$DIR") ]]; then
                release_ports "$DIR"
                rm -rf "$DIR"
            else
                die "$DIR does not look like a mariadb.sh directory; not removing it"
            fi
        fi
        ;;
    restart)
        [[ -f $DIR/port ]] || die "no server was started in $DIR"
        DIR=$(cd "$DIR" && pwd)
        stop_server
        launch
        echo "MariaDB restarted (pid $(server_pid)) on port $(cat "$DIR/port")"
        ;;
    kill9) kill9_server ;;
    status) server_answers ;;
    *) usage ;;
esac
