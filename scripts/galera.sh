#!/usr/bin/env bash
# Throwaway three-node MariaDB Galera cluster (Debian galera-4, rsync SST) for dbpool's cluster
# tests, example and benchmark.
#
#   scripts/galera.sh start DIR          create DIR, bootstrap node 1, join nodes 2 and 3 (from
#                                        copies of node 1's data: no state transfer), write
#                                        DIR/env
#   scripts/galera.sh stop DIR           stop every node and remove DIR
#   scripts/galera.sh status DIR [N]     exit 0 when every node (or node N) is Synced
#   scripts/galera.sh kill9 DIR N        kill -9 node N, keep its data
#   scripts/galera.sh restart DIR N      stop node N (if running), recover its position
#                                        (mariadbd --wsrep-recover) and start it again so it
#                                        rejoins by IST; waits until it is Synced
#   scripts/galera.sh isolate DIR N      partition node N (gmcast.isolate=1: it answers 1047)
#   scripts/galera.sh rejoin DIR N       undo isolate; waits until it is Synced
#   scripts/galera.sh sql DIR N          run SQL from stdin as root on node N
#
# Ports: each node has a client port, a group-communication port, an IST port and an SST port,
# all on 127.0.0.1. Failure detection is shortened (evs.suspect_timeout 2 s, keepalive 0.5 s,
# which stays below a third of it) so a killed node is evicted in about 3 s instead of 6.
# GALERA_TIMEOUTS=default in the environment of `start` keeps Galera's own evs.* timeouts
# (suspect 5 s, keepalive 1 s, inactive 15 s, ...) instead, to measure failover as a default
# install has it (scripts/galera-failover.sh); the nodes keep them across restarts.
# Nothing is a system service: everything lives in DIR, the servers run as `mysql` when
# started by root (rsync SST fails as root). Every wait is bounded.
set -euo pipefail

SCRIPT_NAME=galera.sh
readonly NODES=(1 2 3)
readonly SYNC_WAIT_SECONDS=90
readonly PROVIDER=/usr/lib/galera/libgalera_smm.so

usage() {
    echo "usage: $0 {start|stop|status|kill9|restart|isolate|rejoin|sql} DIR [NODE]" >&2
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

# Group-communication, IST and SST ports of node N (DIR/nN/gport, iport, sport).
gport() { cat "$DIR/n$1/gport"; }

write_args() {
    local n=$1 dir members="" m
    dir=$(node_dir "$n")
    for m in "${NODES[@]}"; do members+="${members:+,}127.0.0.1:$(gport "$m")"; done
    local provider_options
    provider_options="gmcast.listen_addr=tcp://127.0.0.1:$(gport "$n");"
    provider_options+="ist.recv_addr=127.0.0.1:$(cat "$dir/iport");gcache.size=64M;"
    case ${GALERA_TIMEOUTS:-short} in
        short)
            provider_options+="evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;"
            provider_options+="evs.inactive_timeout=PT4S;evs.inactive_check_period=PT0.5S;"
            provider_options+="evs.install_timeout=PT4S;"
            ;;
        default) ;;
        *) die "GALERA_TIMEOUTS must be short or default, not '$GALERA_TIMEOUTS'" ;;
    esac
    provider_options+="pc.wait_prim_timeout=PT10S"
    {
        base_args "$n"
        printf '%s\n' --wsrep-on=ON "--wsrep-provider=$PROVIDER" \
            "--wsrep-cluster-address=gcomm://$members" --wsrep-cluster-name=dbpool_test \
            "--wsrep-node-name=n$n" "--wsrep-node-address=127.0.0.1:$(gport "$n")" \
            "--wsrep-node-incoming-address=127.0.0.1:$(node_port "$n")" \
            --wsrep-sst-method=rsync "--wsrep-sst-receive-address=127.0.0.1:$(cat "$dir/sport")" \
            "--wsrep-provider-options=$provider_options" --wsrep-slave-threads=2 \
            --binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2
    } >"$dir/args"
}

# wsrep_local_state of node N (4 = Synced), or nothing when it does not answer.
node_state() {
    node_value "$1" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
        WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE'" || true
}

