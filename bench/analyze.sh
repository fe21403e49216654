#!/usr/bin/env bash
# make bench-analyze: the statistics of a 10 M-row run beside DuckDB's, in
# one run on this machine. Writes the run once (bench/analyzegen, the
# synthetic run of internal/benchrun: 3 scenarios × 4 stages, 1 % errors,
# one gateway request in ten a token stream) into bin/bench-analyze/, then,
# round after round, times in turn:
#   duckdb  DuckDB (@duckdb/node-api from testdata/node) computing the
#           grouped exact percentiles of the successes' durations, with
#           requests and failures, per scenario × stage × operation
#           (bench/analyze-duckdb.mjs), the whole node process;
#   stats   analyze.Analyze alone (every statistic, finding and series,
#           no report written), the whole process (bench/analyzegen -stats);
#   full    `loadtape analyze RUN --out DIR`: statistics and every report.
# Prints each round, then a Markdown table of the medians of wall and CPU
# time, each ÷ DuckDB's, with peak RSS and the load average before and after.
# BASE=REV also builds loadtape and bench/analyzegen of git revision REV
# and times its stats and full in the same rounds, right after this
# tree's: the code before a change beside it, under the same load.
#
# Environment: ROWS (10000000), ROUNDS (3), BASE (none).
set -euo pipefail
export LC_ALL=C
export CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ROWS=${ROWS:-10000000}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-}

say() { echo "bench-analyze: $*" >&2; }
bad() { say "$*"; exit 2; }

[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 1000 && $ROWS -le 100000000 ]] || bad "ROWS=$ROWS: expected 1000 to 100000000"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 10 ]] || bad "ROUNDS=$ROUNDS: expected 1 to 10"
if [[ -n $BASE ]]; then
	git rev-parse --verify -q "$BASE^{commit}" >/dev/null || bad "BASE=$BASE: not a git revision here"
fi
command -v node >/dev/null || bad "node is not installed (DuckDB runs under it)"
[[ -d testdata/node/node_modules/@duckdb/node-api ]] || bad "testdata/node/node_modules lacks @duckdb/node-api: run make node-fixtures"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "building loadtape and bench/analyzegen"
go build -o "$tmp/loadtape" ./cmd/loadtape
go build -o "$tmp/analyzegen" ./bench/analyzegen
if [[ -n $BASE ]]; then
	say "building loadtape and bench/analyzegen at $BASE"
	mkdir "$tmp/base"
	git archive "$BASE" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && go build -o "$tmp/base-loadtape" ./cmd/loadtape && go build -o "$tmp/base-analyzegen" ./bench/analyzegen)
fi

run=bin/bench-analyze/run-$ROWS
if [[ ! -f $run/run.json ]]; then
	say "writing $ROWS result rows to $run (once; about a minute per 10 M rows)"
	rm -rf "$run"
	mkdir -p bin/bench-analyze
	"$tmp/analyzegen" -rows "$ROWS" -out "$run"
fi

# measure NAME CMD...: runs CMD, appends "NAME wall_s peak_kib cpu_s" to
# results (CPU: user + system; on a shared machine it moves less than wall
# time, which depends on the neighbours).
results=$tmp/results
: >"$results"
measure() {
	local name=$1
	shift
	local t0 t1 rss=0 cpu=0
	if [[ -x /usr/bin/time ]]; then
		t0=$(date +%s.%N)
		/usr/bin/time -f '%M %U %S' -o "$tmp/rss" "$@" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/err" >&2; bad "$name failed"; }
		t1=$(date +%s.%N)
		read -r rss u sy < <(tail -1 "$tmp/rss")
		cpu=$(awk -v u="$u" -v s="$sy" 'BEGIN { print u + s }')
	else
		t0=$(date +%s.%N)
		"$@" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/err" >&2; bad "$name failed"; }
		t1=$(date +%s.%N)
	fi
	awk -v n="$name" -v a="$t0" -v b="$t1" -v r="$rss" -v c="$cpu" 'BEGIN { printf "%s %.3f %d %.2f\n", n, b - a, r, c }' | tee -a "$results" |
		awk -v round="$round" '{ printf "bench-analyze: round %s %-6s %6.2f s, CPU %.2f s, peak RSS %.0f MiB\n", round, $1, $2, $4, $3 / 1024 }' >&2
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	measure duckdb node bench/analyze-duckdb.mjs "$run"
	measure stats "$tmp/analyzegen" -stats "$run"
	rm -rf "$tmp/out-dir"
	# exit 3 (a target missed) is a verdict, not a failure
	measure full bash -c '"$0" analyze "$1" --out "$2" >/dev/null; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 3 ]' "$tmp/loadtape" "$run" "$tmp/out-dir"
	if [[ -n $BASE ]]; then
		measure bstats "$tmp/base-analyzegen" -stats "$run"
		rm -rf "$tmp/out-dir"
		measure bfull bash -c '"$0" analyze "$1" --out "$2" >/dev/null; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 3 ]' "$tmp/base-loadtape" "$run" "$tmp/out-dir"
	fi
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

median() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$results" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
most() { awk -v n="$1" '$1 == n { print $3 }' "$results" | sort -n | tail -1; }
duck=$(median duckdb 2)
stats=$(median stats 2)
full=$(median full 2)
duckc=$(median duckdb 4)
statsc=$(median stats 4)
fullc=$(median full 4)
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "Statistics of $ROWS result rows, $ROUNDS rounds (medians), $(nproc) cores ($cpu_model), load average $load0 before, $load1 after"
echo
echo "| what | wall s (median) | ÷ DuckDB | CPU s (median) | ÷ DuckDB | peak RSS MiB (most) |"
echo "| --- | --- | --- | --- | --- | --- |"
awk -v d="$duck" -v s="$stats" -v f="$full" -v dc="$duckc" -v sc="$statsc" -v fc="$fullc" -v rd="$(most duckdb)" -v rs="$(most stats)" -v rf="$(most full)" 'BEGIN {
	printf "| DuckDB: grouped exact percentiles (bench/analyze-duckdb.mjs) | %.2f | 1 | %.2f | 1 | %.0f |\n", d, dc, rd / 1024
	printf "| analyze.Analyze: every statistic and finding, no report | %.2f | %.1f | %.2f | %.1f | %.0f |\n", s, s / d, sc, sc / dc, rs / 1024
	printf "| loadtape analyze: statistics and every report | %.2f | %.1f | %.2f | %.1f | %.0f |\n", f, f / d, fc, fc / dc, rf / 1024
}'
if [[ -n $BASE ]]; then
	awk -v d="$duck" -v s="$(median bstats 2)" -v f="$(median bfull 2)" -v dc="$duckc" -v sc="$(median bstats 4)" -v fc="$(median bfull 4)" -v rs="$(most bstats)" -v rf="$(most bfull)" -v rev="$BASE" 'BEGIN {
		printf "| analyze.Analyze at %s | %.2f | %.1f | %.2f | %.1f | %.0f |\n", rev, s, s / d, sc, sc / dc, rs / 1024
		printf "| loadtape analyze at %s | %.2f | %.1f | %.2f | %.1f | %.0f |\n", rev, f, f / d, fc, fc / dc, rf / 1024
	}'
fi
