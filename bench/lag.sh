#!/usr/bin/env bash
# make bench-lag: loadtape's send lag (start − intended send time) in open
# mode at 5,000 arrivals/s, Poisson, 3 s against an upstream in the same
# process that answers at once (replay's BenchmarkSendLag5000, its
# slow-writer=false case), RUNS times. Prints each run's p99 over the
# whole run and without its first half second (dials and workers
# starting), how many arrivals were over 2 ms late and the latest, and how
# many runs stayed at or under 2 ms, with the load average before and
# after every run.
#
# DEMO=N also runs the healthy quick demo (`loadtape demo --quick
# --healthy`, 70–90 s each, both cores) N times and counts the runs whose
# analysis found the load generator lagging (load_generator_saturated),
# with each run's worst stage send-lag p99.
#
# BASE=REV also builds the benchmark (this tree's bench_test.go) against
# replay at git revision REV and runs it beside, in turn with this tree's
# (REV's row after each), so that the two are compared under the same
# load.
#
# Every row also says how much of the machine other processes took while
# it ran ("others' CPU": the cores' busy time in /proc/stat less the run's
# own CPU time, as a share of its wall time on every core) and the CPU
# time the hypervisor took ("steal"). On a shared 2-core machine the tail
# of the send lag is mostly other processes holding the cores: the
# summary also counts the runs during which the others took under 5 % and
# the hypervisor under 2 % of the cores' time (the share at which the
# analysis names steal), which is what a quiet machine gives.
#
# Environment: RUNS (10), DEMO (0), BASE (none), LOADTAPE (bin/loadtape, for DEMO),
# OUT (out/bench-lag), LOCK (a file: every run holds `flock LOCK` while it
# runs, so that runs of other benchmarks on a shared machine do not
# overlap it; unset: no lock).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

RUNS=${RUNS:-10}
DEMO=${DEMO:-0}
LOADTAPE=${LOADTAPE:-bin/loadtape}
OUT=${OUT:-out/bench-lag}
LOCK=${LOCK:-}
BASE=${BASE:-}

say() { echo "bench-lag: $*" >&2; }
bad() { say "$*"; exit 2; }
[[ $RUNS =~ ^[0-9]+$ && $RUNS -le 100 ]] || bad "RUNS=$RUNS: expected 0 to 100"
[[ $DEMO =~ ^[0-9]+$ && $DEMO -le 20 ]] || bad "DEMO=$DEMO: expected 0 to 20"
[[ $DEMO -eq 0 || -x $LOADTAPE ]] || bad "DEMO=$DEMO needs $LOADTAPE: run make build first (make bench-lag does)"
[[ $DEMO -eq 0 ]] || command -v jq >/dev/null 2>&1 || bad "DEMO=$DEMO needs jq to read the demo's summary.json"
[[ -z $BASE ]] || git rev-parse --verify -q "$BASE^{commit}" >/dev/null || bad "BASE=$BASE: not a git revision here"
[[ -z $LOCK ]] || command -v flock >/dev/null 2>&1 || bad "LOCK=$LOCK: flock is not installed"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
locked() { if [[ -n $LOCK ]]; then flock "$LOCK" "$@"; else "$@"; fi; }
load() { cut -d' ' -f1 /proc/loadavg; }
# ticks: the cores' busy and steal time so far, in clock ticks (USER_HZ).
ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9; exit}' /proc/stat; }
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
# attributed WALL0 TICKS0 OWN: "others' CPU %", "steal ms" and "steal %"
# (of the cores' time) since WALL0 (date +%s%N) and TICKS0 (ticks), OWN
# being the run's own CPU seconds.
attributed() {
	local now t
	now=$(date +%s%N)
	t=$(ticks)
	awk -v w0="$1" -v w1="$now" -v b0="${2% *}" -v s0="${2#* }" -v b1="${t% *}" -v s1="${t#* }" \
		-v own="$3" -v hz="$hz" -v n="$ncpu" 'BEGIN {
		wall = (w1 - w0) / 1e9
		others = (b1 - b0) / hz - own
		if (others < 0) others = 0
		printf "%.1f %.0f %.1f\n", 100 * others / (wall * n), 1000 * (s1 - s0) / hz, 100 * (s1 - s0) / hz / (wall * n)
	}'
}
# timed PREFIX CMD...: runs CMD with its output in PREFIX.out and its CPU
# time (user and system, children included) in PREFIX.time; prints the
# wall clock (date +%s%N) and ticks at its start as "WALL|TICKS".
timed() {
	local prefix=$1 w0 t0 TIMEFORMAT='%U %S'
	shift
	w0=$(date +%s%N) t0=$(ticks)
	{ time "$@" >"$prefix.out" 2>&1; } 2>"$prefix.time"
	echo "$w0|$t0"
}
# owncpu FILE: user + system seconds from bash's `time` (TIMEFORMAT='%U %S') in FILE.
owncpu() { awk '{u = $1; s = $2} END {print u + s}' "$1"; }

# quietly OTHERS STEALPCT: true when others took under 5 % and steal under 2 %.
quietly() { awk -v o="$1" -v s="$2" 'BEGIN { exit !(o < 5 && s < 2) }'; }