node_synced() {
    [[ $(node_state "$1") == 4 ]] &&
        [[ $(node_value "$1" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
            WHERE VARIABLE_NAME = 'WSREP_READY'") == ON ]]
}

wait_synced() {
    local n=$1 deadline=$((SECONDS + SYNC_WAIT_SECONDS))
    until node_synced "$n"; do
        if ((SECONDS >= deadline)); then
            tail -n 40 "$(node_dir "$n")/error.log" >&2 || true
            die "node $n in $DIR was not Synced within ${SYNC_WAIT_SECONDS}s"
        fi
        if ! node_launched_alive "$n"; then
            tail -n 40 "$(node_dir "$n")/error.log" >&2 || true
            die "node $n in $DIR exited while joining"
        fi
        sleep 0.3
    done
}

# Gives all three nodes one cluster state without a state transfer (rsync SST takes 10-80 s on
# a busy 2-core machine): node 1 bootstraps, gets the test user, and stops cleanly, which
# writes its cluster position to grastate.dat; nodes 2 and 3 get copies of its data directory.
seed_cluster() {
    start_node 1 --wsrep-new-cluster
    create_test_user 1
    stop_node 1
    grep -q '^seqno: *[0-9]' "$DIR/n1/data/grastate.dat" ||
        die "node 1 stopped without a cluster position (see $DIR/n1/error.log)"
    local n
    for n in 2 3; do
        rm -rf "$DIR/n$n/data"
        cp -a "$DIR/n1/data" "$DIR/n$n/data"
        chown -R "$(server_user)" "$DIR/n$n"
        # Only node 1 may bootstrap; the copies must join it.
        sed -i 's/^safe_to_bootstrap: *1/safe_to_bootstrap: 0/' "$DIR/n$n/data/grastate.dat"
        rm -f "$DIR/n$n/data/gvwstate.dat" "$DIR/n$n/data/galera.cache"
    done
}

# Starts node N and waits until it is Synced; "$@" are one-off options.
start_node() {
    local n=$1
    shift
    launch_node "$n" "$@"
    wait_synced "$n"
}

# The position node N's InnoDB recovered to (uuid:seqno), from mariadbd --wsrep-recover.
recover_position() {
    local n=$1 dir log position
    dir=$(node_dir "$n")
    log="$dir/recover.log"
    local -a args
    mapfile -t args <"$dir/args"
    rm -f "$log"
    # --log-error goes last so it overrides the node's own error log for this run.
    timeout 60 mariadbd "${args[@]}" --wsrep-recover "--log-error=$log" </dev/null \
        >/dev/null 2>&1 || true
    if [[ -f $log ]]; then
        position=$(sed -n 's/.*WSREP: Recovered position: *\([^ ]*\).*/\1/p' "$log" | tail -n 1)
    fi
    chown "$(server_user)" "$log" 2>/dev/null || true
    echo "${position:-}"
}

restart_node() {
    local n=$1 position
    stop_node "$n"
    position=$(recover_position "$n")
    if [[ -n $position && $position != *:-1 ]]; then
        start_node "$n" "--wsrep-start-position=$position"
    else
        # No position: the node joins by SST (a full copy), which also works, only slower.
        start_node "$n"
    fi
}

write_env() {
    local url_hosts="" n
    for n in "${NODES[@]}"; do url_hosts+="${url_hosts:+,}127.0.0.1:$(node_port "$n")"; done
    {
        echo "DBPOOL_CLUSTER_KIND=galera"
        echo "DBPOOL_CLUSTER_NODES=3"
        echo "DBPOOL_CLUSTER_USER=$TEST_USER"
        echo "DBPOOL_CLUSTER_PASSWORD=$TEST_PASSWORD"
        echo "DBPOOL_CLUSTER_DATABASE=$TEST_DATABASE"
        for n in "${NODES[@]}"; do
            echo "DBPOOL_NODE${n}_PORT=$(node_port "$n")"
            echo "DBPOOL_NODE${n}_SOCKET=$(node_socket "$n")"
            echo "DBPOOL_NODE${n}_ROLE=galera"
        done
        echo "DBPOOL_CLUSTER_URL=mysql://$TEST_USER:$TEST_PASSWORD@$url_hosts/$TEST_DATABASE"
    } >"$DIR/env"
}

status_all() {
    local n
    for n in "${NODES[@]}"; do node_synced "$n" || return 1; done
}

start() {
    ensure_packages mariadb-server mariadb-client galera-4 rsync
    [[ -f $PROVIDER ]] || die "$PROVIDER is missing (apt-get install galera-4)"
    [[ ${#DIR} -lt 80 ]] || die "DIR too long for unix socket paths: $DIR"
    if [[ -f $DIR/env ]] && status_all; then
        echo "$SCRIPT_NAME: cluster in $DIR already running"
        return
    fi
    local began=$SECONDS n
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    DIR=$(cd "$DIR" && pwd)
    make_template
    if [[ ! -d $DIR/n1 ]]; then
        # Nodes 2 and 3 get their data from node 1 (seed_cluster).
        prepare_node 1
        prepare_node 2 empty
        prepare_node 3 empty
        PORT_FILES="port gport iport sport" assign_ports "${NODES[@]}"
    fi
    for n in "${NODES[@]}"; do write_args "$n"; done
    if [[ ! -f $DIR/n1/data/grastate.dat ]]; then seed_cluster; fi
    # Node 1 bootstraps the cluster; nodes 2 and 3 hold the same state (seed_cluster), so they
    # join together without any state transfer.
    if ! node_synced 1; then start_node 1 --wsrep-new-cluster; fi
    local -a joining=()
    for n in 2 3; do
        if ! node_synced "$n"; then
            launch_node "$n"
            joining+=("$n")
        fi
    done
    for n in "${joining[@]}"; do wait_synced "$n"; done
    write_env
    echo "Galera cluster running in $DIR: nodes 127.0.0.1:$(node_port 1) :$(node_port 2)" \
        ":$(node_port 3); started in $((SECONDS - began)) s," \
        "$(nodes_rss_mib "${NODES[@]}") MiB resident"
    echo "  env:  set -a; . $DIR/env; set +a"
    echo "  stop: $0 stop $DIR"
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
            node_synced "$NODE"
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
        began=$SECONDS
        restart_node "$NODE"
        echo "node $NODE rejoined (Synced) in $((SECONDS - began)) s"
        ;;
    isolate)
        need_node
        node_sql "$NODE" -e "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'"
        ;;
    rejoin)
        need_node
        node_sql "$NODE" -e "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'"
        wait_synced "$NODE"
        ;;
    sql)
        need_node
        node_sql "$NODE"
        ;;
    *) usage ;;
esac
