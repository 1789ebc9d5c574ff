#!/usr/bin/env bash
# dbpool's benchmarks, one command on a fresh clone (docs/benchmarks.md explains the method):
#
#   scripts/bench.sh [--no-deps] [--quick] [--cluster-only]
#
# 1. scripts/install-deps.sh (skipped with --no-deps; a no-op when everything is installed).
# 2. Release build (-O2) with -DDBPOOL_BUILD_BENCH=ON in $BUILD_DIR (default build/bench).
# 3. A throwaway MariaDB and a throwaway PostgreSQL in temporary directories
#    (scripts/mariadb.sh, scripts/postgres.sh; stopped on exit).
# 4. Runs bench/pool_overhead (no-op connection; dbpool, a textbook pool and the peers soci and
#    MySQL++ when installed), bench/primitives, bench/pool_memory, bench/server_throughput and
#    bench/pg_throughput; results (JSON, CSV, summary.md, pg_throughput.txt) go to $RESULTS_DIR
#    (default build/bench-results).
# 4b. bench/pg_cluster_reads: reads over a PostgreSQL primary + 2 streaming replicas against the
#    primary alone (a throwaway scripts/pg-replication.sh bed; pg_cluster_reads.txt).
# 5. bench/report.py prints the tables and every target with met/missed; gnuplot draws the
#    oversubscribed curve (docs/benchmark-oversubscribed.png) and requests/s against threads
#    for every server variant (docs/benchmark-throughput.png); --quick draws them in the
#    results directory instead.
#
# --quick: short runs (about 2 minutes in all) to check that everything works; the numbers are
# too noisy to quote. A full run takes about 9 minutes on 2 cores; the total is printed.
# --cluster-only: build and run only step 4b (about 40 s).
# Environment: JOBS (build parallelism, default 2), BUILD_DIR, RESULTS_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
started=$SECONDS

with_deps=1
quick=0
cluster_only=0
for arg in "$@"; do
    case "$arg" in
        --no-deps) with_deps=0 ;;
        --quick) quick=1 ;;
        --cluster-only) cluster_only=1 ;;
        -h | --help)
            sed -n '2,/^# Environment/p' "$0"
            exit 0
            ;;
        *)
            echo "bench.sh: unknown option '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

build_dir=${BUILD_DIR:-$repo/build/bench}
results=${RESULTS_DIR:-$repo/build/bench-results}
jobs=${JOBS:-2}

section() { printf '\n==== %s ====\n' "$*"; }

if [ "$with_deps" -eq 1 ]; then
    section "dependencies"
    bash scripts/install-deps.sh
fi

section "build (Release, -O2) in $build_dir"
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" -DDBPOOL_BUILD_BENCH=ON -DDBPOOL_WITH_MYSQL=ON \
    -DDBPOOL_WITH_PG=ON \
    -DDBPOOL_BUILD_TESTS=OFF -DDBPOOL_BUILD_EXAMPLES=OFF -DDBPOOL_INSTALL=OFF >/dev/null
targets=(dbpool_pool_overhead dbpool_primitives dbpool_pool_memory dbpool_server_throughput
    dbpool_pg_throughput dbpool_pg_cluster_reads)
if [ "$cluster_only" -eq 1 ]; then targets=(dbpool_pg_cluster_reads); fi
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
bin=$build_dir/bench

