package replay

import (
	"testing"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// The endpoint counts output tokens from usage, else the stream's chunks
// (labelled so), and times TTFT and the gaps between events of successful
// streams only.
func TestMetricsTokens(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	ms := int64(1e6)
	stream := captures.Result{Scenario: "g", Operation: "chat.completions", TTFTNS: 100 * ms, DurationNS: 400 * ms,
		ChunkOffsetsNS: []int64{50 * ms, 100 * ms, 200 * ms, 300 * ms, 400 * ms}} // role, 3 content, [DONE]
	withUsage := stream
	withUsage.CompletionTokens = 12
	failed := stream
	failed.ErrorKind = runspec.ErrHTTP5xx
	whole := captures.Result{Scenario: "g", Operation: "chat.completions", DurationNS: 300 * ms, CompletionTokens: 30}
	mcp := captures.Result{Scenario: "g", Operation: "tools/call", DurationNS: 10 * ms}
	m.observe([]captures.Result{stream, withUsage, failed, whole, mcp})

	tokens := counters(t, m, "loadtape_output_tokens_total")
	if got := tokens["chat.completions/usage"]; got != 42 {
		t.Errorf("usage tokens %v, want 12 + 30", got)
	}
	if got := tokens["chat.completions/chunks"]; got != 3 {
		t.Errorf("chunk-counted tokens %v, want the 3 events from the first token, [DONE] left out", got)
	}
	if len(tokens) != 2 {
		t.Errorf("token series %v, want 2 (none for tools/call)", tokens)
	}
	// Two successful streams: 2 TTFTs and 2 × 4 gaps.
	if got := histCount(t, m, "loadtape_ttft_seconds"); got != 2 {
		t.Errorf("%d TTFT observations, want 2", got)
	}
	if got := histCount(t, m, "loadtape_itl_seconds"); got != 8 {
		t.Errorf("%d ITL observations, want 8", got)
	}
}

func histCount(t *testing.T, m *metrics, name string) uint64 {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, f := range fams {
		if f.GetName() == name {
			for _, mt := range f.GetMetric() {
				n += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// counters are a counter family's values by "operation/counting".
func counters(t *testing.T, m *metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["operation"]+"/"+l["counting"]] = mt.GetCounter().GetValue()
		}
	}
	return out
}
