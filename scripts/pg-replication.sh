#!/usr/bin/env bash
# Throwaway PostgreSQL streaming-replication test bed: one primary (node 1) and two hot-standby
# replicas (nodes 2, 3) made with pg_basebackup -R, for dbpool's PostgreSQL cluster tests.
#
#   scripts/pg-replication.sh start DIR        create DIR, initdb node 1, clone nodes 2 and 3
#                                              from it, start all three on free loopback ports,
#                                              wait until both replicas stream, write DIR/env
#   scripts/pg-replication.sh stop DIR         stop every node (immediate: the data is thrown
#                                              away) and remove DIR
#   scripts/pg-replication.sh status DIR [N]   exit 0 when every node (or node N) answers and,
#                                              without N, both replicas stream from node 1
#   scripts/pg-replication.sh kill9 DIR N      kill -9 node N's postmaster and backends, keep data
#   scripts/pg-replication.sh halt DIR N       stop node N (fast shutdown), keep its data
#   scripts/pg-replication.sh restart DIR N    stop node N (if running) and start it again
#   scripts/pg-replication.sh pause DIR N      pg_wal_replay_pause() on replica N (it lags
#                                              while the primary writes)
#   scripts/pg-replication.sh resume DIR N     pg_wal_replay_resume() on replica N
#   scripts/pg-replication.sh promote DIR N    pg_ctl promote replica N (waits until it is)
#   scripts/pg-replication.sh rebuild DIR      make the bed whole again after kill9/promote:
#                                              stop everything, throw the data away, start afresh
#                                              on the same ports
#   scripts/pg-replication.sh sql DIR N        run SQL from stdin as the superuser on node N
#
# Nothing is a system service: everything lives in DIR, the servers listen on 127.0.0.1 and a
# unix socket in DIR/nN only. PostgreSQL refuses to run as root, so as root the servers run as
# `postgres` and DIR belongs to it. Replicas reach the primary over its unix socket, retry every
# 200 ms (wal_retrieve_retry_interval) and report every second (wal_receiver_status_interval).
# When pgbouncer is installed, two PgBouncers stand in front of the primary on loopback ports of
# their own, one with pool_mode = transaction and one with session (DIR/env names their ports).
# No heartbeat table or writer: dbpool's default PostgreSQL check measures lag from WAL positions
# and the replay timestamp (docs/pg.md, "Replicas"); the heartbeat-table test creates its table
# and writes it itself. Every wait is bounded. PG_BIN overrides the directory of
# initdb/pg_ctl.
set -euo pipefail

readonly TEST_USER=dbpool
readonly TEST_PASSWORD=dbpool-test-pw
readonly TEST_DATABASE=dbpool_test
readonly NODES=(1 2 3)
readonly START_WAIT_SECONDS=30
readonly STOP_WAIT_SECONDS=20
readonly STREAM_WAIT_SECONDS=30
# PgBouncer instances in front of the primary, one per pool_mode (when pgbouncer is installed).
readonly BOUNCER_MODES=(transaction session)

die() {
    echo "pg-replication.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 {start|stop|status|kill9|halt|restart|pause|resume|promote|rebuild|sql} DIR [NODE]" >&2
    exit 2
}

