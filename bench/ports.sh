# Helpers the bench scripts that start servers source: everything they
# start listens on 127.0.0.1 only, and is stopped when the script exits.

scratch() { # a temp dir in $tmp and a list $pids of started processes, both cleaned up on exit
	tmp=$(mktemp -d)
	pids=()
	trap cleanup EXIT
}

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}

answers() { # answers PORT: true when something accepts on 127.0.0.1:PORT
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: a port nothing listens on, below the kernel's ephemeral range
# (ip_local_port_range, 32768 and up by default): a port in that range can
# be held by a connection in TIME_WAIT, which no listener sees but which
# makes bind fail, as it did for a server started right after 100,000
# users' connections closed.
free_port() {
	local p i lo=32768 span
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	span=$((lo > 20000 ? lo - 20000 : 0))
	for i in $(seq 1 50); do
		if ((span >= 1000)); then
			p=$((20000 + (RANDOM * 32768 + RANDOM) % span))
		else
			p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		fi
		answers "$p" || { echo "$p"; return 0; }
	done
	return 1
}

wait_port() { # wait_port PORT PID: up to 5 s for PORT to answer while PID lives
	local i
	for i in $(seq 1 50); do
		answers "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
