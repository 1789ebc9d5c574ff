#!/usr/bin/env bash
# The README's demo: build dbpool's examples (Release, build/demo), start a throwaway MariaDB in
# a temp dir, run the scenarios comparison, stop the server. Extra arguments go to `scenarios`
# (e.g. scripts/demo.sh --seconds 1 --threads 1,8).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$repo/build/demo"

# 1. Dependencies: the project's installer if present, else the few Debian packages we need.
need_install=0
for tool in cmake g++ pkg-config mariadbd mariadb-install-db; do
    command -v "$tool" >/dev/null || need_install=1
done
pkg-config --exists libmariadb 2>/dev/null || need_install=1
if [[ $need_install -eq 1 ]]; then
    if [[ -x $repo/scripts/install-deps.sh ]]; then
        "$repo/scripts/install-deps.sh"
    else
        [[ $(id -u) -eq 0 ]] || { echo "demo.sh: missing packages; run as root" >&2; exit 1; }
        # mariadb.sh installs the server with a policy-rc.d guard; here only the build tools.
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            cmake g++ make pkg-config libmariadb-dev
    fi
fi

# 2. Build the examples only.
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDBPOOL_BUILD_TESTS=OFF \
    -DDBPOOL_BUILD_EXAMPLES=ON -DDBPOOL_INSTALL=OFF -DDBPOOL_WITH_MYSQL=ON >/dev/null
cmake --build "$build" --target scenarios quickstart transactions -j2

# 3. A throwaway server, stopped whatever happens next.
server_dir=$(mktemp -d /tmp/dbpool-demo-XXXXXX)
cleanup() { "$repo/scripts/mariadb.sh" stop "$server_dir" || true; }
trap cleanup EXIT INT TERM
"$repo/scripts/mariadb.sh" start "$server_dir"
set -a
# shellcheck disable=SC1091
. "$server_dir/env"
set +a

# 4. The comparison.
echo
"$build/examples/quickstart"
echo
"$build/examples/scenarios" "$@"