[[ $# -ge 2 ]] || usage
CMD=$1
DIR=$2
NODE=${3:-}
[[ -n $DIR && $DIR != / ]] || die "refusing DIR '$DIR'"
# Absolute, as in the servers' command lines (node_pid compares them).
if [[ -d $DIR ]]; then DIR=$(cd "$DIR" && pwd); fi

# shellcheck source=scripts/ports-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports-lib.sh"

find_bin() {
    if [[ -n ${PG_BIN:-} ]]; then
        echo "$PG_BIN"
        return
    fi
    find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V |
        tail -n 1
}
PG_BIN=$(find_bin)

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

as_server() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$(server_user)" -- "$@"
    else
        "$@"
    fi
}

need_node() {
    [[ $NODE =~ ^[123]$ ]] || die "$CMD needs a node number 1, 2 or 3"
    [[ -f $DIR/n$NODE/port ]] || die "no test bed in $DIR"
}

node_dir() { echo "$DIR/n$1"; }
node_port() { cat "$DIR/n$1/port"; }

# The pid in node N's postmaster.pid, whatever runs there now (or nothing).
recorded_pid() {
    local file="$DIR/n$1/data/postmaster.pid" pid=""
    if [[ -f $file ]]; then pid=$(head -n 1 "$file" 2>/dev/null) || true; fi
    if [[ $pid =~ ^[0-9]+$ ]]; then echo "$pid"; fi
}

# Node N's running postmaster, or nothing. A killed node leaves its postmaster.pid behind, and
# its pid may since belong to an unrelated process: only a process started on this node's data
# directory counts, so nothing else is ever signalled.
node_pid() {
    local pid
    pid=$(recorded_pid "$1")
    [[ -n $pid ]] || return 0
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/n$1/data"; then
        echo "$pid"
    fi
}

node_answers() {
    [[ -f $DIR/n$1/port ]] || return 1
    "$PG_BIN/pg_isready" -q -h "$(node_dir "$1")" -p "$(node_port "$1")" -U postgres \
        -d postgres -t 2 >/dev/null 2>&1
}

# Runs SQL from stdin (or -c ...) as the superuser over node N's socket.
node_sql() {
    local n=$1
    shift
    PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(node_dir "$n")" \
        -p "$(node_port "$n")" -U postgres -d postgres "$@"
}

# One value from node N.
node_value() {
    node_sql "$1" -A -t -c "$2" 2>/dev/null
}

# The settings that differ per node, appended last (later lines win, and a replica's copied
# postgresql.conf holds the primary's).
node_config() {
    local n=$1
    cat >>"$(node_dir "$n")/data/postgresql.conf" <<CONF

# --- scripts/pg-replication.sh: node $n ---
port = $(node_port "$n")
unix_socket_directories = '$(node_dir "$n")'
# A standby's WAL receiver reports this as its application_name (synchronous_standby_names).
cluster_name = 'n$n'
CONF
}

write_primary_config() {
    cat >>"$DIR/n1/data/postgresql.conf" <<CONF

# --- scripts/pg-replication.sh: every node (a replica copies it) ---
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 16MB
# Safe for throwaway data: only an OS crash could lose it.
fsync = off
full_page_writes = off
wal_level = replica
# 1 MB WAL segments (initdb --wal-segsize=1) and few of them kept: a node's files are written
# at start and deleted at stop, three times over (16 MB segments made it 62 MB a node).
min_wal_size = 4MB
max_wal_size = 64MB
# In files under the data directory, not /dev/shm: a killed node leaves nothing behind.
dynamic_shared_memory_type = mmap
max_wal_senders = 8
hot_standby = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 200ms
password_encryption = 'scram-sha-256'
log_min_messages = warning
CONF
    cat >"$DIR/n1/data/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER      ADDRESS        METHOD
local   all          postgres                 trust
local   replication  postgres                 trust
local   all          all                      scram-sha-256
host    all          all       127.0.0.1/32   scram-sha-256
HBA
}

launch() {
    local n=$1 dir pid
    dir=$(node_dir "$n")
    # A killed postmaster that PID 1 has not reaped yet still "exists" for kill(2), and a new
    # postmaster refuses to start over its lock file while it does.
    pid=$(recorded_pid "$n")
    if [[ -n $pid ]]; then
        local deadline=$((SECONDS + STOP_WAIT_SECONDS))
        while kill -0 "$pid" 2>/dev/null && ! running "$pid" && ((SECONDS < deadline)); do
            sleep 0.05
        done
    fi
    if ! as_server "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -t "$START_WAIT_SECONDS" start >/dev/null 2>&1; then
        tail -n 20 "$dir/server.log" >&2 || true
        die "node $n in $DIR did not start within ${START_WAIT_SECONDS}s"
    fi
    local deadline=$((SECONDS + START_WAIT_SECONDS))
    until node_answers "$n"; do
        ((SECONDS < deadline)) || die "node $n in $DIR did not answer within ${START_WAIT_SECONDS}s"
        sleep 0.1
    done
}

# True while process PID runs. A killed server's postmaster is reparented to PID 1, which may reap
# it only seconds later: a zombie counts as gone (kill -0 would still succeed).
running() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

kill9_node() {
    local n=$1 pid children
    pid=$(node_pid "$n")
    [[ -n $pid ]] || return 0
    children=$(pgrep -P "$pid" || true)
    kill -9 "$pid" 2>/dev/null || true
    # Backends outlive a killed postmaster and keep its shared memory: a restart needs them gone.
    if [[ -n $children ]]; then
        # shellcheck disable=SC2086
        kill -9 $children 2>/dev/null || true
    fi
    local deadline=$((SECONDS + STOP_WAIT_SECONDS))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.02; done
}

# Stops node N with pg_ctl's `mode`, then kill -9 if it is still there.
stop_node() {
    local n=$1 mode=$2 pid
    pid=$(node_pid "$n")
    [[ -n $pid ]] || return 0
    as_server "$PG_BIN/pg_ctl" -D "$(node_dir "$n")/data" -m "$mode" -w -t "$STOP_WAIT_SECONDS" \
        stop >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 5))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.02; done
    if running "$pid"; then kill9_node "$n"; fi
}

