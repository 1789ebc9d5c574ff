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

# True when some TCP socket (listening, connected or in TIME_WAIT) has local port PORT.
port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    grep -qs "^ *[0-9]*: [0-9A-F]*:$hex " /proc/net/tcp /proc/net/tcp6
}

# Reserves PORT for directory OWNER; fails when another test bed holds it.
reserve_port() {
    local port=$1 owner=$2 link="$PORT_RESERVATIONS/$1"
    ln -s "$owner" "$link" 2>/dev/null && return 0
    # A dangling link: its test bed is gone, the port is free again.
    if [[ -L $link && ! -e $link ]]; then
        rm -f "$link"
        ln -s "$owner" "$link" 2>/dev/null && return 0
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
    local -a ports=()
    local port _
    for _ in $(seq 1 "$PORT_ATTEMPTS"); do
        ((${#ports[@]} < count)) || break
        port=$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))
        if ! port_in_use "$port" && reserve_port "$port" "$owner"; then
            ports+=("$port")
        fi
    done
    ((${#ports[@]} == count)) || die "found only ${#ports[@]} of $count free ports in $low-$high"
    printf '%s\n' "${ports[@]}"
}

# Ends the reservations of directory OWNER.
release_ports() {
    local owner=$1 link
    [[ -d $PORT_RESERVATIONS ]] || return 0
    for link in "$PORT_RESERVATIONS"/*; do
        [[ -L $link && $(readlink "$link") == "$owner" ]] && rm -f "$link"
    done
    return 0
}
