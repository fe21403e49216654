#!/usr/bin/env bash
# make bench-scale: what `loadtape replay` (the real binary) holds at scale,
# measured on this machine:
#   users:   USERS closed-model users (100,000) thinking THINK (2s–5s)
#            against one nginx on 127.0.0.1, started over RAMP, for DURATION;
#   streams: STREAMS closed users (10,000) each holding an SSE chat stream
#            (bench/replaysse serve: STREAM_CHUNKS events STREAM_EVERY apart)
#            open at once, every stream's events timed.
# Prints, per part, the replay's peak RSS (/usr/bin/time -v), the requests
# it completed, the load average, and for streams the most streams the
# server held open at once and how many completed rows carry one chunk
# offset per event (bench/replaysse check); exits 1 when any lacks them.
#
# The users part loads both cores for DURATION; announce it where others
# share the machine. Every process runs under `timeout`; all traffic goes
# to 127.0.0.1.
#
# Environment: LOADTAPE (bin/loadtape), PARTS ("users streams"), USERS,
# THINK (min,max: 2s,5s), RAMP (20s), DURATION (60s, ramp included),
# STREAMS, STREAM_CHUNKS (20), STREAM_EVERY (500ms), STREAM_DURATION (40s),
# NGINX_WORKERS (1), OUT (out/bench-scale).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

LOADTAPE=${LOADTAPE:-bin/loadtape}
PARTS=${PARTS:-users streams}
USERS=${USERS:-100000}
THINK=${THINK:-2s,5s}
RAMP=${RAMP:-20s}
DURATION=${DURATION:-60s}
STREAMS=${STREAMS:-10000}
STREAM_CHUNKS=${STREAM_CHUNKS:-20}
STREAM_EVERY=${STREAM_EVERY:-500ms}
STREAM_DURATION=${STREAM_DURATION:-40s}
NGINX_WORKERS=${NGINX_WORKERS:-1}
OUT=${OUT:-out/bench-scale}

say() { echo "bench-scale: $*" >&2; }
die() { say "$*"; exit 1; }
bad() { say "$*"; exit 2; } # bad input, before anything is started

secs_of() { # secs_of NAME VALUE: whole seconds of VALUE (e.g. 60s)
	[[ $2 =~ ^([0-9]+)s$ ]] || bad "$1=$2: expected whole seconds such as 60s"
	echo "${BASH_REMATCH[1]}"
}
for p in $PARTS; do
	[[ $p == users || $p == streams ]] || bad "PARTS=$PARTS: expected users and/or streams"
done
[[ $USERS =~ ^[0-9]+$ && $USERS -ge 1 && $USERS -le 1000000 ]] || bad "USERS=$USERS: expected 1 to 1000000"
[[ $STREAMS =~ ^[0-9]+$ && $STREAMS -ge 1 && $STREAMS -le 100000 ]] || bad "STREAMS=$STREAMS: expected 1 to 100000"
[[ $STREAM_CHUNKS =~ ^[0-9]+$ && $STREAM_CHUNKS -ge 1 && $STREAM_CHUNKS -le 10000 ]] || bad "STREAM_CHUNKS=$STREAM_CHUNKS: expected 1 to 10000"
[[ $STREAM_EVERY =~ ^[0-9]+(ms|s)$ ]] || bad "STREAM_EVERY=$STREAM_EVERY: expected a duration such as 500ms"
[[ $THINK =~ ^([0-9.]+(ms|s)),([0-9.]+(ms|s))$ ]] || bad "THINK=$THINK: expected min,max such as 2s,5s"
think_min=${BASH_REMATCH[1]} think_max=${BASH_REMATCH[3]}
[[ $NGINX_WORKERS =~ ^[0-9]+$ && $NGINX_WORKERS -ge 1 && $NGINX_WORKERS -le 64 ]] || bad "NGINX_WORKERS=$NGINX_WORKERS: expected 1 to 64"
ramp=$(secs_of RAMP "$RAMP")
dur=$(secs_of DURATION "$DURATION")
sdur=$(secs_of STREAM_DURATION "$STREAM_DURATION")
[[ $dur -ge 1 && $dur -le 600 && $ramp -le $dur ]] || bad "DURATION=$DURATION RAMP=$RAMP: expected RAMP <= DURATION <= 600s"
[[ $sdur -ge 1 && $sdur -le 600 ]] || bad "STREAM_DURATION=$STREAM_DURATION: expected 1s to 600s"
[[ -x $LOADTAPE ]] || die "$LOADTAPE not found: run make build first (make bench-scale does)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time, Debian's 'time' package) is needed for the peak RSS"
command -v jq >/dev/null 2>&1 || die "jq is needed to read run.json"
command -v curl >/dev/null 2>&1 || die "curl is needed to record the captures"

