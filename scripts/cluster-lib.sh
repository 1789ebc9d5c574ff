# shellcheck shell=bash
# Shared by scripts/replication.sh and scripts/galera.sh (sourced, never run): throwaway
# MariaDB nodes that live in one directory, listen on 127.0.0.1 only and are never a system
# service. Every wait is bounded.
#
# Layout of DIR (the caller sets DIR and SCRIPT_NAME before sourcing):
#   DIR/template/       data directory made once by mariadb-install-db, copied per node
#   DIR/nN/data         node N's data directory; DIR/nN/mysqld.sock, mysqld.pid, error.log
#   DIR/nN/port         node N's client port; DIR/nN/args the server options, one per line
#   DIR/env             what the tests read (see write_env in each script)

# shellcheck source=scripts/ports-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports-lib.sh"

readonly TEST_USER=dbpool
readonly TEST_PASSWORD=dbpool-test-pw
readonly TEST_DATABASE=dbpool_test
readonly NODE_START_WAIT_SECONDS=60
readonly NODE_STOP_WAIT_SECONDS=30

die() {
    echo "$SCRIPT_NAME: $*" >&2
    exit 1
}

# The servers run as `mysql` when we are root: rsync SST drops to `nobody` otherwise and
# fails, and a plain user's read_only behaviour is what production sees.
server_user() {
    if [[ $(id -u) -eq 0 ]]; then echo mysql; else id -un; fi
}

# Installs the Debian packages named in "$@" when mariadbd or the given commands are missing.
# A policy-rc.d that denies service starts is in place during the install.
ensure_packages() {
    local missing=0 package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing=1
    done
    [[ $missing -eq 0 ]] && return
    [[ $(id -u) -eq 0 ]] || die "missing packages; run as root or: apt-get install $*"
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null ||
        {
            apt-get update >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
                >/dev/null
        }
    if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
    command -v mariadbd >/dev/null || die "mariadbd still missing after apt-get"
}