export CGO_ENABLED=${CGO_ENABLED:-1} CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}
# bench_row LABEL BINARY: one run of the benchmark, one table row; the
# p99s go to the tallies ok/okSteady of LABEL.
declare -A ok okSteady quiet okQuiet
bench_row() {
	local label=$1 bin=$2 before after line p99 sp99 p50 rps late worst w0 t0 att others steal stealPct
	before=$(load)
	# The lock is taken before the clock starts: waiting for it is not the run's.
	line=$(locked bash -c "$(declare -f ticks timed); cd replay && timed \"\$@\"" _ "$OUT/run" \
		timeout 120 "$bin" -test.run '^$' -test.bench 'SendLag5000/slow-writer=false' -test.benchtime 1x || true)
	line="$line|$(grep -m1 '^BenchmarkSendLag5000' "$OUT/run.out" || true)"
	after=$(load)
	w0=${line%%|*} line=${line#*|} t0=${line%%|*} line=${line#*|}
	att=$(attributed "$w0" "$t0" "$(owncpu "$OUT/run.time")")
	read -r others steal stealPct <<<"$att"
	metric() { awk -v m="$1" '{for (i = 2; i <= NF; i++) if ($i == m) print $(i-1)}' <<<"$line"; }
	p99=$(metric lag-p99-ms) sp99=$(metric steady-lag-p99-ms) p50=$(metric lag-p50-ms) rps=$(metric req/s)
	late=$(metric late-over-2ms) worst=$(metric lag-max-ms)
	if [[ -z $p99 ]]; then
		printf '| %s | %s | %s | %s | %s | failed | | | | | |\n' "$label" "$before" "$after" "$others" "$steal"
		return
	fi
	local good=0
	awk -v v="$p99" 'BEGIN { exit !(v <= 2) }' && good=1 && ok[$label]=$((${ok[$label]:-0} + 1))
	awk -v v="$sp99" 'BEGIN { exit !(v <= 2) }' && okSteady[$label]=$((${okSteady[$label]:-0} + 1))
	if quietly "$others" "$stealPct"; then
		quiet[$label]=$((${quiet[$label]:-0} + 1))
		okQuiet[$label]=$((${okQuiet[$label]:-0} + good))
	fi
	printf '| %s | %s | %s | %s | %s | %.2f | %.2f | %.3f | %.0f | %.2f | %.0f |\n' "$label" "$before" "$after" "$others" "$steal" "$p99" "$sp99" "$p50" "${late:-0}" "${worst:-0}" "$rps"
}

if [[ $RUNS -gt 0 ]]; then
	go test -c -o "$OUT/replay.test" ./replay/
	labels=(this)
	if [[ -n $BASE ]]; then
		rm -rf "$OUT/base-src"
		mkdir -p "$OUT/base-src"
		git archive "$BASE" | tar -x -C "$OUT/base-src"
		# This tree's benchmark, so that both report the same metrics.
		cp replay/bench_test.go "$OUT/base-src/replay/bench_test.go"
		(cd "$OUT/base-src" && go test -c -o "$OUT/base.test" ./replay/)
		labels+=("$BASE")
	fi
	say "BenchmarkSendLag5000 (slow-writer=false) × $RUNS"
	printf "| run | load before | load after | others' CPU %% | steal ms | p99 ms | steady p99 ms | p50 ms | over 2 ms | max ms | req/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
	for i in $(seq 1 "$RUNS"); do
		bench_row this "$OUT/replay.test"
		[[ -z $BASE ]] || bench_row "$BASE" "$OUT/base.test"
	done
	echo
	for l in "${labels[@]}"; do
		echo "$l: p99 ≤ 2 ms in ${ok[$l]:-0} of $RUNS runs (steady: ${okSteady[$l]:-0} of $RUNS; with others' CPU under 5 % and steal under 2 %: ${okQuiet[$l]:-0} of ${quiet[$l]:-0})"
	done
	echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
fi

if [[ $DEMO -gt 0 ]]; then
	say "healthy quick demo × $DEMO"
	echo
	printf "| demo | load before | load after | others' CPU %% | steal ms | generator finding | worst stage send-lag p99 ms |\n|---|---|---|---|---|---|---|\n"
	flagged=0 quietDemos=0 flaggedQuiet=0
	for i in $(seq 1 "$DEMO"); do
		dir=$OUT/demo-$i
		rm -rf "$dir"
		before=$(load)
		line=$(locked bash -c "$(declare -f ticks timed); timed \"\$@\"" _ "$OUT/demo-$i" \
			timeout 300 "$LOADTAPE" demo --quick --healthy --out "$dir" || true)
		after=$(load)
		read -r others steal stealPct < <(attributed "${line%%|*}" "${line#*|}" "$(owncpu "$OUT/demo-$i.time")")
		sum=$dir/report/summary.json
		if [[ ! -s $sum ]]; then
			printf '| %d | %s | %s | %s | %s | failed (see %s) | |\n' "$i" "$before" "$after" "$others" "$steal" "$OUT/demo-$i.out"
			continue
		fi
		found=no
		n=$(jq -r '[.findings[]? | select(.kind == "load_generator_saturated")] | length' "$sum")
		[[ $n -gt 0 ]] && found=yes && flagged=$((flagged + 1))
		worst=$(jq -r '[.stages[].operations.all.send_lag_ms.p99 // empty] | max // "–"' "$sum")
		printf '| %d | %s | %s | %s | %s | %s | %s |\n' "$i" "$before" "$after" "$others" "$steal" "$found" "$worst"
		if quietly "$others" "$stealPct"; then
			quietDemos=$((quietDemos + 1))
			[[ $found == yes ]] && flaggedQuiet=$((flaggedQuiet + 1))
		fi
	done
	echo
	echo "generator findings in $flagged of $DEMO healthy quick demos (with others' CPU under 5 % and steal under 2 %: $flaggedQuiet of $quietDemos)"
fi
