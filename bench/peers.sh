#!/usr/bin/env bash
# make bench-peers: loadtape replay beside hey, vegeta and wrk against one
# nginx on 127.0.0.1, in one run on this machine, and loadtape's send lag at
# 5,000 req/s. Prints a Markdown table of requests per second at 50
# connections, each ratio loadtape ÷ peer side by side per round, and each
# tool's CPU time per request.
#
# Installs what is missing: hey and vegeta with `go install` into bin/peers,
# wrk, nginx and jq from Debian's packages (apt-get, as root or through sudo).
# A peer that cannot be installed is named and left out; nginx, jq and
# loadtape itself are needed.
#
# Environment: LOADTAPE (default bin/loadtape), DURATION per tool (10s),
# ROUNDS (2: every tool once per round, in turn), CONNS (50), LAG_RATE
# (5000), NGINX_WORKERS (1), OUT (out/bench-peers: the runs and analyses).
# Every tool runs under `timeout`; all traffic goes to 127.0.0.1.
set -euo pipefail
export LC_ALL=C # awk and printf read and write numbers with a dot

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

LOADTAPE=${LOADTAPE:-bin/loadtape}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50}
LAG_RATE=${LAG_RATE:-5000}
NGINX_WORKERS=${NGINX_WORKERS:-1}
OUT=${OUT:-out/bench-peers}
HEY_VERSION=${HEY_VERSION:-v0.1.4}
VEGETA_VERSION=${VEGETA_VERSION:-v12.13.0}
PEERS_BIN=$root/bin/peers

say() { echo "bench-peers: $*" >&2; }
die() { say "$*"; exit 1; }
bad() { say "$*"; exit 2; } # bad input, before anything is installed or sent

case $DURATION in
*[0-9]s) secs=${DURATION%s} ;;
*) bad "DURATION=$DURATION: expected whole seconds such as 10s" ;;
esac
[[ $secs =~ ^[0-9]+$ && $secs -ge 1 && $secs -le 60 ]] || bad "DURATION=$DURATION: expected 1s to 60s"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 5 ]] || bad "ROUNDS=$ROUNDS: expected 1 to 5"
[[ $CONNS =~ ^[0-9]+$ && $CONNS -ge 1 && $CONNS -le 1000 ]] || bad "CONNS=$CONNS: expected 1 to 1000"
[[ $LAG_RATE =~ ^[0-9]+$ && $LAG_RATE -ge 1 && $LAG_RATE -le 100000 ]] || bad "LAG_RATE=$LAG_RATE: expected 1 to 100000 (req/s)"
[[ $NGINX_WORKERS =~ ^[0-9]+$ && $NGINX_WORKERS -ge 1 && $NGINX_WORKERS -le 64 ]] || bad "NGINX_WORKERS=$NGINX_WORKERS: expected 1 to 64"
limit=$((secs + 30)) # what one tool may take before `timeout` ends it

[[ -x $LOADTAPE ]] || die "$LOADTAPE not found: run make build first (make bench-peers does)"

# --- installs -----------------------------------------------------------