mkdir -p "$results"
rm -f "$results"/pool_overhead.json "$results"/primitives.json "$results"/pool_memory.json \
    "$results"/server_throughput.json "$results"/server_throughput.csv "$results"/*.dat \
    "$results"/pg_throughput.json "$results"/pg_throughput.txt "$results"/pg_cluster_reads.txt

section "machine"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "compiler: $(c++ --version | head -n1)"
    echo "server: $(mariadbd --version 2>/dev/null | head -n1)"
    echo "pg server: $(find /usr/lib/postgresql -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n1 |
        xargs -r -I{} {} --version)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "peers: $(dpkg-query -W -f='${Package} ${Version}, ' libsoci-dev libmysql++-dev \
        2>/dev/null || echo 'not installed')"
} | tee "$results/machine.txt"

server_dir=$(mktemp -d /tmp/dbpool-bench.XXXXXX)
pg_dir=$(mktemp -d /tmp/dbpool-pgbench.XXXXXX)
pg_cluster_dir=$(mktemp -d /tmp/dbpool-pgrbench.XXXXXX)
stop_server() {
    bash "$repo/scripts/mariadb.sh" stop "$server_dir" >/dev/null 2>&1 || true
    bash "$repo/scripts/postgres.sh" stop "$pg_dir" >/dev/null 2>&1 || true
    bash "$repo/scripts/pg-replication.sh" stop "$pg_cluster_dir" >/dev/null 2>&1 || true
}
trap stop_server EXIT

# Reads over a primary and two streaming replicas against the primary alone, both in one run.
pg_cluster_reads() {
    section "pg_cluster_reads (PostgreSQL primary + 2 streaming replicas over 127.0.0.1)"
    bash scripts/pg-replication.sh start "$pg_cluster_dir" >"$results/pg-replication-start.txt"
    local url seconds=3
    if [ "$quick" -eq 1 ]; then seconds=1; fi
    # shellcheck disable=SC1091
    url=$(. "$pg_cluster_dir/env" && echo "$DBPOOL_CLUSTER_URL")
    echo "DBPOOL_CLUSTER_URL=<bed> $bin/dbpool_pg_cluster_reads $seconds 8" \
        >"$results/pg_cluster_reads.txt"
    DBPOOL_CLUSTER_URL=$url timeout 300 "$bin/dbpool_pg_cluster_reads" "$seconds" 8 |
        tee -a "$results/pg_cluster_reads.txt"
    bash scripts/pg-replication.sh stop "$pg_cluster_dir" >/dev/null
}

if [ "$cluster_only" -eq 1 ]; then
    pg_cluster_reads
    echo "results: $results/pg_cluster_reads.txt"
    exit 0
fi

section "throwaway MariaDB"
# Into a file, not `| head -n1`: head exiting early sends mariadb.sh SIGPIPE and, with
# pipefail, ends this script (exit 141) whenever the server's message is written late.
bash scripts/mariadb.sh start "$server_dir" >"$results/mariadb-start.txt"
head -n1 "$results/mariadb-start.txt"
set -a
# shellcheck disable=SC1091
. "$server_dir/env"
set +a

if [ "$quick" -eq 1 ]; then
    overhead_args=(--reps 1 --scale 0.1)
    primitive_args=(--reps 1 --scale 0.2)
    server_args=(--seconds 0.3 --rounds 1 --cycles 10000)
    pg_args=(--seconds 0.3 --rounds 1)
else
    overhead_args=(--reps 3 --scale 1)
    primitive_args=(--reps 5 --scale 1)
    server_args=(--seconds 1.0 --rounds 5 --cycles 100000)
    pg_args=(--seconds 1.2 --rounds 5)
fi

section "pool_overhead (no-op connection)"
timeout 900 "$bin/dbpool_pool_overhead" "${overhead_args[@]}" --json "$results/pool_overhead.json"

section "primitives"
timeout 300 "$bin/dbpool_primitives" "${primitive_args[@]}" --json "$results/primitives.json"

section "pool_memory"
"$bin/dbpool_pool_memory" "$results/pool_memory.json"

section "server_throughput (MariaDB over 127.0.0.1)"
timeout 600 "$bin/dbpool_server_throughput" "${server_args[@]}" \
    --json "$results/server_throughput.json" --csv "$results/server_throughput.csv"

section "pg_throughput (PostgreSQL over 127.0.0.1)"
bash scripts/postgres.sh start "$pg_dir" >"$results/postgres-start.txt"
head -n1 "$results/postgres-start.txt"
# shellcheck disable=SC1091
DBPOOL_PG_URL=$(. "$pg_dir/env" && echo "$DBPOOL_PG_URL")
DBPOOL_PG_URL=$DBPOOL_PG_URL timeout 600 "$bin/dbpool_pg_throughput" "${pg_args[@]}" \
    --json "$results/pg_throughput.json" | tee "$results/pg_throughput.txt"

pg_cluster_reads

section "report"
python3 bench/report.py "$results"

# A full run redraws the charts in docs/; a --quick run's numbers are not worth committing, so
# its charts stay in the results directory.
charts=$repo/docs
if [ "$quick" -eq 1 ]; then charts=$results; fi
if command -v gnuplot >/dev/null; then
    if [ -f "$results/curve.dat" ]; then
        gnuplot -e "datafile='$results/curve.dat'; outfile='$charts/benchmark-oversubscribed.png'" \
            bench/oversubscribed.gp
        echo "chart: $charts/benchmark-oversubscribed.png"
    fi
    if [ -f "$results/throughput.dat" ]; then
        gnuplot -e "datafile='$results/throughput.dat'; outfile='$charts/benchmark-throughput.png'" \
            bench/throughput.gp
        echo "chart: $charts/benchmark-throughput.png"
    fi
fi
echo "results: $results"
elapsed=$((SECONDS - started))
printf 'total run time: %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
