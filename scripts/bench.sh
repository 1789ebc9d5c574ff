#!/usr/bin/env bash
# dbpool's benchmarks, one command on a fresh clone (docs/benchmarks.md explains the method):
#
#   scripts/bench.sh [--no-deps] [--quick]
#
# 1. scripts/install-deps.sh (skipped with --no-deps; a no-op when everything is installed).
# 2. Release build (-O2) with -DDBPOOL_BUILD_BENCH=ON in $BUILD_DIR (default build/bench).
# 3. A throwaway MariaDB in a temporary directory (scripts/mariadb.sh; stopped on exit).
# 4. Runs bench/pool_overhead (no-op connection; dbpool, a textbook pool and the peers soci and
#    MySQL++ when installed), bench/primitives, bench/pool_memory and bench/server_throughput;
#    results (JSON, CSV, summary.md) go to $RESULTS_DIR (default build/bench-results).
# 5. bench/report.py prints the tables and every target with met/missed; gnuplot draws the
#    oversubscribed curve (docs/benchmark-oversubscribed.png) and requests/s against threads
#    for every server variant (docs/benchmark-throughput.png); --quick draws them in the
#    results directory instead.
#
# --quick: short runs (about 2 minutes in all) to check that everything works; the numbers are
# too noisy to quote. A full run takes about 9 minutes on 2 cores; the total is printed.
# Environment: JOBS (build parallelism, default 2), BUILD_DIR, RESULTS_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
started=$SECONDS

with_deps=1
quick=0
for arg in "$@"; do
    case "$arg" in
        --no-deps) with_deps=0 ;;
        --quick) quick=1 ;;
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
    -DDBPOOL_BUILD_TESTS=OFF -DDBPOOL_BUILD_EXAMPLES=OFF -DDBPOOL_INSTALL=OFF >/dev/null
cmake --build "$build_dir" -j "$jobs" --target dbpool_pool_overhead dbpool_primitives \
    dbpool_pool_memory dbpool_server_throughput
bin=$build_dir/bench

mkdir -p "$results"
rm -f "$results"/pool_overhead.json "$results"/primitives.json "$results"/pool_memory.json \
    "$results"/server_throughput.json "$results"/server_throughput.csv "$results"/*.dat

section "machine"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "compiler: $(c++ --version | head -n1)"
    echo "server: $(mariadbd --version 2>/dev/null | head -n1)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "peers: $(dpkg-query -W -f='${Package} ${Version}, ' libsoci-dev libmysql++-dev \
        2>/dev/null || echo 'not installed')"
} | tee "$results/machine.txt"

section "throwaway MariaDB"
server_dir=$(mktemp -d /tmp/dbpool-bench.XXXXXX)
stop_server() { bash "$repo/scripts/mariadb.sh" stop "$server_dir" >/dev/null 2>&1 || true; }
trap stop_server EXIT
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
else
    overhead_args=(--reps 3 --scale 1)
    primitive_args=(--reps 5 --scale 1)
    server_args=(--seconds 1.0 --rounds 5 --cycles 100000)
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
