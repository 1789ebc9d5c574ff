#!/usr/bin/env bash
# Builds dbpool's API reference from the `///` comments of the public headers:
#
#   scripts/docs.sh        -> build/api/html/index.html
#
# Doxygen (Debian's doxygen; scripts/install-deps.sh installs it) runs with the repository's
# Doxyfile, with PROJECT_NUMBER taken from include/dbpool/version.hpp. Any warning (a public
# entity without a comment, a broken reference in one) fails it: exit status 1, the warnings
# listed. scripts/test.sh runs it as one check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v doxygen >/dev/null; then
    echo "docs.sh: doxygen is missing (scripts/install-deps.sh installs it)" >&2
    exit 1
fi
version=$(sed -n 's/^#define DBPOOL_VERSION_STRING "\(.*\)"$/\1/p' include/dbpool/version.hpp)
if [[ -z $version ]]; then
    echo "docs.sh: no DBPOOL_VERSION_STRING in include/dbpool/version.hpp" >&2
    exit 1
fi
rm -rf build/api
mkdir -p build/api
log=build/api/warnings.log
status=0
{ cat Doxyfile; echo "PROJECT_NUMBER = $version"; } | doxygen - >"$log" 2>&1 || status=$?
if [[ $status -ne 0 ]] || grep -q . "$log"; then
    sed "s|^$(pwd)/||" "$log"
    echo "docs.sh: doxygen $(doxygen --version) failed: every warning above is an error"
    exit 1
fi
echo "docs.sh: API reference of dbpool $version in build/api/html/index.html"
