package analyze

import (
	"math"
	"slices"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Token counting: where a request's output token count came from.
const (
	CountUsage  = "usage"  // the response's usage block (completion_tokens)
	CountChunks = "chunks" // no usage: the stream's events from the first token on (chunks, not tokens)
	CountMixed  = "mixed"  // some requests of each
)

// maxTokenSeconds bounds the per-second buckets of one operation: a stage
// of more than a day is cut there rather than grown without limit.
const maxTokenSeconds = 86400

// TokenStats are the token figures of one operation (or all) within a
// stage, as LLM serving benchmarks report them. Only successful requests
// count, as vLLM's bench serve counts them; docs/analyze.md defines each
// figure and maps it to vLLM's, GuideLLM's and AIPerf's names.
type TokenStats struct {
	// Counting says where the output counts came from: usage, chunks
	// (streams without usage: chunk counts, not token counts) or mixed.
	Counting     string `json:"counting"`
	Requests     int64  `json:"requests"`      // successful requests with an output count
	ChunkCounted int64  `json:"chunk_counted"` // of them, counted by chunks
	InputTokens  int64  `json:"input_tokens"`  // prompt tokens from usage (0 when none said)
	OutputTokens int64  `json:"output_tokens"`
	// Throughputs over the stage's measured window.
	OutputPerS   float64 `json:"output_tokens_per_s"`
	TotalPerS    float64 `json:"total_tokens_per_s"` // input and output
	RequestsPerS float64 `json:"requests_per_s"`     // successful requests per second
	// PerRequest is the output rate one request saw: for a stream
	// (output − 1)/(e2e − TTFT), the decode rate after the first token
	// (1/TPOT); for a whole response output/e2e.
	PerRequest *RateDist `json:"per_request_output_tokens_per_s,omitempty"`
	// Peaks over the window's whole seconds: the most output tokens that
	// arrived within one second, and the most successful requests active
	// in one second.
	PeakOutputPerS  float64 `json:"peak_output_tokens_per_s"`
	PeakConcurrency int     `json:"peak_concurrency"`
}

// RateDist is a distribution of rates: its low percentiles are the slow
// requests.
type RateDist struct {
	Min float64 `json:"min"`
	P10 float64 `json:"p10"`
	P50 float64 `json:"p50"`
	Avg float64 `json:"avg"`
	Max float64 `json:"max"`
}

// tokenAcc gathers a stage's token figures and goodput, per operation.
type tokenAcc struct {
	ws   int64 // window start, the origin of the per-second buckets
	good *goodBounds
	ops  map[string]*opTokens
	all  opTokens
}

type opTokens struct {
	requests, chunkCounted int64
	input, output          int64
	perReq                 []float64
	tokPerSec              []float64 // output tokens per second of the window
	activePerSec           []int32   // successful requests active per second
	good                   int64
}

// addTokens takes one measured row of the stage (the pipeline's ingest
// calls it for every row inside the window).
func (c *collector) addTokens(st *stageAcc, r *captures.Result, failed bool, e *opEntry) {
	a := st.tokens
	if a == nil {
		a = &tokenAcc{ws: st.ws, ops: map[string]*opTokens{}, good: goodBoundsOf(c.info, st.info.Scenario)}
		st.tokens = a
	}
	op := e.tok
	if op == nil {
		op = a.ops[r.Operation]
		if op == nil {
			op = &opTokens{}
			a.ops[r.Operation] = op
		}
		e.tok = op
	}
	if failed || r.ErrorKind == runspec.ErrCutOff || r.StartNS == 0 {
		return
	}
	// rt is filled in place and handed on by pointer: copying its nine
	// fields in and out of each call was a twentieth of the analysis.
	var rt requestTokens
	rt.of(r)
	good := a.good.holds(&rt)
	op.add(r, &rt, a.ws, good)
	a.all.add(r, &rt, a.ws, good)
}

// requestTokens is one successful request as the token figures read it.
type requestTokens struct {
	output     int64
	chunks     bool    // output is a chunk count
	times      []int64 // ns from start of a stream's output arrivals; nil: all at the end
	ttftNS     int64   // TTFT, else TTFB, else the duration
	lastNS     int64   // last event of a stream, else the duration
	e2eNS      int64
	streamed   bool
	tpotNS     float64 // (last − TTFT)/(output − 1); 0 when output ≤ 1
	perRequest float64 // tokens/s one request saw; 0 when not known
}

// of reads a successful row's output count and timings into rt.
// TTFT is the first event with content (replay's rule); the stream's
// events from there on are its output arrivals, less a closing [DONE].
func (rt *requestTokens) of(r *captures.Result) {
	*rt = requestTokens{e2eNS: r.DurationNS, output: r.CompletionTokens, ttftNS: r.TTFTNS, lastNS: r.DurationNS}
	offs := r.ChunkOffsetsNS
	first := -1
	if r.TTFTNS > 0 {
		first = slices.IndexFunc(offs, func(o int64) bool { return o >= r.TTFTNS })
	}
	if first >= 0 {
		rt.streamed = true
		rt.times = offs[first:]
		if len(rt.times) >= 2 {
			rt.times = rt.times[:len(rt.times)-1] // the closing [DONE]
		}
		rt.lastNS = offs[len(offs)-1]
		if rt.output == 0 {
			rt.output, rt.chunks = int64(len(rt.times)), true
		}
	} else {
		if rt.ttftNS == 0 {
			rt.ttftNS = r.TTFBNS
		}
		if rt.ttftNS == 0 {
			rt.ttftNS = r.DurationNS
		}
	}
	if rt.streamed && rt.output > 1 && rt.lastNS > rt.ttftNS {
		rt.tpotNS = float64(rt.lastNS-rt.ttftNS) / float64(rt.output-1)
		rt.perRequest = 1e9 / rt.tpotNS
	} else if !rt.streamed && rt.output > 0 && r.DurationNS > 0 {
		rt.perRequest = float64(rt.output) / (float64(r.DurationNS) / 1e9)
	}
}

func (o *opTokens) add(r *captures.Result, rt *requestTokens, ws int64, good bool) {
	if good {
		o.good++
	}
	start := r.StartNS - ws
	// Active seconds: from the one it started in to the one it ended in.
	for s := second(start); s <= second(start+r.DurationNS) && s < maxTokenSeconds; s++ {
		if s >= 0 {
			o.activePerSec = grow(o.activePerSec, s)
			o.activePerSec[s]++
		}
	}
	if rt.output <= 0 {
		return
	}
	o.requests++
	if rt.chunks {
		o.chunkCounted++
	}
	o.input += r.PromptTokens
	o.output += rt.output
	if rt.perRequest > 0 {
		o.perReq = append(o.perReq, rt.perRequest)
	}
	// One token per event, in order, while there are as many events as
	// tokens (vLLM's rule, exact for a server that sends one token per
	// chunk); otherwise the tokens are spread evenly over the events.
	times, each := rt.times, 1.0
	switch {
	case len(times) == 0: // a whole response: every token at its end
		if s := second(start + r.DurationNS); s >= 0 && s < maxTokenSeconds {
			o.tokPerSec = grow(o.tokPerSec, s)
			o.tokPerSec[s] += float64(rt.output)
		}
	case int64(len(times)) >= rt.output:
		times = times[:rt.output]
	default:
		each = float64(rt.output) / float64(len(times))
	}
	for _, t := range times {
		if s := second(start + t); s >= 0 && s < maxTokenSeconds {
			o.tokPerSec = grow(o.tokPerSec, s)
			o.tokPerSec[s] += each
		}
	}
}

func second(ns int64) int {
	if ns < 0 {
		return -1
	}
	return int(ns / int64(time.Second))
}

func grow[T any](v []T, i int) []T {
	if i < len(v) {
		return v
	}
	return append(v, make([]T, i+1-len(v))...)
}

// fill sets each operation's Tokens (when it had output counts) and
// Goodput (when the scenario sets goodput bounds). A stage without rows
// has no accumulator.
func (a *tokenAcc) fill(s *Stage) {
	if a == nil {
		return
	}
	for name, op := range a.ops {
		if o := s.Operations[name]; o != nil {
			op.fill(o, s.WindowS, a.good)
		}
	}
	if o := s.Operations[AllOps]; o != nil {
		a.all.fill(o, s.WindowS, a.good)
	}
}

func (op *opTokens) fill(o *OpStats, window float64, good *goodBounds) {
	o.Goodput = good.stats(op.good, o.Count, window)
	if op.requests == 0 || window <= 0 {
		return
	}
	t := &TokenStats{Counting: CountUsage, Requests: op.requests, ChunkCounted: op.chunkCounted,
		InputTokens: op.input, OutputTokens: op.output,
		OutputPerS: float64(op.output) / window, TotalPerS: float64(op.input+op.output) / window,
		RequestsPerS: o.OKRPS}
	switch {
	case op.chunkCounted == op.requests:
		t.Counting = CountChunks
	case op.chunkCounted > 0:
		t.Counting = CountMixed
	}
	if len(op.perReq) > 0 {
		sortPositiveFloats(op.perReq) // the same order as slices.Sort, so the same mean
		t.PerRequest = &RateDist{Min: op.perReq[0], P10: percentileF(op.perReq, 0.10), P50: percentileF(op.perReq, 0.50),
			Avg: mean(op.perReq), Max: op.perReq[len(op.perReq)-1]}
	}
	for _, v := range op.tokPerSec {
		t.PeakOutputPerS = math.Max(t.PeakOutputPerS, v)
	}
	for _, v := range op.activePerSec {
		t.PeakConcurrency = max(t.PeakConcurrency, int(v))
	}
	o.Tokens = t
}

// percentileF is Percentile's nearest-rank rule on sorted float64s.
func percentileF(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(n))) - 1
	return sorted[min(max(i, 0), n-1)]
}

