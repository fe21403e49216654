package analyze

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// vllmRequest is one request as vLLM's bench serve records it: start,
// TTFT, the gaps between the chunks after the first (itl) and the latency
// to the last chunk, all in ns from the benchmark's start.
type vllmRequest struct {
	start, ttft, latency int64
	itl                  []int64
	prompt, output       int64
}

// vllmMetrics is vLLM's calculate_metrics (benchmarks/serve), ported line
// by line: throughputs over the benchmark's duration, TPOT = (latency −
// TTFT)/(output − 1) for outputs of more than one token (0 otherwise, for
// goodput), goodput against ttft/tpot/e2el SLOs, and the peaks counted in
// whole seconds from the first start: one token per chunk, and every
// second a request was active from its start's second to its end's.
type vllmMetrics struct {
	requestThroughput, outputThroughput, totalThroughput float64
	meanTTFTMS, meanTPOTMS, meanE2ELMS                   float64
	good                                                 int64
	maxOutputPerS                                        float64
	maxConcurrent                                        int
}

func vllmCalculate(reqs []vllmRequest, durS float64, slo [3]int64) vllmMetrics {
	var m vllmMetrics
	var totalIn, totalOut int64
	var ttfts, tpots, e2els []float64
	for _, r := range reqs {
		totalIn += r.prompt
		totalOut += r.output
		tpot := 0.0
		if r.output > 1 {
			tpot = float64(r.latency-r.ttft) / float64(r.output-1)
			tpots = append(tpots, tpot)
		}
		ttfts, e2els = append(ttfts, float64(r.ttft)), append(e2els, float64(r.latency))
		if float64(r.ttft) <= float64(slo[0]) && tpot <= float64(slo[1]) && float64(r.latency) <= float64(slo[2]) {
			m.good++
		}
	}
	n := float64(len(reqs))
	m.requestThroughput = n / durS
	m.outputThroughput = float64(totalOut) / durS
	m.totalThroughput = float64(totalIn+totalOut) / durS
	m.meanTTFTMS, m.meanTPOTMS, m.meanE2ELMS = mean(ttfts)/1e6, mean(tpots)/1e6, mean(e2els)/1e6
	minStart, maxEnd := int64(math.MaxInt64), int64(0)
	for _, r := range reqs {
		minStart, maxEnd = min(minStart, r.start), max(maxEnd, r.start+r.latency)
	}
	secs := int(math.Ceil(float64(maxEnd-minStart)/1e9)) + 1
	tokens, active := make([]float64, secs), make([]int, secs)
	for _, r := range reqs {
		t := r.start + r.ttft
		times := []int64{t}
		for _, g := range r.itl {
			t += g
			times = append(times, t)
		}
		for _, t := range times {
			if b := int((t - minStart) / 1e9); b >= 0 && b < secs {
				tokens[b]++
			}
		}
		for s := int((r.start - minStart) / 1e9); s <= int((r.start+r.latency-minStart)/1e9); s++ {
			active[s]++
		}
	}
	m.maxOutputPerS, m.maxConcurrent = slices.Max(tokens), slices.Max(active)
	return m
}

// oneStage is a run of one 10 s stage of scenario "llm" starting at t0,
// with no warm-up trimmed, for collecting rows by hand.
func oneStage(t0 time.Time, goodput *runspec.Goodput, scale float64) *RunInfo {
	return &RunInfo{Started: t0.Format(time.RFC3339Nano), TimeScale: scale,
		Stages:  []StageInfo{{Scenario: "llm", Stage: 1, Users: 8, Start: t0.Format(time.RFC3339Nano), End: t0.Add(10 * time.Second).Format(time.RFC3339Nano)}},
		Profile: ProfileInfo{Scenarios: map[string]ScenarioInfo{"llm": {Service: "gateway", Mode: "closed", Goodput: goodput}}}}
}

func collectStage(t *testing.T, info *RunInfo, rows []captures.Result) *Stage {
	t.Helper()
	c := newCollector(info, WarmUp{})
	for i := range rows {
		if !c.add(&rows[i]) {
			t.Fatalf("row %d not taken", i)
		}
	}
	return c.finish()[0]
}

