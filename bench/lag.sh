#!/usr/bin/env bash
# make bench-lag: loadtape's send lag (start − intended send time) in open
# mode at 5,000 arrivals/s, Poisson, 3 s against an upstream in the same
# process that answers at once (replay's BenchmarkSendLag5000, its
# slow-writer=false case), RUNS times. Prints each run's p99 over the
# whole run and without its first half second (dials and workers
# starting), and how many runs stayed at or under 2 ms, with the load
# average before and after every run.
#
# DEMO=N also runs the healthy quick demo (`loadtape demo --quick
# --healthy`, 70–90 s each, both cores) N times and counts the runs whose
# analysis found the load generator lagging (load_generator_saturated),
# with each run's worst stage send-lag p99.
#
# BASE=REV also builds the benchmark at git revision REV and runs it
# beside, in turn with this tree's (REV's row after each), so that the two
# are compared under the same load.
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

export CGO_ENABLED=${CGO_ENABLED:-1} CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}
# bench_row LABEL BINARY: one run of the benchmark, one table row; the
# p99s go to the tallies ok/okSteady of LABEL.
declare -A ok okSteady
bench_row() {
	local label=$1 bin=$2 before after line p99 sp99 p50 rps
	before=$(load)
	line=$(cd replay && locked timeout 120 "$bin" -test.run '^$' \
		-test.bench 'SendLag5000/slow-writer=false' -test.benchtime 1x 2>&1 | grep -m1 '^BenchmarkSendLag5000' || true)
	after=$(load)
	metric() { awk -v m="$1" '{for (i = 2; i <= NF; i++) if ($i == m) print $(i-1)}' <<<"$line"; }
	p99=$(metric lag-p99-ms) sp99=$(metric steady-lag-p99-ms) p50=$(metric lag-p50-ms) rps=$(metric req/s)
	if [[ -z $p99 ]]; then
		printf '| %s | %s | %s | failed | | | |\n' "$label" "$before" "$after"
		return
	fi
	awk -v v="$p99" 'BEGIN { exit !(v <= 2) }' && ok[$label]=$((${ok[$label]:-0} + 1))
	awk -v v="$sp99" 'BEGIN { exit !(v <= 2) }' && okSteady[$label]=$((${okSteady[$label]:-0} + 1))
	printf '| %s | %s | %s | %.2f | %.2f | %.3f | %.0f |\n' "$label" "$before" "$after" "$p99" "$sp99" "$p50" "$rps"
}

if [[ $RUNS -gt 0 ]]; then
	go test -c -o "$OUT/replay.test" ./replay/
	labels=(this)
	if [[ -n $BASE ]]; then
		rm -rf "$OUT/base-src"
		mkdir -p "$OUT/base-src"
		git archive "$BASE" | tar -x -C "$OUT/base-src"
		(cd "$OUT/base-src" && go test -c -o "$OUT/base.test" ./replay/)
		labels+=("$BASE")
	fi
	say "BenchmarkSendLag5000 (slow-writer=false) × $RUNS"
	printf '| run | load before | load after | p99 ms | steady p99 ms | p50 ms | req/s |\n|---|---|---|---|---|---|---|\n'
	for i in $(seq 1 "$RUNS"); do
		bench_row this "$OUT/replay.test"
		[[ -z $BASE ]] || bench_row "$BASE" "$OUT/base.test"
	done
	echo
	for l in "${labels[@]}"; do
		echo "$l: p99 ≤ 2 ms in ${ok[$l]:-0} of $RUNS runs (steady: ${okSteady[$l]:-0} of $RUNS)"
	done
	echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
fi

if [[ $DEMO -gt 0 ]]; then
	say "healthy quick demo × $DEMO"
	echo
	printf '| demo | load before | load after | generator finding | worst stage send-lag p99 ms |\n|---|---|---|---|---|\n'
	flagged=0
	for i in $(seq 1 "$DEMO"); do
		dir=$OUT/demo-$i
		rm -rf "$dir"
		before=$(load)
		locked timeout 300 "$LOADTAPE" demo --quick --healthy --out "$dir" >"$OUT/demo-$i.log" 2>&1 || true
		after=$(load)
		sum=$dir/report/summary.json
		if [[ ! -s $sum ]]; then
			printf '| %d | %s | %s | failed (see %s) | |\n' "$i" "$before" "$after" "$OUT/demo-$i.log"
			continue
		fi
		found=no
		n=$(jq -r '[.findings[]? | select(.kind == "load_generator_saturated")] | length' "$sum")
		[[ $n -gt 0 ]] && found=yes && flagged=$((flagged + 1))
		worst=$(jq -r '[.stages[].operations.all.send_lag_ms.p99 // empty] | max // "–"' "$sum")
		printf '| %d | %s | %s | %s | %s |\n' "$i" "$before" "$after" "$found" "$worst"
	done
	echo
	echo "generator findings in $flagged of $DEMO healthy quick demos"
fi
