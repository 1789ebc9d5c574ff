#!/usr/bin/env bash
# The README's demo: build dbpool's examples (Release, build/demo), start a throwaway MariaDB and
# a throwaway PostgreSQL in temp dirs, run quickstart, transactions and the four-scenario
# comparison on each (with one line saying how to read it), stop and remove the servers.
# Extra arguments go to `scenarios` and `pg_scenarios` (e.g. scripts/demo.sh --seconds 1
# --threads 1,8). BACKENDS="mysql pg" (the default) chooses which backends run.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$repo/build/demo"
backends=${BACKENDS:-mysql pg}
with_mysql=0
with_pg=0
for backend in $backends; do
    case $backend in
        mysql) with_mysql=1 ;;
        pg) with_pg=1 ;;
        *) echo "demo.sh: unknown backend '$backend' (BACKENDS takes mysql and/or pg)" >&2; exit 2 ;;
    esac
done

# 1. Dependencies: the project's installer if present, else the few Debian packages we need.
need_install=0
for tool in cmake g++ pkg-config; do
    command -v "$tool" >/dev/null || need_install=1
done
if [[ $with_mysql -eq 1 ]]; then
    for tool in mariadbd mariadb-install-db; do command -v "$tool" >/dev/null || need_install=1; done
    pkg-config --exists libmariadb 2>/dev/null || need_install=1
fi
if [[ $with_pg -eq 1 ]]; then
    pkg-config --exists libpq 2>/dev/null || need_install=1
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_install=1
fi
if [[ $need_install -eq 1 ]]; then
    if [[ -x $repo/scripts/install-deps.sh ]]; then
        "$repo/scripts/install-deps.sh"
    else
        [[ $(id -u) -eq 0 ]] || { echo "demo.sh: missing packages; run as root" >&2; exit 1; }
        # The server scripts install their servers with a policy-rc.d guard; here the build tools.
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            cmake g++ make pkg-config libmariadb-dev libpq-dev
    fi
fi

# 2. Build the examples only.
targets=()
cmake_backends=(-DDBPOOL_WITH_MYSQL=OFF -DDBPOOL_WITH_PG=OFF)
if [[ $with_mysql -eq 1 ]]; then
    targets+=(scenarios quickstart transactions)
    cmake_backends[0]=-DDBPOOL_WITH_MYSQL=ON
fi
if [[ $with_pg -eq 1 ]]; then
    targets+=(pg_scenarios pg_quickstart)
    cmake_backends[1]=-DDBPOOL_WITH_PG=ON
fi
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDBPOOL_BUILD_TESTS=OFF \
    -DDBPOOL_BUILD_EXAMPLES=ON -DDBPOOL_INSTALL=OFF "${cmake_backends[@]}" >/dev/null
cmake --build "$build" --target "${targets[@]}" -j2

# How to read the comparison: one line, printed above each table.
explain() {
    echo "A request is one primary-key SELECT on a $1 table of 1000 rows; requests/s counts" \
        "them over all threads, connections is how many connections the server saw opened" \
        "during the run, p50/p99 the latency of one request in microseconds. Look for:" \
        "new-connection opens one per request and is the slowest, global-mutex stops" \
        "scaling with threads, persistent and pooled open one per thread and keep up."
}

# The server scripts end with hints for a server left running; this one is stopped and removed
# when the demo ends, so the stop and env hints would mislead.
start_server() {
    "$@" | grep -v -E '^  (stop|env): '
    echo "  (the demo stops it and removes its directory when it ends)"
}

# 3. Throwaway servers, stopped whatever happens next.
mysql_dir=""
pg_dir=""
cleanup() {
    if [[ -n $mysql_dir ]]; then "$repo/scripts/mariadb.sh" stop "$mysql_dir" || true; fi
    if [[ -n $pg_dir ]]; then "$repo/scripts/postgres.sh" stop "$pg_dir" || true; fi
}
trap cleanup EXIT INT TERM

# 4. The comparison, per backend.
if [[ $with_mysql -eq 1 ]]; then
    mysql_dir=$(mktemp -d /tmp/dbpool-demo-XXXXXX)
    start_server "$repo/scripts/mariadb.sh" start "$mysql_dir"
    set -a
    # shellcheck disable=SC1091
    . "$mysql_dir/env"
    set +a
    echo
    echo "==== MariaDB ===="
    "$build/examples/quickstart"
    echo
    "$build/examples/transactions"
    echo
    explain MariaDB
    "$build/examples/scenarios" "$@"
fi
if [[ $with_pg -eq 1 ]]; then
    pg_dir=$(mktemp -d /tmp/dbpool-pgdemo-XXXXXX)
    start_server "$repo/scripts/postgres.sh" start "$pg_dir"
    set -a
    # shellcheck disable=SC1091
    . "$pg_dir/env"
    set +a
    echo
    echo "==== PostgreSQL ===="
    "$build/examples/pg_quickstart"
    echo
    explain PostgreSQL
    "$build/examples/pg_scenarios" "$@"
fi
