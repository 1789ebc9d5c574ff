# shellcheck shell=bash
# TCP ports on 127.0.0.1 for dbpool's throwaway servers. Sourced by scripts/mariadb.sh,
# scripts/postgres.sh and scripts/cluster-lib.sh, never run; the caller defines die().
#
# A server binds its port seconds after the port was chosen (mariadb-install-db and initdb run
# first; a Galera node waits for the bootstrap). Two things can take the port meanwhile:
#   - An outgoing connection. Asking the kernel for a free port (bind to port 0) returns one
#     from ip_local_port_range, the range every connect() takes its local port from, and the
#     test suite makes thousands of loopback connections while its servers start. In CI one of
#     them took a Galera node's group-communication port: "bind: Address already in use".
#   - Another test bed, started at the same moment, that chose the same port.
# So ports are chosen below ip_local_port_range, where only an explicit bind lands, and each one
# is reserved by a symbolic link PORT_RESERVATIONS/PORT -> the test bed's directory. symlink(2)
# either creates the link or fails, so two test beds never reserve one port. A reservation ends
# with release_ports, or when the test bed's directory is gone (the link dangles).

readonly PORT_RESERVATIONS=${DBPOOL_PORT_RESERVATIONS:-${TMPDIR:-/tmp}/dbpool-ports}
readonly PORT_ATTEMPTS=4000

# "LOW HIGH": the ports to choose from. Below the ephemeral range when there is room for it.
port_range() {
    local ephemeral_low=32768 _
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range
    fi
    if ((ephemeral_low > 12000)); then
        echo "10000 $((ephemeral_low - 1))"
    else
        echo "10000 60999"
    fi
}

# The local ports of all TCP sockets (listening, connected, in TIME_WAIT), in hex, one a line.
# Read once per choice: with tens of thousands of sockets open, reading /proc/net/tcp costs
# milliseconds.
ports_in_use() {
    awk 'FNR > 1 { split($2, address, ":"); print address[2] }' /proc/net/tcp /proc/net/tcp6 \
        2>/dev/null | sort -u
}

# Reserves PORT for directory OWNER; fails when another test bed holds it.
reserve_port() {
    local port=$1 owner=$2 link="$PORT_RESERVATIONS/$1"
    # -T: an existing link to a directory is a reservation, not a directory to create the
    # link in.
    ln -sT "$owner" "$link" 2>/dev/null && return 0
    # A dangling link: its test bed is gone, the port is free again.
    if [[ -L $link && ! -e $link ]]; then
        rm -f "$link"
        ln -sT "$owner" "$link" 2>/dev/null && return 0
    fi
    return 1
}

# Prints COUNT distinct ports, one a line, that no socket uses and that are now reserved for
# directory OWNER (absolute).
free_ports() {
    local count=$1 owner=$2 low high
    read -r low high < <(port_range)
    if [[ ! -d $PORT_RESERVATIONS ]]; then
        mkdir -p "$PORT_RESERVATIONS"
        chmod 1777 "$PORT_RESERVATIONS" 2>/dev/null || true
    fi
    local -A in_use=()
    local hex
    while read -r hex; do in_use[$((16#$hex))]=1; done < <(ports_in_use)
    local -a ports=()
    local port _
    for _ in $(seq 1 "$PORT_ATTEMPTS"); do
        ((${#ports[@]} < count)) || break
        port=$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))
        if [[ -z ${in_use[$port]:-} ]] && reserve_port "$port" "$owner"; then
            ports+=("$port")
        fi
    done
    ((${#ports[@]} == count)) || die "found only ${#ports[@]} of $count free ports in $low-$high"
    printf '%s\n' "${ports[@]}"
}

# Ends the reservations of directory OWNER (relative or absolute; it must still exist).
release_ports() {
    [[ -d $PORT_RESERVATIONS ]] || return 0
    local owner
    owner=$(cd "$1" && pwd) || return 0
    find "$PORT_RESERVATIONS" -maxdepth 1 -type l -lname "$owner" -delete
}