// A synthetic stream with known timings: the usage and [DONE] events come
// with the last content chunk (one read), the first chunk carries the role
// and the first token, one token per chunk. loadtape's figures are vLLM's.
func TestTokensReproduceVLLM(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 15))
	var reqs []vllmRequest
	var rows []captures.Result
	for i := range 60 {
		r := vllmRequest{start: int64(i) * 130 * int64(time.Millisecond), ttft: (50 + rng.Int64N(400)) * int64(time.Millisecond),
			prompt: 20 + rng.Int64N(200), output: 1 + rng.Int64N(80)}
		offs := []int64{r.ttft}
		at := r.ttft
		for range r.output - 1 {
			g := (5 + rng.Int64N(60)) * int64(time.Millisecond)
			r.itl = append(r.itl, g)
			at += g
			offs = append(offs, at)
		}
		r.latency = at
		offs = append(offs, at, at) // usage, [DONE]
		reqs = append(reqs, r)
		rows = append(rows, captures.Result{Scenario: "llm", Stage: 1, VU: int32(i % 8), Iteration: int64(i), Operation: "chat.completions",
			StartNS: t0.UnixNano() + r.start, IntendedNS: t0.UnixNano() + r.start, TTFBNS: r.ttft / 2, TTFTNS: r.ttft, DurationNS: r.latency,
			ChunkOffsetsNS: offs, Status: 200, PromptTokens: r.prompt, CompletionTokens: r.output})
	}
	slo := [3]int64{300 * int64(time.Millisecond), 35 * int64(time.Millisecond), 3 * int64(time.Second)}
	want := vllmCalculate(reqs, 10, slo)
	info := oneStage(t0, &runspec.Goodput{TTFT: runspec.Duration(slo[0]), TPOT: runspec.Duration(slo[1]), E2E: runspec.Duration(slo[2])}, 1)
	st := collectStage(t, info, rows)
	// Read as two files by two collectors and merged: the same figures.
	c1, c2 := newCollector(info, WarmUp{}), newCollector(info, WarmUp{})
	for i := range rows {
		c := c1
		if i%3 == 0 {
			c = c2
		}
		c.add(&rows[i])
	}
	c1.merge(c2)
	if a, b := c1.finish()[0].Operations[AllOps], st.Operations[AllOps]; !reflect.DeepEqual(a.Tokens, b.Tokens) || !reflect.DeepEqual(a.Goodput, b.Goodput) {
		t.Errorf("merged collectors: %+v %+v, want %+v %+v", a.Tokens, a.Goodput, b.Tokens, b.Goodput)
	}
	o := st.Operations[AllOps]
	tk := o.Tokens
	if tk == nil || o.Goodput == nil {
		t.Fatalf("no token figures or goodput: %+v", o)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want vLLM's %v", name, got, want)
		}
	}
	near("request throughput", tk.RequestsPerS, want.requestThroughput)
	near("output throughput", tk.OutputPerS, want.outputThroughput)
	near("total token throughput", tk.TotalPerS, want.totalThroughput)
	near("mean TTFT", o.TTFTMS.Avg, want.meanTTFTMS)
	// Per-request TPOT is kept in whole ns: within 1 ns of vLLM's float.
	if d := math.Abs(o.TPOTMS.Avg - want.meanTPOTMS); d > 1e-6 {
		t.Errorf("mean TPOT = %v ms, want vLLM's %v (±1 ns)", o.TPOTMS.Avg, want.meanTPOTMS)
	}
	near("mean E2EL", o.LatencyMS.Avg, want.meanE2ELMS)
	near("peak output tokens/s", tk.PeakOutputPerS, want.maxOutputPerS)
	if tk.PeakConcurrency != want.maxConcurrent {
		t.Errorf("peak concurrency %d, want vLLM's %d", tk.PeakConcurrency, want.maxConcurrent)
	}
	if o.Goodput.Good != want.good || want.good == 0 || want.good == int64(len(reqs)) {
		t.Errorf("good requests %d, want vLLM's %d (of %d; the SLOs must split them)", o.Goodput.Good, want.good, len(reqs))
	}
	near("goodput", o.Goodput.PerS, float64(want.good)/10)
	near("good share", o.Goodput.Share, float64(want.good)/float64(len(reqs)))
	if tk.Counting != CountUsage || tk.ChunkCounted != 0 {
		t.Errorf("counting %q (%d by chunks), want usage", tk.Counting, tk.ChunkCounted)
	}
	// The decode rate one request saw is 1/TPOT.
	var rates []float64
	for _, r := range reqs {
		if r.output > 1 {
			rates = append(rates, 1e9*float64(r.output-1)/float64(r.latency-r.ttft))
		}
	}
	near("mean per-request output tokens/s", tk.PerRequest.Avg, mean(rates))
}

