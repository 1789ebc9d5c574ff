#!/usr/bin/env bash
# Checks scripts/ports-lib.sh, the port picker of the throwaway servers: ports below the
# ephemeral range, never the same port for two test beds that choose at the same moment, a port
# free again once its test bed's directory is gone, release_ports ending only its owner's.
# Uses its own reservation directory; touches no server.
set -euo pipefail

die() {
    echo "ports_test: $*" >&2
    exit 1
}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export DBPOOL_PORT_RESERVATIONS=$scratch/reservations
# shellcheck source=scripts/ports-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/ports-lib.sh"

read -r low high < <(port_range)
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range
((high < ephemeral_low)) || die "range $low-$high reaches the ephemeral range from $ephemeral_low"

# Two test beds choose 200 ports each at the same moment. Without the reservations, two random
# choices of 200 from about 22,000 ports share one with a probability of about 83%.
mkdir -p "$scratch/a" "$scratch/b"
free_ports 200 "$scratch/a" >"$scratch/a.ports" &
free_ports 200 "$scratch/b" >"$scratch/b.ports" &
wait
[[ $(wc -l <"$scratch/a.ports") -eq 200 && $(wc -l <"$scratch/b.ports") -eq 200 ]] ||
    die "a test bed got fewer than 200 ports"
shared=$(sort "$scratch/a.ports" "$scratch/b.ports" | uniq -d | wc -l)
((shared == 0)) || die "$shared ports were given to both test beds"
while read -r port; do
    ((port >= low && port <= high)) || die "port $port is outside $low-$high"
done <"$scratch/a.ports"
reserved_a=$(find "$DBPOOL_PORT_RESERVATIONS" -lname "$scratch/a" | wc -l)
((reserved_a == 200)) || die "$reserved_a of a's 200 ports are reserved for it"

# A reserved port is refused to another test bed while its own directory exists...
port=$(head -n 1 "$scratch/a.ports")
if reserve_port "$port" "$scratch/b"; then die "port $port was reserved twice"; fi
# ...and free once that directory is gone (a test bed that crashed before its stop).
mkdir -p "$scratch/c"
other=$(free_ports 1 "$scratch/c")
rmdir "$scratch/c"
reserve_port "$other" "$scratch/b" || die "port $other of a removed test bed stayed reserved"

# release_ports ends a's reservations and no one else's.
release_ports "$scratch/a"
left_a=$(find "$DBPOOL_PORT_RESERVATIONS" -lname "$scratch/a" | wc -l)
left_b=$(find "$DBPOOL_PORT_RESERVATIONS" -lname "$scratch/b" | wc -l)
((left_a == 0)) || die "$left_a of a's reservations survived release_ports"
((left_b == 201)) || die "b holds $left_b reservations, expected 201"
echo "ports_test: 400 ports for two test beds at once, none shared, all in $low-$high"