# Descriptors: nginx, the SSE server and replay each want about one per
# connection; raise the soft limit to the hard one (which only a process
# with CAP_SYS_RESOURCE can raise further).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open files limit $(ulimit -n) (hard $(ulimit -Hn))"

. "$root/bench/ports.sh"
scratch

rm -rf "$OUT"
mkdir -p "$OUT"

# record NAME URL PATH [curl args...]: a capture of one request through
# loadtape's own proxy, in $OUT/NAME-capture.
record() {
	local name=$1 url=$2 path=$3
	shift 3
	local pport recpid
	pport=$(free_port) || die "no free port on 127.0.0.1"
	"$LOADTAPE" record --route "bench@127.0.0.1:$pport=$url" --out "$OUT/$name-capture" >"$OUT/$name-record.log" 2>&1 &
	recpid=$!
	pids+=("$recpid")
	wait_port "$pport" "$recpid" || die "loadtape record did not start: $(tail -3 "$OUT/$name-record.log")"
	curl -fsS --max-time 30 "$@" "http://127.0.0.1:$pport$path" >/dev/null
	kill -INT "$recpid"
	timeout 15 tail --pid="$recpid" -f /dev/null || die "loadtape record did not stop"
	wait "$recpid" || die "loadtape record failed: $(tail -3 "$OUT/$name-record.log")"
}