// Counting is how the stage's output tokens were counted over all its
// operations: usage, chunks, mixed, or "" when none had counts.
func (s *Stage) Counting() string {
	if o := s.Operations[AllOps]; o != nil && o.Tokens != nil {
		return o.Tokens.Counting
	}
	return ""
}

// merge adds what another collector's stage gathered (merge.go).
func (a *tokenAcc) merge(o *tokenAcc) *tokenAcc {
	if a == nil {
		return o
	}
	if o == nil {
		return a
	}
	for name, oo := range o.ops {
		if x := a.ops[name]; x != nil {
			x.merge(oo)
		} else {
			a.ops[name] = oo
		}
	}
	a.all.merge(&o.all)
	return a
}

func (op *opTokens) merge(o *opTokens) {
	op.requests += o.requests
	op.chunkCounted += o.chunkCounted
	op.input += o.input
	op.output += o.output
	op.good += o.good
	op.perReq = append(op.perReq, o.perReq...)
	if n := len(o.tokPerSec); n > 0 {
		op.tokPerSec = grow(op.tokPerSec, n-1)
		for i, v := range o.tokPerSec {
			op.tokPerSec[i] += v
		}
	}
	if n := len(o.activePerSec); n > 0 {
		op.activePerSec = grow(op.activePerSec, n-1)
		for i, v := range o.activePerSec {
			op.activePerSec[i] += v
		}
	}
}