apt_updated=
apt_install() { # apt_install PACKAGE...: true when installed
	local sudo=
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || return 1
		sudo="sudo -n"
	fi
	command -v apt-get >/dev/null 2>&1 || return 1
	if [[ -z $apt_updated ]]; then
		say "apt-get update"
		$sudo apt-get update -qq >&2 || return 1
		apt_updated=1
	fi
	say "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

command -v jq >/dev/null 2>&1 || apt_install jq || true
command -v jq >/dev/null 2>&1 || die "jq is needed to read loadtape's summary.json and could not be installed"
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
	apt_install nginx-light || apt_install nginx || true
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx is needed as the target and could not be installed"
command -v wrk >/dev/null 2>&1 || apt_install wrk || true

mkdir -p "$PEERS_BIN"
go_tool() { # go_tool NAME MODULE@VERSION
	[[ -x $PEERS_BIN/$1 && -f $PEERS_BIN/$1.version && $(cat "$PEERS_BIN/$1.version") == "$2" ]] && return 0
	say "go install $2"
	if GOBIN=$PEERS_BIN timeout 600 go install "$2" >&2; then
		echo "$2" >"$PEERS_BIN/$1.version"
	else
		rm -f "$PEERS_BIN/$1"
		return 1
	fi
}
go_tool hey "github.com/rakyll/hey@$HEY_VERSION" || say "hey could not be installed; left out"
go_tool vegeta "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" || say "vegeta could not be installed; left out"

# --- nginx and a capture --------------------------------------------------

. "$root/bench/ports.sh"
scratch

mkdir -p "$tmp/nginx"
nginx_up=
for try in 1 2 3 4 5; do
	port=$(free_port) || die "no free port on 127.0.0.1"
	cat >"$tmp/nginx/nginx.conf" <<EOF
# loadtape bench-peers: a tiny static answer on 127.0.0.1 only.
worker_processes $NGINX_WORKERS;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
EOF
	"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	ngpid=$!
	if wait_port "$port" "$ngpid"; then
		pids+=("$ngpid")
		nginx_up=1
		break
	fi
	kill "$ngpid" 2>/dev/null || true
	wait "$ngpid" 2>/dev/null || true
done
[[ -n $nginx_up ]] || die "nginx did not start: $(tail -3 "$tmp/nginx/error.log" 2>/dev/null)"
url=http://127.0.0.1:$port/
nginx_version=$("$NGINX" -v 2>&1 | sed 's|.*/||')
say "nginx $nginx_version ($NGINX_WORKERS worker) at $url"

# The capture: three requests recorded through loadtape's own proxy.
rm -rf "$OUT"
mkdir -p "$OUT"
pport=$(free_port) || die "no free port on 127.0.0.1"
"$LOADTAPE" record --route "bench@127.0.0.1:$pport=$url" --out "$OUT/capture" >"$OUT/record.log" 2>&1 &
recpid=$!
pids+=("$recpid")
wait_port "$pport" "$recpid" || die "loadtape record did not start: $(tail -3 "$OUT/record.log")"
for i in 1 2 3; do
	if command -v curl >/dev/null 2>&1; then
		curl -fsS --max-time 5 "http://127.0.0.1:$pport/" >/dev/null
	else
		timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$pport; printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3; cat <&3 >/dev/null"
	fi
done
kill -INT "$recpid"
timeout 15 tail --pid="$recpid" -f /dev/null || die "loadtape record did not stop"
wait "$recpid" || die "loadtape record failed: $(tail -3 "$OUT/record.log")"

cat >"$OUT/closed.yaml" <<EOF
scenarios:
  bench:
    service: bench
    mode: closed
    stages: [{users: $CONNS, duration: $DURATION}]
    spawn_rate: 0
    mix: {"GET /": 1}
EOF
cat >"$OUT/lag.yaml" <<EOF
scenarios:
  bench:
    service: bench
    mode: open
    arrivals: poisson
    workers: 32
    stages: [{rate: $LAG_RATE, duration: $DURATION}]
    mix: {"GET /": 1}
EOF

# --- the tools ------------------------------------------------------------

# Each prints requests per second, or nothing when the tool failed, and
# leaves in $OUT/NAME.cpu the CPU time the tool took (user and system, its
# children included) and the requests it made, for CPU per request: a
# figure the machine's other load disturbs less than requests per second.
timed() { # timed NAME CMD...: runs CMD; $OUT/NAME.times gets its CPU seconds
	local name=$1
	shift
	(
		"$@" || exit $?
		times >"$OUT/$name.times" # not in a pipe: its subshell would have no children
	) || return $?
	awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } print s }' \
		"$OUT/$name.times" >"$OUT/$name.times.s" && mv "$OUT/$name.times.s" "$OUT/$name.times"
}
cpu_note() { # cpu_note NAME REQUESTS
	[[ -s $OUT/$1.times && -n $2 && $2 -gt 0 ]] && echo "$(cat "$OUT/$1.times") $2" >"$OUT/$1.cpu"
	return 0
}
run_loadtape() { # run_loadtape PROFILE NAME
	timed "$2" timeout "$limit" "$LOADTAPE" replay --captures "$OUT/capture" --profile "$OUT/$1" \
		--target "bench=$url" --out "$OUT/$2" --max-run "$((secs + 20))s" >"$OUT/$2.log" 2>&1 || return 0
	cpu_note "$2" "$(jq -r '.requests // empty' "$OUT/$2/run.json" 2>/dev/null)"
	timeout 60 "$LOADTAPE" analyze "$OUT/$2" --out "$OUT/$2-analysis" >"$OUT/$2-analysis.log" 2>&1 || true
	jq -r '.stages[0].operations.all.rps // empty' "$OUT/$2-analysis/summary.json" 2>/dev/null || true
}
run_hey() {
	timed "$1" timeout "$limit" "$PEERS_BIN/hey" -z "$DURATION" -c "$CONNS" "$url" >"$OUT/$1.log" 2>&1 || return 0
	cpu_note "$1" "$(awk '/^ *\[[0-9]+\][ \t]+[0-9]+ responses/ {n += $2} END {print n + 0}' "$OUT/$1.log")"
	awk '/Requests\/sec:/ {print $2}' "$OUT/$1.log"
}
run_vegeta() {
	echo "GET $url" | timed "$1" timeout "$limit" "$PEERS_BIN/vegeta" attack -rate=0 -max-workers="$CONNS" -workers="$CONNS" \
		-duration="$DURATION" >"$OUT/$1.bin" 2>"$OUT/$1.err" || return 0
	"$PEERS_BIN/vegeta" report <"$OUT/$1.bin" >"$OUT/$1.log" 2>&1 || return 0
	rm -f "$OUT/$1.bin"
	cpu_note "$1" "$(awk '/^Requests/ {gsub(",", ""); print $(NF - 2)}' "$OUT/$1.log")"
	# "Requests [total, rate, throughput]  N, R, T": T counts successes.
	awk '/^Requests/ {gsub(",", ""); print $NF}' "$OUT/$1.log"
}
run_wrk() {
	timed "$1" timeout "$limit" wrk -t2 -c"$CONNS" -d"$DURATION" "$url" >"$OUT/$1.log" 2>&1 || return 0
	cpu_note "$1" "$(awk '/ requests in / {print $1}' "$OUT/$1.log")"
	awk '/^Requests\/sec:/ {print $2}' "$OUT/$1.log"
}

