// Package benchrun writes the synthetic run that analysis benchmarks read:
// reports' BenchmarkAnalyzeAndReport10M and bench/analyze.sh, which times
// `loadtape analyze` beside DuckDB on the same files.
package benchrun

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Write writes a run of n result rows into dir: three scenarios of four
// 60 s stages, a mix of operations, 1 % errors, one gateway request in ten
// a token stream with its chunk offsets, and a sample per second of GPU and
// host CPU. The same n gives the same files (fixed seed).
func Write(dir string, n int) error {
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
	js, err := json.Marshal(run)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "run.json"), js, 0o644); err != nil {
		return err
	}
	w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir, MaxRows: 1_000_000})
	if err != nil {
		return err
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
						w.Close()
						return err
					}
					buf = buf[:0]
				}
			}
		}
	}
	if err := w.Write(buf...); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	sw, err := captures.NewWriter[captures.Sample](captures.WriterOptions{Dir: dir})
	if err != nil {
		return err
	}
	for t := t0; t.Before(t0.Add(4 * stageLen)); t = t.Add(time.Second) {
		sw.Write(captures.Sample{TNS: t.UnixNano(), Source: "nvml", Device: "0", Metric: "gpu_util", Value: 50 + 40*rng.Float64()},
			captures.Sample{TNS: t.UnixNano(), Source: "host", Metric: "cpu_util", Value: 30 + 20*rng.Float64()})
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("samples: %w", err)
	}
	return nil
}
