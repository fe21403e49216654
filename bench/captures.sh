#!/usr/bin/env bash
# make bench-captures: how many exchanges per second the capture writer
# stores, the way the recording proxy writes them (captures'
# BenchmarkWriteRecorder: chat exchanges with 1 KiB request and response
# bodies and ten headers each way, batches of 512, the write-ahead log on,
# Close included), on all of this machine's cores. Prints one line per
# run and a Markdown table of the best and median rates, with the load
# average before and after and the machine it ran on.
#
# BASE=REV also builds the same benchmark against the writer of git
# revision REV (its captures/ package, with this tree's bench_test.go) and
# runs the two in turn, round after round, so that both figures come from
# one run on one machine under the same load. BASE=REV1,REV2 runs several.
#
# Each round's line says whether the run met GOAL exchanges/s (100000,
# the writer's target on two cores), and the table counts the rounds that
# did.
#
# Environment: ROWS per run (300000), ROUNDS (3), BASE (none), GOAL
# (100000), CPU (the
# GOMAXPROCS values to run with, comma-separated; default all cores), LOCK
# (a file to flock while the benchmarks run, not while they build, for a
# machine whose users take turns; default none).
set -euo pipefail
export LC_ALL=C
export CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ROWS=${ROWS:-300000}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-}
CPU=${CPU:-$(nproc)}
GOAL=${GOAL:-100000}

say() { echo "bench-captures: $*" >&2; }
bad() { say "$*"; exit 2; }

[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 10000 && $ROWS -le 10000000 ]] || bad "ROWS=$ROWS: expected 10000 to 10000000"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 10 ]] || bad "ROUNDS=$ROUNDS: expected 1 to 10"
[[ $GOAL =~ ^[0-9]+$ && $GOAL -ge 1 ]] || bad "GOAL=$GOAL: expected exchanges per second, a whole number"
[[ $CPU =~ ^[0-9]+(,[0-9]+)*$ ]] || bad "CPU=$CPU: expected GOMAXPROCS values such as 2 or 1,2"
bases=()
if [[ -n $BASE ]]; then
	IFS=, read -r -a bases <<<"$BASE"
	((${#bases[@]} <= 4)) || bad "BASE=$BASE: at most 4 revisions"
	for rev in "${bases[@]}"; do
		git rev-parse --verify -q "$rev^{commit}" >/dev/null || bad "BASE=$BASE: $rev is not a git revision here"
	done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "building the benchmark"
go test -c -o "$tmp/now.test" ./captures/
bins=()
declare -A names=([now]="this tree")
for i in "${!bases[@]}"; do
	rev=${bases[$i]}
	say "building it against captures/ at $rev"
	mkdir "$tmp/base$i"
	git archive "$rev" | tar -x -C "$tmp/base$i"
	cp captures/bench_test.go "$tmp/base$i/captures/bench_test.go"
	(cd "$tmp/base$i" && go test -c -o "$tmp/base$i.test" ./captures/)
	bins+=("base$i")
	names[base$i]=$rev
done
bins+=(now)

# Each run writes into its own temporary directory (b.TempDir) and
# removes it; one run takes a few seconds.
if [[ -n ${LOCK:-} ]]; then
	exec 9>>"$LOCK"
	say "waiting for $LOCK"
	flock 9
fi
# The hypervisor's steal during a round, as a share of the cores' time:
# no process's CPU time or load average shows it, and on the shared
# 2-vCPU development machine it took up to a third of a benchmark's time.
steal_ticks() { awk '/^cpu /{print $9; exit}' /proc/stat; }
steal_pct() { # steal_pct TICKS0 WALL0 (date +%s%N)
	awk -v s0="$1" -v s1="$(steal_ticks)" -v w0="$2" -v w1="$(date +%s%N)" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
		'BEGIN { w = (w1 - w0) / 1e9; printf "%.1f", (w > 0 ? 100 * (s1 - s0) / hz / (w * n) : 0) }'
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
results=$tmp/results
: >"$results"
for round in $(seq "$ROUNDS"); do
	for bin in "${bins[@]}"; do
		s0=$(steal_ticks) w0=$(date +%s%N)
		line=$(cd captures && timeout 300 "$tmp/$bin.test" -test.run '^$' -test.bench '^BenchmarkWriteRecorder$' \
			-test.benchtime "${ROWS}x" -test.cpu "$CPU" 2>&1 | grep '^BenchmarkWriteRecorder' || true)
		steal=$(steal_pct "$s0" "$w0")
		[[ -n $line ]] || { say "round $round, $bin: the benchmark printed no result"; exit 1; }
		# BenchmarkWriteRecorder-2  300000  9.9 ns/op  ... 12345 cpu-ns/op  67890 exchanges/s  546 file-B/op
		echo "$line" | awk -v bin="$bin" -v round="$round" '{
			procs = $1; sub(/.*-/, "", procs); if (procs == $1) procs = 1
			for (i = 2; i < NF; i++) {
				if ($(i+1) == "exchanges/s") x = $i
				if ($(i+1) == "cpu-ns/op") c = $i
				if ($(i+1) == "file-B/op") f = $i
			}
			printf "%s %s %s %.0f %.0f %.0f\n", bin, round, procs, x, c, f
		}' | tee -a "$results" | awk -v goal="$GOAL" -v load="$(cut -d' ' -f1 /proc/loadavg)" -v steal="$steal" '{
			printf "bench-captures: round %s %-5s GOMAXPROCS=%s: %s exchanges/s (%s %s/s), %s CPU ns per exchange, %s file bytes per exchange, load %s, steal %s %%\n",
				$2, $1, $3, $4, ($4 >= goal ? "meets" : "BELOW"), goal, $5, $6, load, steal
		}' >&2
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -n ${LOCK:-} ]] && exec 9>&-

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "Capture writes, $ROWS exchanges per run, $ROUNDS rounds, $(nproc) cores ($cpu_model), load average $load0 before, $load1 after"
echo
echo "| writer | GOMAXPROCS | exchanges/s best | median | rounds ≥ $GOAL/s | CPU µs per exchange (best) | file bytes per exchange |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for bin in "${bins[@]}"; do
	for procs in ${CPU//,/ }; do
		name=${names[$bin]}
		awk -v bin="$bin" -v procs="$procs" '$1 == bin && $3 == procs' "$results" | sort -k4,4n | awk -v name="$name" -v procs="$procs" -v goal="$GOAL" '
			{ x[NR] = $4; c[NR] = $5; f = $6; if ($4 >= goal) met++ }
			END {
				if (NR == 0) exit
				minc = c[1]; for (i = 2; i <= NR; i++) if (c[i] < minc) minc = c[i]
				med = (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
				printf "| %s | %s | %.0f | %.0f | %d of %d | %.1f | %.0f |\n", name, procs, x[NR], med, met, NR, minc / 1000, f
			}'
	done
done