# replay NAME PROFILE TARGET LIMIT: runs loadtape replay under GNU time;
# prints "PEAK_KIB REQUESTS ERRORS LOAD_BEFORE LOAD_MAX".
replay() {
	local name=$1 url=$3 limit=$4
	local load0 loadmax
	load0=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/time -v -o "$OUT/$name.time" timeout "$((limit + 60))" "$LOADTAPE" replay --captures "$OUT/$name-capture" \
		--profile "$OUT/$2" --target "bench=$url" --out "$OUT/$name" --max-run "${limit}s" >"$OUT/$name.log" 2>&1 &
	local tpid=$!
	loadmax=$load0
	while kill -0 "$tpid" 2>/dev/null; do
		loadmax=$(awk -v a="$loadmax" -v b="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { print (b > a ? b : a) }')
		sleep 2
	done
	wait "$tpid" || say "$name: loadtape replay exited non-zero (see $OUT/$name.log)"
	local peak
	peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.time")
	[[ -f $OUT/$name/run.json ]] || die "$name: no run.json (see $OUT/$name.log)"
	echo "$peak $(jq -r '"\(.requests) \(.errors)"' "$OUT/$name/run.json") $load0 $loadmax"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
num() { printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

echo
echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
	"$(date -u '+%Y-%m-%d %H:%M UTC'); $("$LOADTAPE" version 2>/dev/null | head -1); open files limit $(ulimit -n)"

sse=$tmp/replaysse
CGO_ENABLED=0 go build -o "$sse" ./bench/replaysse || die "bench/replaysse did not build"

# --- users: closed users that think, against nginx --------------------------

if [[ " $PARTS " == *" users "* ]]; then
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	[[ -x $NGINX ]] || die "nginx is needed as the target (make bench-peers installs it)"
	mkdir -p "$tmp/nginx"
	port=$(free_port) || die "no free port on 127.0.0.1"
	cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $(ulimit -n);
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections $(( $(ulimit -n) - 64 )); }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
EOF
	"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	ngpid=$!
	wait_port "$port" "$ngpid" || die "nginx did not start: $(tail -3 "$tmp/nginx/error.log" 2>/dev/null)"
	pids+=("$ngpid")
	record users "http://127.0.0.1:$port/" /
	cat >"$OUT/users.yaml" <<EOF
scenarios:
  bench:
    service: bench
    mode: closed
    stages: [{users: $USERS, duration: ${dur}s}]
    spawn_rate: $(( (USERS + ramp - 1) / (ramp > 0 ? ramp : 1) ))
    think: {uniform: [$think_min, $think_max]}
    mix: {"GET /": 1}
EOF
	say "users: $USERS closed users thinking $think_min–$think_max, started over $RAMP, ${dur}s"
	read -r peak reqs errs l0 lmax < <(replay users users.yaml "http://127.0.0.1:$port/" "$((dur + 30))")
	[[ -n $peak ]] || die "users: the replay failed (see $OUT/users.log)"
	rows=$("$sse" check -chunks 0 "$OUT/users" 2>&1 || true)
	echo
	echo "users: $(num "$USERS") closed users thinking $think_min–$think_max (started over $RAMP, ${dur}s) against nginx on 127.0.0.1:" \
		"peak RSS $(mib "$peak") MiB ($(awk -v k="$peak" -v u="$USERS" 'BEGIN { printf "%.1f", k / u }') KiB per user)," \
		"$(num "$reqs") requests ($(num "$((reqs / dur))") req/s), $errs errors; rows: $rows; load average $l0 before, up to $lmax"
	kill "$ngpid" 2>/dev/null || true
fi

# --- streams: SSE chat streams held open at once -----------------------------

if [[ " $PARTS " == *" streams "* ]]; then
	mkfifo "$tmp/sse-in"
	"$sse" serve -chunks "$STREAM_CHUNKS" -every "$STREAM_EVERY" -stats "$OUT/sse-most" <"$tmp/sse-in" >"$OUT/sse-addr" 2>"$OUT/sse.log" &
	ssepid=$!
	pids+=("$ssepid")
	exec 4>"$tmp/sse-in" # the server exits when this closes
	for i in $(seq 1 50); do [[ -s $OUT/sse-addr ]] && break; sleep 0.1; done
	saddr=$(head -1 "$OUT/sse-addr")
	[[ -n $saddr ]] || die "bench/replaysse did not start: $(tail -3 "$OUT/sse.log")"
	record streams "http://$saddr" /v1/chat/completions -H 'Content-Type: application/json' \
		-d '{"model":"bench","stream":true,"messages":[{"role":"user","content":"hello"}]}'
	op=$("$LOADTAPE" inspect --json "$OUT/streams-capture" 2>/dev/null | jq -r '[.. | objects | select(has("operation")) | .operation][0] // empty' || true)
	op=${op:-chat.completions}
	# A stream lasts about STREAM_CHUNKS × STREAM_EVERY; users that think
	# 100 ms between streams hold one open nearly all the time.
	cat >"$OUT/streams.yaml" <<EOF
scenarios:
  bench:
    service: bench
    mode: closed
    stages: [{users: $STREAMS, duration: ${sdur}s}]
    spawn_rate: $(( STREAMS / 5 + 1 ))
    think: {constant: 100ms}
    mix: {"$op": 1}
EOF
	say "streams: $STREAMS users streaming $op ($STREAM_CHUNKS events $STREAM_EVERY apart), ${sdur}s"
	read -r peak reqs errs l0 lmax < <(replay streams streams.yaml "http://$saddr" "$((sdur + 30))")
	[[ -n $peak ]] || die "streams: the replay failed (see $OUT/streams.log)"
	exec 4>&- # the server writes its figure and exits
	timeout 10 tail --pid="$ssepid" -f /dev/null || true
	most=$(cat "$OUT/sse-most" 2>/dev/null || echo "?")
	chk=$("$sse" check -chunks "$STREAM_CHUNKS" "$OUT/streams" 2>&1) && ok=1 || ok=
	echo
	echo "streams: $(num "$STREAMS") users streaming SSE ($STREAM_CHUNKS events $STREAM_EVERY apart, ${sdur}s), at most $most streams open at once:" \
		"peak RSS $(mib "$peak") MiB, $(num "$reqs") streams, $errs errors; rows: $chk;" \
		"load average $l0 before, up to $lmax"
	[[ -n $ok ]] || die "streams: completed rows without their chunk offsets (see $OUT/streams)"
fi
