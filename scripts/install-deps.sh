#!/usr/bin/env bash
# Installs the Debian packages dbpool's build, tests, lint, API reference (doxygen) and benchmarks
# need.
#
# Idempotent: does nothing (and needs no root) when everything is installed already. Otherwise
# runs, as root (directly or through sudo), `apt-get update` and `apt-get install -y` for the
# missing packages only. It never starts a MariaDB or PostgreSQL service: Debian's mariadb-server
# and postgresql postinsts would, so a policy-rc.d that denies service starts (exit 101) is in
# place during the install (and removed afterwards only if this script created it). The tests
# start their own throwaway servers (scripts/mariadb.sh, scripts/postgres.sh) instead.
set -euo pipefail

packages=(
    cmake ninja-build g++ clang clang-format clang-tidy make pkg-config
    # LLVM's linker: scripts/test.sh links its test trees with it (a third of GNU ld's CPU).
    lld
    libc++-14-dev libc++abi-14-dev
    catch2
    doxygen
    libmariadb-dev libmariadb-dev-compat mariadb-server openssl
    libpq-dev postgresql pgbouncer
    galera-4 rsync
    gnuplot-nox valgrind
    # bench/: the peer pools compared with dbpool (soci's needs Boost's headers for its
    # sessions, which Debian's libsoci-dev does not pull in).
    libsoci-dev libboost-dev libmysql++-dev
    # PersistentPool keyed by Boost.Fiber fibers: its test and example; keyed by Boost.Asio
    # coroutines: its example, which needs only Boost's headers (libboost-dev, above). Optional:
    # CMake builds them where it finds Boost.
    libboost-fiber-dev
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages are installed"
    exit 0
fi
echo "install-deps: missing: ${missing[*]}"

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-deps: run as root (or install sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

# invoke-rc.d consults /usr/sbin/policy-rc.d before starting a service; exit 101 means
# "action forbidden". An existing policy that already forbids is kept; one that allows is put
# aside for the install and restored afterwards. (DBPOOL_POLICY_RC_D only exists to test this.)
policy=${DBPOOL_POLICY_RC_D:-/usr/sbin/policy-rc.d}
created_policy=0
saved_policy=""
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        "${as_root[@]}" rm -f "$policy"
        if [ -n "$saved_policy" ]; then
            "${as_root[@]}" mv "$saved_policy" "$policy"
        fi
    fi
}
trap cleanup EXIT
existing_denies=0
if [ -e "$policy" ]; then
    policy_status=0
    "$policy" mariadb start >/dev/null 2>&1 || policy_status=$?
    if [ "$policy_status" -eq 101 ]; then existing_denies=1; fi
fi
if [ "$existing_denies" -eq 0 ]; then
    if [ -e "$policy" ]; then
        saved_policy="$policy.dbpool-saved"
        "${as_root[@]}" mv "$policy" "$saved_policy"
    fi
    printf '#!/bin/sh\n# Written by dbpool scripts/install-deps.sh: no service starts.\nexit 101\n' |
        "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
