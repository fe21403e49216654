# Port helpers the bench scripts source: everything they start listens on
# 127.0.0.1 only.

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
