package replay

import (
	"fmt"
	"slices"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/prometheus/client_golang/prometheus"
)

// tokenMetrics are the endpoint's LLM series: output tokens counted (from
// usage, else the stream's chunks, labelled so), and the TTFT and
// inter-chunk latency histograms of successful streams.
type tokenMetrics struct {
	tokens *prometheus.CounterVec
	ttft   *prometheus.HistogramVec
	itl    *prometheus.HistogramVec
	series map[[2]string]*tokenSeries
}

type tokenSeries struct {
	usage, chunks prometheus.Counter
	ttft, itl     prometheus.Observer
}

func newTokenMetrics(reg *prometheus.Registry) *tokenMetrics {
	t := &tokenMetrics{series: map[[2]string]*tokenSeries{}}
	t.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loadtape_output_tokens_total",
		Help: "Output tokens of successful requests, by scenario and operation; counting=usage from the response's usage, counting=chunks the stream's events from the first token on where it had no usage (chunks, not tokens)."},
		[]string{"scenario", "operation", "counting"})
	t.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loadtape_ttft_seconds", Help: "Time to the first event with content of successful streams.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"scenario", "operation"})
	t.itl = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loadtape_itl_seconds", Help: "Gaps between consecutive events of successful streams (inter-chunk latency).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"scenario", "operation"})
	reg.MustRegister(t.tokens, t.ttft, t.itl)
	return t
}

// observe takes one written row (under the metrics' lock).
func (t *tokenMetrics) observe(r *captures.Result) {
	if r.ErrorKind != "" {
		return
	}
	offs := r.ChunkOffsetsNS
	if r.CompletionTokens == 0 && r.TTFTNS == 0 {
		return // not a token stream nor a response with usage
	}
	k := [2]string{r.Scenario, r.Operation}
	s := t.series[k]
	if s == nil {
		s = &tokenSeries{usage: t.tokens.WithLabelValues(r.Scenario, r.Operation, "usage"), chunks: t.tokens.WithLabelValues(r.Scenario, r.Operation, "chunks"),
			ttft: t.ttft.WithLabelValues(r.Scenario, r.Operation), itl: t.itl.WithLabelValues(r.Scenario, r.Operation)}
		t.series[k] = s
	}
	if r.TTFTNS > 0 {
		s.ttft.Observe(float64(r.TTFTNS) / 1e9)
		for i := 1; i < len(offs); i++ {
			s.itl.Observe(float64(offs[i]-offs[i-1]) / 1e9)
		}
	}
	if n, chunks := outputTokens(r); chunks {
		s.chunks.Add(float64(n))
	} else {
		s.usage.Add(float64(n))
	}
}

// outputTokens is a successful row's output count: usage's, else (chunks
// true) analyze's chunk count, the stream's events from the first token
// on less the closing [DONE]; 0 for a row with neither.
func outputTokens(r *captures.Result) (n int64, chunks bool) {
	if r.ErrorKind != "" {
		return 0, false
	}
	if r.CompletionTokens > 0 {
		return r.CompletionTokens, false
	}
	if r.TTFTNS == 0 {
		return 0, false
	}
	offs := r.ChunkOffsetsNS
	first := slices.IndexFunc(offs, func(o int64) bool { return o >= r.TTFTNS })
	if first < 0 {
		return 0, false
	}
	n = int64(len(offs) - first)
	if n >= 2 {
		n--
	}
	return n, true
}

// tokensText is the live line's output tokens per second of a stage
// (since the last call, or over the stage when finished), "" while it has
// none.
func (l *live) tokensText(scenario string, stage int, dt float64, finished bool, length time.Duration) string {
	l.mu.Lock()
	ls := l.stats[stageKey{scenario, int32(stage)}]
	if ls == nil || ls.tokens == 0 {
		l.mu.Unlock()
		return ""
	}
	total, delta := ls.tokens, ls.tokens-ls.lastTokens
	ls.lastTokens = ls.tokens
	l.mu.Unlock()
	rate := float64(delta) / max(dt, 1e-3)
	if finished {
		rate = float64(total) / max(length.Seconds(), 1e-3)
	}
	return fmt.Sprintf(" tok/s %.0f", rate)
}
