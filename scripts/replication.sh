#!/usr/bin/env bash
# Throwaway MariaDB replication test bed: one primary (node 1) and two replicas (nodes 2, 3)
# with GTID replication, for dbpool's cluster tests, example and benchmark.
#
#   scripts/replication.sh start DIR          create DIR, start the three nodes on free loopback
#                                             ports, set up replication, write DIR/env
#   scripts/replication.sh stop DIR           stop every node and remove DIR
#   scripts/replication.sh status DIR [N]     exit 0 when every node (or node N) answers and
#                                             both replicas replicate
#   scripts/replication.sh kill9 DIR N        kill -9 node N, keep its data
#   scripts/replication.sh restart DIR N      stop node N (if running) and start it again
#   scripts/replication.sh stop-sql DIR N     STOP SLAVE SQL_THREAD on replica N (it lags)
#   scripts/replication.sh start-sql DIR N    START SLAVE SQL_THREAD on replica N
#   scripts/replication.sh sql DIR N          run SQL from stdin as root on node N
#
# The primary writes a heartbeat row (dbpool_test.heartbeat, id 1, ts = NOW(6)) every second
# from its event scheduler, so a replica's lag can be read as NOW(6) - ts. Replicas run with
# read_only (the test user has no privilege to bypass it) and MASTER_CONNECT_RETRY=1.
# Nothing is a system service: everything lives in DIR, the servers listen on 127.0.0.1 only
# and run as `mysql` when started by root. Every wait is bounded.
set -euo pipefail

SCRIPT_NAME=replication.sh
readonly REPL_USER=dbpool_repl
readonly REPL_PASSWORD=dbpool-repl-pw
readonly NODES=(1 2 3)
readonly SYNC_WAIT_SECONDS=30

usage() {
    echo "usage: $0 {start|stop|status|kill9|restart|stop-sql|start-sql|sql} DIR [NODE]" >&2
    exit 2
}

