#!/usr/bin/env bash
# Compiles the MySQL backend, every MySQL example and the README's MySQL program against Oracle's
# libmysqlclient headers instead of MariaDB Connector/C's (syntax only, warnings as errors):
#
#   scripts/check-oracle-client.sh HEADERS_DIR [CXX]
#
# HEADERS_DIR/include holds Oracle's client headers (mysql.h, mysql_version.h, ...). Debian
# does not package Oracle's library, so CI cannot link or run it; this is the check that it
# still compiles. Take the headers from Oracle's public mysql/mysql-server repository (the
# files named in include/mysql.h, from include/ and include/mysql/) and generate
# mysql_version.h from include/mysql_version.h.in; never commit them. CONTRIBUTING.md says when
# to run it. CXX defaults to g++.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ $# -lt 1 || ! -f $1/include/mysql.h || ! -f $1/include/mysql_version.h ]]; then
    echo "usage: $0 HEADERS_DIR [CXX]   (HEADERS_DIR/include/mysql.h and mysql_version.h)" >&2
    exit 2
fi
headers=$(cd "$1/include" && pwd)
cxx=${2:-g++}
version=$(sed -n 's/^#define LIBMYSQL_VERSION *"\(.*\)"/\1/p' "$headers/mysql_version.h")
flags=(-std=c++17 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow -Werror
    -I"$repo/include" -I"$headers")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The umbrella header alone, and proof that these are not MariaDB's headers.
printf '%s\n' '#include <dbpool/mysql.hpp>' \
    'static_assert(!dbpool::mysql::detail::mariadb_client, "not Oracle'"'"'s headers");' \
    >"$scratch/mysql_hpp.cpp"
cmake -D README="$repo/README.md" -D INDEX=1 -D OUTPUT="$scratch/readme_mysql.cpp" \
    -P "$repo/tests/docs/extract_code_block.cmake"
sources=("$scratch/mysql_hpp.cpp" "$scratch/readme_mysql.cpp")
for example in "$repo"/examples/*.cpp; do
    if grep -q '#include <dbpool/mysql' "$example"; then sources+=("$example"); fi
done

failed=0
for source in "${sources[@]}"; do
    if "$cxx" "${flags[@]}" "$source"; then
        echo "ok      ${source#"$repo"/}" | sed "s|^\(ok *\)$scratch/|\1|"
    else
        echo "FAILED  ${source#"$repo"/}" | sed "s|^\(FAILED *\)$scratch/|\1|"
        failed=$((failed + 1))
    fi
done
echo "check-oracle-client: libmysqlclient ${version:-?} headers, $cxx: ${#sources[@]} files," \
    "$failed failed"
[[ $failed -eq 0 ]]
