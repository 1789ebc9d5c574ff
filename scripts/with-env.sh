#!/usr/bin/env bash
# Runs a command with a throwaway server's variables exported:
#
#   scripts/with-env.sh DIR/env COMMAND [ARGS...]
#
# scripts/mariadb.sh and scripts/postgres.sh write DIR/env (DBPOOL_TEST_URL, DBPOOL_PG_URL, ...);
# the examples and the README's programs read those variables. The tests use this to run them.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 DIR/env COMMAND [ARGS...]" >&2
    exit 2
fi
env_file=$1
shift
if [[ ! -r $env_file ]]; then
    echo "with-env.sh: cannot read $env_file (was the server started?)" >&2
    exit 2
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
exec "$@"