[[ $# -ge 2 ]] || usage
CMD=$1
DIR=$2
NODE=${3:-}
[[ -n $DIR && $DIR != / ]] || { echo "$0: refusing DIR '$DIR'" >&2; exit 1; }

# shellcheck source=scripts/cluster-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

need_node() {
    [[ $NODE =~ ^[123]$ ]] || die "$CMD needs a node number 1, 2 or 3"
    [[ -f $DIR/n$NODE/args ]] || die "no test bed in $DIR"
}

write_args() {
    local n=$1
    {
        base_args "$n"
        printf '%s\n' --log-bin=mysql-bin --binlog-format=ROW --log-slave-updates \
            --gtid-strict-mode=ON --relay-log=relay-bin
        if [[ $n -eq 1 ]]; then
            echo --event-scheduler=ON
        else
            printf '%s\n' --read-only=ON --event-scheduler=OFF
        fi
    } >"$(node_dir "$n")/args"
}

# Points replica N at the primary and starts it.
attach_replica() {
    node_sql "$1" <<SQL
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$(node_port 1),
    MASTER_USER='$REPL_USER', MASTER_PASSWORD='$REPL_PASSWORD',
    MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
START SLAVE;
SQL
}

# True when replica N's IO and SQL threads both run.
replica_running() {
    local status
    status=$(node_sql "$1" -e 'SHOW SLAVE STATUS\G' 2>/dev/null) || return 1
    grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"
}

# Waits until replica N has applied everything the primary has logged so far.
wait_caught_up() {
    local n=$1 target deadline=$((SECONDS + SYNC_WAIT_SECONDS))
    target=$(node_value 1 'SELECT @@GLOBAL.gtid_binlog_pos')
    [[ -z $target ]] && return 0
    until [[ $(node_value "$n" "SELECT MASTER_GTID_WAIT('$target', 1)") == 0 ]]; do
        ((SECONDS < deadline)) || die "replica $n did not catch up within ${SYNC_WAIT_SECONDS}s"
    done
}

write_env() {
    local p1 p2 p3
    p1=$(node_port 1)
    p2=$(node_port 2)
    p3=$(node_port 3)
    cat >"$DIR/env" <<ENV
DBPOOL_CLUSTER_KIND=replication
DBPOOL_CLUSTER_NODES=3
DBPOOL_CLUSTER_USER=$TEST_USER
DBPOOL_CLUSTER_PASSWORD=$TEST_PASSWORD
DBPOOL_CLUSTER_DATABASE=$TEST_DATABASE
DBPOOL_CLUSTER_PRIMARY=1
DBPOOL_NODE1_PORT=$p1
DBPOOL_NODE1_SOCKET=$(node_socket 1)
DBPOOL_NODE1_ROLE=primary
DBPOOL_NODE2_PORT=$p2
DBPOOL_NODE2_SOCKET=$(node_socket 2)
DBPOOL_NODE2_ROLE=replica
DBPOOL_NODE3_PORT=$p3
DBPOOL_NODE3_SOCKET=$(node_socket 3)
DBPOOL_NODE3_ROLE=replica
DBPOOL_CLUSTER_HEARTBEAT=$TEST_DATABASE.heartbeat
DBPOOL_CLUSTER_URL=mysql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3/$TEST_DATABASE
ENV
}

start() {
    ensure_packages mariadb-server mariadb-client
    [[ ${#DIR} -lt 80 ]] || die "DIR too long for unix socket paths: $DIR"
    if [[ -f $DIR/env ]] && status_all; then
        echo "$SCRIPT_NAME: test bed in $DIR already running"
        return
    fi
    local began=$SECONDS
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    DIR=$(cd "$DIR" && pwd)
    make_template
    local n
    if [[ ! -d $DIR/n1 ]]; then
        for n in "${NODES[@]}"; do prepare_node "$n"; done
        PORT_FILES=port assign_ports "${NODES[@]}"
    fi
    for n in "${NODES[@]}"; do
        write_args "$n"
        if ! node_answers "$n"; then launch_node "$n"; fi
    done
    for n in "${NODES[@]}"; do wait_answers "$n"; done

    node_sql 1 <<SQL
CREATE USER IF NOT EXISTS '$REPL_USER'@'127.0.0.1' IDENTIFIED BY '$REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO '$REPL_USER'@'127.0.0.1';
SQL
    create_test_user 1
    node_sql 1 <<SQL
CREATE TABLE IF NOT EXISTS \`$TEST_DATABASE\`.heartbeat (
    id INT PRIMARY KEY, ts DATETIME(6) NOT NULL) ENGINE=InnoDB;
REPLACE INTO \`$TEST_DATABASE\`.heartbeat VALUES (1, NOW(6));
CREATE EVENT IF NOT EXISTS \`$TEST_DATABASE\`.heartbeat_tick ON SCHEDULE EVERY 1 SECOND
    DO REPLACE INTO \`$TEST_DATABASE\`.heartbeat VALUES (1, NOW(6));
SQL
    for n in 2 3; do replica_running "$n" || attach_replica "$n"; done
    for n in 2 3; do wait_caught_up "$n"; done
    write_env
    echo "replication test bed running in $DIR: primary 127.0.0.1:$(node_port 1)," \
        "replicas :$(node_port 2) :$(node_port 3); started in $((SECONDS - began)) s," \
        "$(nodes_rss_mib "${NODES[@]}") MiB resident"
    echo "  env:  set -a; . $DIR/env; set +a"
    echo "  stop: $0 stop $DIR"
}

status_all() {
    local n
    for n in "${NODES[@]}"; do node_answers "$n" || return 1; done
    replica_running 2 && replica_running 3
}

case $CMD in
    start) start ;;
    stop)
        if [[ -d $DIR ]]; then
            for n in "${NODES[@]}"; do [[ -d $DIR/n$n ]] && stop_node "$n"; done
            remove_dir
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
    restart)
        need_node
        stop_node "$NODE"
        launch_node "$NODE"
        wait_answers "$NODE"
        echo "node $NODE restarted on port $(node_port "$NODE")"
        ;;
    stop-sql)
        need_node
        node_sql "$NODE" -e 'STOP SLAVE SQL_THREAD'
        ;;
    start-sql)
        need_node
        node_sql "$NODE" -e 'START SLAVE SQL_THREAD'
        ;;
    sql)
        need_node
        node_sql "$NODE"
        ;;
    *) usage ;;
esac