# True when replica N has a WAL receiver that streams.
streaming() {
    [[ $(node_value "$1" "SELECT status FROM pg_stat_wal_receiver") == streaming ]]
}

# Waits until replica N streams and has replayed everything the primary has written so far.
wait_caught_up() {
    local n=$1 target deadline=$((SECONDS + STREAM_WAIT_SECONDS))
    target=$(node_value 1 "SELECT pg_current_wal_lsn()")
    until streaming "$n" &&
        [[ $(node_value "$n" "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn") == t ]]; do
        ((SECONDS < deadline)) || die "replica $n did not catch up within ${STREAM_WAIT_SECONDS}s"
        sleep 0.1
    done
}

# Creates the three data directories (initdb, then two base backups) on the ports in DIR/nN/port.
create_nodes() {
    as_server "$PG_BIN/initdb" -D "$DIR/n1/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync --wal-segsize=1 \
        >"$DIR/initdb.log" 2>&1 ||
        {
            tail -n 20 "$DIR/initdb.log" >&2
            die "initdb failed (see $DIR/initdb.log)"
        }
    write_primary_config
    node_config 1
    launch 1
    node_sql 1 <<SQL >/dev/null
CREATE ROLE $TEST_USER LOGIN PASSWORD '$TEST_PASSWORD';
CREATE DATABASE $TEST_DATABASE OWNER $TEST_USER;
SQL
    # -c fast: an immediate checkpoint instead of waiting for a spread one. One base backup
    # serves both standbys: a copy of it is as good as a second one and takes a tenth of the time.
    as_server "$PG_BIN/pg_basebackup" -D "$DIR/n2/data" -R -X stream -c fast \
        -h "$DIR/n1" -p "$(node_port 1)" -U postgres --no-sync >"$DIR/basebackup.log" 2>&1 ||
        {
            tail -n 20 "$DIR/basebackup.log" >&2
            die "pg_basebackup failed"
        }
    cp -a "$DIR/n2/data" "$DIR/n3/data"
    node_config 2
    node_config 3
    launch_parallel 2 3
}

# Starts the nodes given at the same time and waits for all of them.
launch_parallel() {
    local n pids=() failed=0
    for n in "$@"; do
        launch "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || failed=1; done
    ((failed == 0)) || die "a node did not start (see $DIR/n*/server.log)"
}

bouncer_answers() {
    [[ -f $DIR/bouncer-$1/port ]] || return 1
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$DIR/bouncer-$1/port")" -t 2 >/dev/null 2>&1
}

# A PgBouncer with pool_mode = MODE in front of node 1 (over its unix socket). Transaction mode
# gets two server connections, so a test can make a client's next transaction run on the other
# one; session mode gets one per client (up to 8).
start_bouncer() {
    local mode=$1 dir="$DIR/bouncer-$1" size=2
    [[ $mode == session ]] && size=8
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
$TEST_DATABASE = host=$DIR/n1 port=$(node_port 1) dbname=$TEST_DATABASE

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $(cat "$dir/port")
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = $mode
default_pool_size = $size
max_client_conn = 100
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    printf '"%s" "%s"\n' "$TEST_USER" "$TEST_PASSWORD" >"$dir/userlist.txt"
    chown -R "$(server_user)" "$dir"
    chmod 600 "$dir/userlist.txt"
    # PgBouncer refuses to run as root, like the server.
    as_server pgbouncer -d -q "$dir/pgbouncer.ini" || die "pgbouncer ($mode) did not start"
    local deadline=$((SECONDS + START_WAIT_SECONDS))
    until bouncer_answers "$mode"; do
        ((SECONDS < deadline)) || die "pgbouncer ($mode) did not answer within ${START_WAIT_SECONDS}s"
        sleep 0.05
    done
}

