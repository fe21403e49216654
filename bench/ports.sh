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

free_port() { # a port nothing listens on, in 20000–59999
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
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
