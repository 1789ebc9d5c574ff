#!/usr/bin/env bash
# Galera failover time with Galera's default failure detection, measured on demand (never part
# of the test suite: every run waits out the default timeouts).
#
#   scripts/galera-failover.sh [BUILD_DIR] [RUNS]
#
# Builds dbpool_galera_tests in BUILD_DIR (default build/asan; configured with the MySQL
# backend and tests), starts a throwaway scripts/galera.sh bed with GALERA_TIMEOUTS=default in a
# temporary directory, runs the hidden test "[galera_failover]" (tests/cluster/galera_test.cpp)
# RUNS times (default 3; the write node is killed with -9 and restarted in each) and stops the
# bed. GALERA_TIMEOUTS=short measures on the test suite's shortened timeouts instead, for
# comparison. Each run prints one "galera-failover: run N: ..." line: how long after the kill a write
# and a read first succeeded on another node, the longest single call, the failures.
# About 1 minute for the bed and 30 s per run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
build=${1:-build/asan}
runs=${2:-3}
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "galera-failover.sh: RUNS must be 1..99" >&2; exit 2; }
[[ -f $build/CMakeCache.txt ]] || { echo "galera-failover.sh: $build is not configured" >&2; exit 2; }

nice -n 10 cmake --build "$build" -j 2 --target dbpool_galera_tests >/dev/null
binary=$(find "$build" -name dbpool_galera_tests -type f -perm -u+x | head -n1)
[[ -n $binary ]] || { echo "galera-failover.sh: no dbpool_galera_tests in $build" >&2; exit 1; }

dir=$(mktemp -d /tmp/dbpool-galera-failover.XXXXXX)
stop_bed() { bash "$repo/scripts/galera.sh" stop "$dir" >/dev/null 2>&1 || true; }
trap stop_bed EXIT
timeouts=${GALERA_TIMEOUTS:-default}
GALERA_TIMEOUTS=$timeouts bash scripts/galera.sh start "$dir" >"$dir.start.log" 2>&1 ||
    { cat "$dir.start.log" >&2; exit 1; }
rm -f "$dir.start.log"
echo "bed: $dir (GALERA_TIMEOUTS=$timeouts), load $(cut -d' ' -f1-3 /proc/loadavg)"
DBPOOL_GALERA_DIR=$dir DBPOOL_FAILOVER_RUNS=$runs "$binary" "[galera_failover]"
