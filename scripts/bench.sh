#!/usr/bin/env bash
# dbpool's benchmarks, one command on a fresh clone (docs/benchmarks.md explains the method):
#
#   scripts/bench.sh [--no-deps] [--quick]
#
# 1. scripts/install-deps.sh (skipped with --no-deps; a no-op when everything is installed).
# 2. Release build (-O2) with -DDBPOOL_BUILD_BENCH=ON in $BUILD_DIR (default build/bench).
# 3. A throwaway MariaDB and a throwaway PostgreSQL in temporary directories
#    (scripts/mariadb.sh, scripts/postgres.sh; stopped on exit).
# 4. Runs bench/pool_overhead (Google Benchmark, no-op connection), bench/pool_memory,
#    bench/server_throughput and bench/pg_throughput; results (JSON, CSV, summary.md,
#    pg_throughput.txt) go to $RESULTS_DIR (default build/bench-results).
# 5. bench/report.py prints the ratio and target tables; gnuplot draws requests/s against
#    threads for every variant to docs/benchmark-throughput.png.
#
# --quick: short runs (about a minute in all) to check that everything works; the numbers are
# too noisy to quote. A full run takes about 6 minutes on 2 cores.
# Environment: JOBS (build parallelism, default 2), BUILD_DIR, RESULTS_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

with_deps=1
quick=0
for arg in "$@"; do
    case "$arg" in
        --no-deps) with_deps=0 ;;
        --quick) quick=1 ;;
        -h | --help)
            sed -n '2,18p' "$0"
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
cmake --build "$build_dir" -j "$jobs" --target dbpool_pool_overhead dbpool_pool_memory \
    dbpool_server_throughput dbpool_pg_throughput
bin=$build_dir/bench

mkdir -p "$results"
rm -f "$results"/pool_overhead.json "$results"/pool_memory.json \
    "$results"/server_throughput.json "$results"/server_throughput.csv \
    "$results"/pg_throughput.json "$results"/pg_throughput.txt

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
} | tee "$results/machine.txt"

section "throwaway MariaDB"
server_dir=$(mktemp -d /tmp/dbpool-bench.XXXXXX)
pg_dir=$(mktemp -d /tmp/dbpool-pgbench.XXXXXX)
stop_server() {
    bash "$repo/scripts/mariadb.sh" stop "$server_dir" >/dev/null 2>&1 || true
    bash "$repo/scripts/postgres.sh" stop "$pg_dir" >/dev/null 2>&1 || true
}
trap stop_server EXIT
bash scripts/mariadb.sh start "$server_dir" | head -n1
set -a
# shellcheck disable=SC1091
. "$server_dir/env"
set +a

if [ "$quick" -eq 1 ]; then
    gbench_args=(--benchmark_min_time=0.05 --benchmark_repetitions=1)
    server_args=(--seconds 0.3 --rounds 1 --cycles 10000)
    pg_args=(--seconds 0.3 --rounds 1)
else
    gbench_args=(--benchmark_min_time=0.3 --benchmark_repetitions=3
        --benchmark_enable_random_interleaving=true)
    server_args=(--seconds 1.2 --rounds 5 --cycles 100000)
    pg_args=(--seconds 1.2 --rounds 5)
fi

section "pool_overhead (no-op connection)"
"$bin/dbpool_pool_overhead" "${gbench_args[@]}" --benchmark_display_aggregates_only=true \
    --benchmark_out="$results/pool_overhead.json" --benchmark_out_format=json

section "pool_memory"
"$bin/dbpool_pool_memory" "$results/pool_memory.json"

section "server_throughput (MariaDB over 127.0.0.1)"
timeout 600 "$bin/dbpool_server_throughput" "${server_args[@]}" \
    --json "$results/server_throughput.json" --csv "$results/server_throughput.csv"

section "pg_throughput (PostgreSQL over 127.0.0.1)"
bash scripts/postgres.sh start "$pg_dir" | head -n1
# shellcheck disable=SC1091
DBPOOL_PG_URL=$(. "$pg_dir/env" && echo "$DBPOOL_PG_URL")
DBPOOL_PG_URL=$DBPOOL_PG_URL timeout 600 "$bin/dbpool_pg_throughput" "${pg_args[@]}" \
    --json "$results/pg_throughput.json" | tee "$results/pg_throughput.txt"

section "report"
python3 bench/report.py "$results"

if command -v gnuplot >/dev/null && [ -f "$results/throughput.dat" ]; then
    gnuplot -e "datafile='$results/throughput.dat'; outfile='$repo/docs/benchmark-throughput.png'" \
        bench/throughput.gp
    echo "chart: docs/benchmark-throughput.png"
fi
echo "results: $results"