// Without usage the stream's events from the first token on are counted,
// the closing [DONE] left out, and the figures say they are chunk counts;
// a failure counts against the good share but has no tokens.
func TestTokensChunkCountsAndFailures(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := int64(time.Millisecond)
	row := func(i int) captures.Result {
		return captures.Result{Scenario: "llm", Stage: 1, VU: int32(i), Operation: "chat.completions",
			StartNS: t0.UnixNano() + int64(i)*int64(time.Second), TTFBNS: 40 * ms, TTFTNS: 100 * ms, DurationNS: 400 * ms, Status: 200,
			// role-only chunk, 4 content chunks, a finish chunk, [DONE]
			ChunkOffsetsNS: []int64{50 * ms, 100 * ms, 200 * ms, 300 * ms, 390 * ms, 399 * ms, 400 * ms}}
	}
	withUsage := row(1)
	withUsage.CompletionTokens, withUsage.PromptTokens = 10, 7
	failed := row(2)
	failed.ErrorKind, failed.Error, failed.ChunkOffsetsNS = runspec.ErrHTTP5xx, "HTTP 503", nil
	whole := row(3) // a response that was not streamed
	whole.TTFTNS, whole.ChunkOffsetsNS, whole.CompletionTokens = 0, nil, 50

	info := oneStage(t0, &runspec.Goodput{TTFT: runspec.Duration(time.Second)}, 0.5)
	st := collectStage(t, info, []captures.Result{row(0), withUsage, failed, whole})
	o := st.Operations["chat.completions"]
	tk := o.Tokens
	if tk == nil {
		t.Fatal("no token figures")
	}
	if tk.Counting != CountMixed || tk.ChunkCounted != 1 || tk.Requests != 3 {
		t.Errorf("counting %q, %d by chunks of %d, want mixed, 1 of 3", tk.Counting, tk.ChunkCounted, tk.Requests)
	}
	if want := int64(5 + 10 + 50); tk.OutputTokens != want { // 4 content chunks + the finish chunk
		t.Errorf("output tokens %d, want %d", tk.OutputTokens, want)
	}
	if tk.InputTokens != 7 {
		t.Errorf("input tokens %d, want 7", tk.InputTokens)
	}
	// Goodput's bound is scaled by the run's time scale: 1 s × 0.5.
	if g := o.Goodput; g.Good != 3 || g.TTFTMS != 500 || g.TimeScale != 0.5 || math.Abs(g.Share-0.75) > 1e-12 {
		t.Errorf("goodput %+v, want 3 good of 4 against ttft 500 ms (scaled by 0.5)", *g)
	}
	// The whole response's 50 tokens over its 0.4 s.
	if tk.PerRequest.Max != 125 {
		t.Errorf("fastest request %v tokens/s, want the whole response's 125", tk.PerRequest.Max)
	}
	// The same stage chunk-counted alone.
	st = collectStage(t, oneStage(t0, nil, 1), []captures.Result{row(0)})
	if tk := st.Operations[AllOps].Tokens; tk == nil || tk.Counting != CountChunks || st.Counting() != CountChunks {
		t.Errorf("a stream without usage: %+v, want chunk counting", tk)
	}
	if st.Operations[AllOps].Goodput != nil {
		t.Error("goodput without bounds")
	}
}

// BenchmarkAddTokens is the token figures' share of ingesting one
// successful stream row of 100 chunks.
func BenchmarkAddTokens(b *testing.B) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	info := oneStage(t0, &runspec.Goodput{TTFT: runspec.Duration(time.Second)}, 1)
	c := newCollector(info, WarmUp{})
	st := c.stages[stageKey{"llm", 1}]
	offs := make([]int64, 102)
	for i := range offs {
		offs[i] = int64(50+i*10) * int64(time.Millisecond)
	}
	r := captures.Result{Scenario: "llm", Stage: 1, Operation: "chat.completions", TTFTNS: 50 * int64(time.Millisecond),
		DurationNS: offs[101], ChunkOffsetsNS: offs, CompletionTokens: 100, PromptTokens: 20}
	b.ReportAllocs()
	for i := range b.N {
		r.StartNS = t0.UnixNano() + int64(i%9000)*int64(time.Millisecond)
		c.addTokens(st, &r, false, st.entry(r.Operation))
	}
}
