package reports

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// benchRows is the size of the benchmark run: 10 million result rows, the
// issue's bound; LOADTAPE_BENCH_ROWS makes it smaller for a quick look.
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("LOADTAPE_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 10_000_000
}

// writeBenchRun writes a run of n result rows: three scenarios of four
// 60 s stages, a mix of operations, 1 % errors, one request in ten a token
// stream with its chunk offsets, and a second of samples.
func writeBenchRun(b *testing.B, dir string, n int) {
	b.Helper()
	scenarios := []string{"gateway", "rag", "mcp"}
	ops := map[string][]string{"gateway": {"chat.completions", "models.list", "health"}, "rag": {"rag.query", "rag.index"}, "mcp": {"mcp.tools.call/read_file", "mcp.tools.call/git_status", "mcp.tools.call/fetch_url"}}
	users := []int{10, 50, 100, 200}
	const stageLen = 60 * time.Second
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	run := map[string]any{"id": "bench", "started": t0.Format(time.RFC3339Nano), "ended": t0.Add(4 * stageLen).Format(time.RFC3339Nano), "time_scale": 1}
	var stages []map[string]any
	scInfo := map[string]any{}
	for _, sc := range scenarios {
		scInfo[sc] = map[string]any{"service": sc, "mode": "closed"}
		for i, u := range users {
			stages = append(stages, map[string]any{"scenario": sc, "stage": i + 1, "users": u,
				"start": t0.Add(time.Duration(i) * stageLen).Format(time.RFC3339Nano), "end": t0.Add(time.Duration(i+1) * stageLen).Format(time.RFC3339Nano)})
		}
	}
	run["stages"] = stages
	run["profile"] = map[string]any{"scenarios": scInfo, "targets": []map[string]any{{"scenario": "gateway", "metric": "p95", "max": "2s"}, {"scenario": "rag", "metric": "error_rate", "max": "1%"}}}
	js, _ := json.Marshal(run)
	if err := os.WriteFile(filepath.Join(dir, "run.json"), js, 0o644); err != nil {
		b.Fatal(err)
	}
	w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir, MaxRows: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const chunk = 50_000
	buf := make([]captures.Result, 0, chunk)
	perStage := n / (len(scenarios) * len(users))
	for si, sc := range scenarios {
		for st, u := range users {
			start := t0.Add(time.Duration(st) * stageLen).UnixNano()
			for i := range perStage {
				t := start + int64(i)*int64(stageLen)/int64(perStage)
				d := int64(float64(20*time.Millisecond) * math.Exp(rng.NormFloat64()*0.5) * (1 + float64(u)/100))
				r := captures.Result{Run: "bench", Scenario: sc, Stage: int32(st + 1), StageUsers: int32(u), VU: int32(i % u), Iteration: int64(i / u),
					Operation: ops[sc][i%len(ops[sc])], Service: sc, IntendedNS: t, StartNS: t + int64(rng.IntN(200_000)), DurationNS: d, TTFBNS: d / 3, Status: 200, ActiveUsers: int32(u)}
				if i%10 == 0 && si == 0 {
					r.TTFTNS = d / 4
					r.CompletionTokens = 8
					for k := range 8 {
						r.ChunkOffsetsNS = append(r.ChunkOffsetsNS, d/4+int64(k)*(d-d/4)/8)
					}
				}
				if rng.IntN(100) == 0 {
					r.ErrorKind, r.Error, r.Status = runspec.ErrHTTP5xx, "HTTP 503: upstream overloaded", 503
				}
				buf = append(buf, r)
				if len(buf) == chunk {
					if err := w.Write(buf...); err != nil {
						b.Fatal(err)
					}
					buf = buf[:0]
				}
			}
		}
	}
	if err := w.Write(buf...); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	sw, err := captures.NewWriter[captures.Sample](captures.WriterOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	for t := t0; t.Before(t0.Add(4 * stageLen)); t = t.Add(time.Second) {
		sw.Write(captures.Sample{TNS: t.UnixNano(), Source: "nvml", Device: "0", Metric: "gpu_util", Value: 50 + 40*rng.Float64()},
			captures.Sample{TNS: t.UnixNano(), Source: "host", Metric: "cpu_util", Value: 30 + 20*rng.Float64()})
	}
	if err := sw.Close(); err != nil {
		b.Fatal(err)
	}
}

// peakRSS is the process's peak resident set in MiB since the last
// resetPeak (Linux; 0 elsewhere).
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

// resetPeak resets VmHWM so that writing the input does not count.
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkAnalyzeAndReport10M: 10 million result rows through the full
// analysis and every report; the bound is 20 s and 2 GB.
func BenchmarkAnalyzeAndReport10M(b *testing.B) {
	n := benchRows()
	dir := b.TempDir()
	start := time.Now()
	writeBenchRun(b, dir, n)
	b.Logf("wrote %d rows in %v", n, time.Since(start))
	out := b.TempDir()
	debug.FreeOSMemory() // what writing the input kept must not count
	resetPeak()
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for b.Loop() {
		s, err := analyze.Analyze(analyze.Options{Runs: []string{dir}})
		if err != nil {
			b.Fatal(err)
		}
		if err := Write(out, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op") // wall time on a shared machine says more about the neighbours
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
	b.ReportMetric(float64(n), "rows")
}

// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