# Gives each node N in "$@" the port files named by PORT_FILES (e.g. "port gport"), all from
# one free_ports call.
assign_ports() {
    local -a files nodes ports
    read -r -a files <<<"$PORT_FILES"
    nodes=("$@")
    local needed=$((${#files[@]} * ${#nodes[@]}))
    mapfile -t ports < <(free_ports "$needed" "$DIR")
    ((${#ports[@]} == needed)) || die "could not reserve $needed ports"
    local i=0 n f
    for n in "${nodes[@]}"; do
        for f in "${files[@]}"; do
            echo "${ports[i]}" >"$DIR/n$n/$f"
            i=$((i + 1))
        done
    done
}

node_dir() { echo "$DIR/n$1"; }
node_socket() { echo "$DIR/n$1/mysqld.sock"; }
node_port() { cat "$DIR/n$1/port"; }

node_pid() {
    local file
    file="$(node_dir "$1")/mysqld.pid"
    if [[ -f $file ]]; then cat "$file" 2>/dev/null || true; fi
}

# Runs SQL from stdin (or -e ...) as root over node N's socket: node_sql N [mariadb args...].
node_sql() {
    local n=$1
    shift
    mariadb --no-defaults --protocol=socket --socket="$(node_socket "$n")" -uroot \
        --connect-timeout=5 "$@"
}

# One value from node N: node_value N "SELECT ...".
node_value() {
    node_sql "$1" -N -B -e "$2" 2>/dev/null
}

node_answers() {
    mariadb-admin --no-defaults --protocol=socket --socket="$(node_socket "$1")" -uroot \
        --connect-timeout=2 ping >/dev/null 2>&1
}

# Makes DIR/template once (mariadb-install-db is slow).
make_template() {
    [[ -d $DIR/template/mysql ]] && return
    # Its own --tmpdir: bootstraps of other beds may run at the same time (ctest -j), and in the
    # shared /tmp their temporary tables clash (scripts/mariadb.sh, start).
    mkdir -p "$DIR/install-tmp"
    chown "$(server_user)" "$DIR/install-tmp"
    # The small redo log matters: the template is copied per node (96 MiB by default).
    mariadb-install-db --no-defaults --user="$(server_user)" \
        --auth-root-authentication-method=normal --datadir="$DIR/template" --skip-test-db \
        --tmpdir="$DIR/install-tmp" --innodb-log-file-size=16M >"$DIR/install.log" 2>&1 ||
        {
            tail -n 20 "$DIR/install.log" >&2
            die "mariadb-install-db failed (see $DIR/install.log)"
        }
}

# Creates node N's directory and, unless "$2" is "empty", a copy of the template as its data
# directory (ports come from assign_ports).
prepare_node() {
    local n=$1 dir
    dir=$(node_dir "$n")
    mkdir -p "$dir/tmp"
    if [[ ${2:-} != empty ]]; then cp -a "$DIR/template" "$dir/data"; fi
    chown -R "$(server_user)" "$dir"
}

# The options every node gets; the scripts add their own after these.
base_args() {
    local n=$1 dir
    dir=$(node_dir "$n")
    printf '%s\n' --no-defaults "--user=$(server_user)" "--datadir=$dir/data" \
        "--socket=$dir/mysqld.sock" "--pid-file=$dir/mysqld.pid" "--port=$(node_port "$n")" \
        --bind-address=127.0.0.1 --skip-name-resolve "--log-error=$dir/error.log" \
        --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --performance-schema=OFF \
        --max-connections=300 "--tmpdir=$dir/tmp" --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_general_ci --innodb-flush-log-at-trx-commit=2 \
        "--server-id=$n"
}

# Starts node N with DIR/nN/args plus "$@" (extra one-off options), without waiting.
launch_node() {
    local n=$1 dir
    shift
    dir=$(node_dir "$n")
    local -a args
    mapfile -t args <"$dir/args"
    # setsid: the server must not die with the shell that started it (ctest, a test binary).
    setsid mariadbd "${args[@]}" "$@" </dev/null >>"$dir/server.out" 2>&1 &
    echo $! >"$dir/launched.pid"
}

# True while the process launch_node started for node N runs (before it wrote its pid file).
node_launched_alive() {
    local file pid
    file="$(node_dir "$1")/launched.pid"
    [[ -f $file ]] || return 1
    pid=$(cat "$file")
    # The pid may have been reused since: it must still be this node's server.
    kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--datadir=$(node_dir "$1")/data"
}

# Waits until node N answers; dies after NODE_START_WAIT_SECONDS.
wait_answers() {
    local n=$1 deadline=$((SECONDS + NODE_START_WAIT_SECONDS))
    until node_answers "$n"; do
        if ((SECONDS >= deadline)); then
            tail -n 30 "$(node_dir "$n")/error.log" >&2 || true
            die "node $n in $DIR did not answer within ${NODE_START_WAIT_SECONDS}s"
        fi
        if ! node_launched_alive "$n"; then
            tail -n 30 "$(node_dir "$n")/error.log" >&2 || true
            die "node $n in $DIR exited while starting"
        fi
        sleep 0.2
    done
}

stop_node() {
    local n=$1 pid
    pid=$(node_pid "$n")
    # No pid file (a joiner killed early, a crashed start): the process launch_node started.
    if [[ -z $pid ]] && node_launched_alive "$n"; then pid=$(cat "$(node_dir "$n")/launched.pid"); fi
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || {
        rm -f "$(node_dir "$n")/mysqld.pid"
        return 0
    }
    local deadline=$((SECONDS + NODE_STOP_WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "$SCRIPT_NAME: node $n ($pid) did not stop in ${NODE_STOP_WAIT_SECONDS}s; kill -9" >&2
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$(node_dir "$n")/mysqld.pid"
}

kill9_node() {
    local n=$1 pid
    pid=$(node_pid "$n")
    [[ -n $pid ]] || die "node $n has no pid file (not running?)"
    kill -9 "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + NODE_STOP_WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    rm -f "$(node_dir "$n")/mysqld.pid"
}

# Creates the test database and a plain user (no SUPER, no READ ONLY ADMIN: read_only applies
# to it) on node N; the statements replicate to the other nodes.
create_test_user() {
    node_sql "$1" <<SQL
CREATE DATABASE IF NOT EXISTS \`$TEST_DATABASE\`;
CREATE USER IF NOT EXISTS '$TEST_USER'@'localhost' IDENTIFIED BY '$TEST_PASSWORD';
CREATE USER IF NOT EXISTS '$TEST_USER'@'127.0.0.1' IDENTIFIED BY '$TEST_PASSWORD';
GRANT ALL PRIVILEGES ON \`$TEST_DATABASE\`.* TO '$TEST_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`$TEST_DATABASE\`.* TO '$TEST_USER'@'127.0.0.1';
GRANT PROCESS, SLAVE MONITOR ON *.* TO '$TEST_USER'@'localhost';
GRANT PROCESS, SLAVE MONITOR ON *.* TO '$TEST_USER'@'127.0.0.1';
SQL
}

# Resident memory of all running nodes in MiB.
nodes_rss_mib() {
    local total=0 n pid rss
    for n in "$@"; do
        pid=$(node_pid "$n")
        [[ -n $pid ]] || continue
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${rss:-0}))
    done
    echo $((total / 1024))
}

# Refuses to delete anything that this library did not create.
remove_dir() {
    [[ -d $DIR ]] || return 0
    if [[ -d $DIR/n1 && -f $DIR/n1/port ]] || [[ -z $(ls -A "$DIR") ]] ||
        [[ -d $DIR/template && ! -e $DIR/n1 ]]; then
        release_ports "$DIR"
        rm -rf "$DIR"
    else
        die "$DIR does not look like a $SCRIPT_NAME directory; not removing it"
    fi
}