tools=(loadtape)
[[ -x $PEERS_BIN/hey ]] && tools+=(hey)
[[ -x $PEERS_BIN/vegeta ]] && tools+=(vegeta)
command -v wrk >/dev/null 2>&1 && tools+=(wrk) || say "wrk could not be installed; left out"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A rps cpu
for r in $(seq 1 "$ROUNDS"); do
	for t in "${tools[@]}"; do
		say "round $r/$ROUNDS: $t, $CONNS connections, $DURATION"
		case $t in
		loadtape) name=closed-$r v=$(run_loadtape closed.yaml "closed-$r") ;;
		hey) name=hey-$r v=$(run_hey "hey-$r") ;;
		vegeta) name=vegeta-$r v=$(run_vegeta "vegeta-$r") ;;
		wrk) name=wrk-$r v=$(run_wrk "wrk-$r") ;;
		esac
		rps[$t,$r]=${v:-}
		cpu[$t,$r]=$( [[ -s $OUT/$name.cpu ]] && awk '{ printf "%.1f", $1 * 1e6 / $2 }' "$OUT/$name.cpu" || true)
		[[ -n $v ]] || say "$t failed in round $r (see $OUT/)"
		sleep 1
	done
done
say "send lag: loadtape open mode, Poisson, $LAG_RATE req/s, $DURATION"
lagrps=$(run_loadtape lag.yaml lag)
lag() { jq -r ".stages[0].operations.all.send_lag_ms.$1 // empty" "$OUT/lag-analysis/summary.json" 2>/dev/null || true; }
lag99=$(lag p99)
lag50=$(lag p50)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table ------------------------------------------------------------

num() { # 31234.5 → 31,235
	[[ -n $1 ]] || { printf 'failed'; return; }
	printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || printf '–'; }
joined() { local IFS=/; echo "$*"; }

declare -A label=(
	[loadtape]="loadtape replay: closed, $CONNS users, no think, a result row per request"
	[hey]="hey $HEY_VERSION: -z $DURATION -c $CONNS"
	[vegeta]="vegeta $VEGETA_VERSION: attack -rate=0 -max-workers=$CONNS"
	[wrk]="wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'): -t2 -c$CONNS"
)
echo
echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average $load_before before, $load_after after;" \
	"$(date -u '+%Y-%m-%d %H:%M UTC'); nginx $nginx_version, $NGINX_WORKERS worker, on 127.0.0.1; $DURATION per tool, $ROUNDS round(s) in turn"
echo
rounds=$(joined $(seq 1 "$ROUNDS"))
echo "| tool | req/s (round $rounds) | loadtape ÷ tool | CPU µs per request (round $rounds) |"
echo "|---|---|---|---|"
for t in "${tools[@]}"; do
	vals=() ratios=() cpus=()
	for r in $(seq 1 "$ROUNDS"); do
		vals+=("$(num "${rps[$t,$r]}")")
		ratios+=("$(ratio "${rps[loadtape,$r]}" "${rps[$t,$r]}")")
		cpus+=("${cpu[$t,$r]:-–}")
	done
	if [[ $t == loadtape ]]; then
		echo "| ${label[$t]} | $(joined "${vals[@]}") | | $(joined "${cpus[@]}") |"
	else
		echo "| ${label[$t]} | $(joined "${vals[@]}") | $(joined "${ratios[@]}") | $(joined "${cpus[@]}") |"
	fi
done
for t in hey vegeta wrk; do
	[[ " ${tools[*]} " == *" $t "* ]] || echo "| $t | not installed | – | – |"
done
echo
if [[ -n $lag99 ]]; then
	echo "loadtape send lag at $LAG_RATE req/s (open, Poisson, $DURATION, analyze's window after warm-up):" \
		"p99 $lag99 ms, p50 $lag50 ms, $(num "$lagrps") req/s completed (the goal at 5,000 req/s: p99 ≤ 2 ms)"
else
	echo "loadtape send lag at $LAG_RATE req/s: the run failed (see $OUT/lag.log)"
fi
echo
echo "loadtape's figures are analyze's completed requests per second after the stage's warm-up;" \
	"the peers' are their own reports (vegeta: throughput, successes per second)." \
	"CPU per request: the tool's user + system time over the requests it made (loadtape: writing every row to Parquet included; nginx's not counted). Runs and logs: $OUT/"