stop_bouncers() {
    local mode pid
    for mode in "${BOUNCER_MODES[@]}"; do
        pid=$(cat "$DIR/bouncer-$mode/pgbouncer.pid" 2>/dev/null) || continue
        # Only this bed's PgBouncer: a stale pid file may name an unrelated process by now.
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
            grep -qF -- "$DIR/bouncer-$mode/pgbouncer.ini"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$DIR/bouncer-$mode/pgbouncer.pid"
    done
}

write_env() {
    local p1 p2 p3
    p1=$(node_port 1)
    p2=$(node_port 2)
    p3=$(node_port 3)
    cat >"$DIR/env" <<ENV
DBPOOL_CLUSTER_KIND=pg-replication
DBPOOL_CLUSTER_NODES=3
DBPOOL_CLUSTER_USER=$TEST_USER
DBPOOL_CLUSTER_PASSWORD=$TEST_PASSWORD
DBPOOL_CLUSTER_DATABASE=$TEST_DATABASE
DBPOOL_CLUSTER_PRIMARY=1
DBPOOL_NODE1_PORT=$p1
DBPOOL_NODE1_SOCKET=$DIR/n1
DBPOOL_NODE1_ROLE=primary
DBPOOL_NODE2_PORT=$p2
DBPOOL_NODE2_SOCKET=$DIR/n2
DBPOOL_NODE2_ROLE=replica
DBPOOL_NODE3_PORT=$p3
DBPOOL_NODE3_SOCKET=$DIR/n3
DBPOOL_NODE3_ROLE=replica
DBPOOL_PGBOUNCER_TRANSACTION_PORT=$(cat "$DIR/bouncer-transaction/port" 2>/dev/null || true)
DBPOOL_PGBOUNCER_SESSION_PORT=$(cat "$DIR/bouncer-session/port" 2>/dev/null || true)
DBPOOL_PGBOUNCER_RUNNING=$(bouncer_answers transaction && bouncer_answers session && echo 1 || echo 0)
DBPOOL_CLUSTER_URL=postgresql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3/$TEST_DATABASE?sslmode=disable
ENV
}

status_all() {
    local n
    for n in "${NODES[@]}"; do node_answers "$n" || return 1; done
    [[ $(node_value 1 "SELECT pg_is_in_recovery()") == f ]] && streaming 2 && streaming 3
}

start() {
    [[ -n $PG_BIN && -x $PG_BIN/initdb && -x $PG_BIN/pg_basebackup ]] ||
        die "PostgreSQL server binaries missing (scripts/install-deps.sh installs postgresql)"
    [[ ${#DIR} -lt 80 ]] || die "DIR too long for unix socket paths: $DIR"
    if [[ -f $DIR/env ]] && status_all; then
        echo "pg-replication.sh: test bed in $DIR already running"
        return
    fi
    local began=$SECONDS
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local n
    if [[ ! -f $DIR/n1/port ]]; then
        for n in "${NODES[@]}"; do mkdir -p "$DIR/n$n"; done
        local -a ports
        mapfile -t ports < <(free_ports 5 "$DIR")
        ((${#ports[@]} == 5)) || die "could not reserve 5 ports"
        for n in "${NODES[@]}"; do echo "${ports[n - 1]}" >"$DIR/n$n/port"; done
        local mode i=3
        for mode in "${BOUNCER_MODES[@]}"; do
            mkdir -p "$DIR/bouncer-$mode"
            echo "${ports[i]}" >"$DIR/bouncer-$mode/port"
            i=$((i + 1))
        done
    fi
    chown -R "$(server_user)" "$DIR"
    chmod 755 "$DIR"
    if [[ -d $DIR/n1/data ]]; then
        local down=()
        for n in "${NODES[@]}"; do node_answers "$n" || down+=("$n"); done
        if ((${#down[@]} > 0)); then launch_parallel "${down[@]}"; fi
    else
        create_nodes
    fi
    for n in 2 3; do wait_caught_up "$n"; done
    local mode
    if command -v pgbouncer >/dev/null 2>&1; then
        for mode in "${BOUNCER_MODES[@]}"; do bouncer_answers "$mode" || start_bouncer "$mode"; done
    fi
    write_env
    echo "pg replication test bed running in $DIR: primary 127.0.0.1:$(node_port 1)," \
        "replicas :$(node_port 2) :$(node_port 3); started in $((SECONDS - began)) s"
    echo "  env:  set -a; . $DIR/env; set +a"
    echo "  stop: $0 stop $DIR"
}

# Kills node N and removes the System V segment its postmaster held: the data directory goes
# next, and no later postmaster would find (and clean up) the segment. Dynamic shared memory is
# in files under the data directory (dynamic_shared_memory_type = mmap), so nothing else stays.
discard_node() {
    local n=$1 key="" shmid=""
    # postmaster.pid, line 7: "<key> <shmid>" (also left behind by a node killed earlier).
    if [[ -f $DIR/n$n/data/postmaster.pid ]]; then
        read -r key shmid < <(sed -n '7p' "$DIR/n$n/data/postmaster.pid") || true
    fi
    kill9_node "$n"
    [[ $key =~ ^[0-9]+$ && $shmid =~ ^[0-9]+$ ]] || return 0
    # Only that segment, still with that key and nobody attached: ids are reused.
    if ipcs -m | awk -v key="$(printf '0x%08x' "$key")" -v id="$shmid" \
        '$1 == key && $2 == id && $6 == 0 { found = 1 } END { exit !found }'; then
        ipcrm -m "$shmid" 2>/dev/null || true
    fi
}

# Kills every node and the PgBouncers at once: used only when the data is thrown away. (An
# immediate shutdown took 5-10 s after a promotion test in two runs of four; kill -9 of the
# postmasters and their children does not wait for anything.)
stop_all() {
    stop_bouncers
    local n pids=()
    for n in "${NODES[@]}"; do
        if [[ -d $DIR/n$n/data ]]; then
            discard_node "$n" &
            pids+=($!)
        fi
    done
    for n in "${pids[@]}"; do wait "$n" || true; done
}

case $CMD in
    start) start ;;
    stop)
        if [[ -d $DIR ]]; then
            began=$(date +%s%N)
            stop_all
            killed=$(date +%s%N)
            if [[ -f $DIR/n1/port || -z $(ls -A "$DIR") ]]; then
                release_ports "$DIR"
                # Deleting the files took up to 11 s under load after the tests had written
                # (unlinking pages still under writeback waits for the disk; fsync is off):
                # move them aside at once and delete them in the background.
                trash="$DIR.removing.$$"
                if mv -T "$DIR" "$trash" 2>/dev/null; then
                    setsid rm -rf "$trash" </dev/null >/dev/null 2>&1 &
                else
                    rm -rf "$DIR"
                fi
                echo "pg replication test bed in $DIR stopped: servers gone in" \
                    "$(((killed - began) / 1000000)) ms; its files are being deleted"
            else
                die "$DIR does not look like a pg-replication.sh directory; not removing it"
            fi
        fi
        ;;
    status)
        if [[ -n $NODE ]]; then
            need_node
            node_answers "$NODE"
        else
            status_all
        fi
        ;;
    kill9)
        need_node
        kill9_node "$NODE"
        ;;
    halt)
        need_node
        stop_node "$NODE" fast
        ;;
    restart)
        need_node
        stop_node "$NODE" fast
        launch "$NODE"
        echo "node $NODE restarted on port $(node_port "$NODE")"
        ;;
    pause)
        need_node
        node_sql "$NODE" -c 'SELECT pg_wal_replay_pause()' >/dev/null
        ;;
    resume)
        need_node
        node_sql "$NODE" -c 'SELECT pg_wal_replay_resume()' >/dev/null
        ;;
    promote)
        need_node
        as_server "$PG_BIN/pg_ctl" -D "$(node_dir "$NODE")/data" -w -t "$START_WAIT_SECONDS" \
            promote >/dev/null
        ;;
    rebuild)
        [[ -f $DIR/n1/port ]] || die "no test bed in $DIR"
        DIR=$(cd "$DIR" && pwd)
        stop_all
        for n in "${NODES[@]}"; do rm -rf "$DIR/n$n/data"; done
        start
        ;;
    sql)
        need_node
        node_sql "$NODE"
        ;;
    *) usage ;;
esac
