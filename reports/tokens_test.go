package reports

import (
	"math"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/analyze"
)

// The token table shows in both reports when a stage has token figures,
// says how they were counted, and is absent for a scenario without tokens.
func TestTokenTable(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	lat := analyze.Latency{Min: nan, Avg: nan, P50: nan, P90: nan, P95: nan, P99: nan, Max: nan}
	stage := func(scenario string, tokens *analyze.TokenStats, good *analyze.GoodputStats) *analyze.Stage {
		o := &analyze.OpStats{Count: 10, LatencyMS: lat, Tokens: tokens, Goodput: good}
		return &analyze.Stage{Scenario: scenario, Stage: 1, Users: 4, Trustworthy: true, Steady: true,
			Operations: map[string]*analyze.OpStats{analyze.AllOps: o, "chat.completions": o}}
	}
	tk := &analyze.TokenStats{Counting: analyze.CountChunks, Requests: 10, ChunkCounted: 10, OutputTokens: 4321, OutputPerS: 43.21,
		TotalPerS: 500, RequestsPerS: 1, PerRequest: &analyze.RateDist{P10: 17, P50: 23.5}, PeakOutputPerS: 777, PeakConcurrency: 6}
	s := &analyze.Summary{Findings: []analyze.Finding{},
		Stages:    []*analyze.Stage{stage("llm", tk, &analyze.GoodputStats{Good: 9, PerS: 0.9, Share: 0.9, TTFTMS: 500}), stage("rag", nil, nil)},
		Scenarios: []*analyze.Scenario{{Name: "llm"}, {Name: "rag"}}}
	md := Markdown(s, nil)
	page, err := HTML(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"report.md": md, "report.html": string(page)} {
		if n := strings.Count(text, "Tokens and goodput per stage"); n != 1 {
			t.Errorf("%s: %d token tables, want 1 (llm only)", name, n)
		}
		for _, want := range []string{"4321 (chunks)", "43.2", "777", "23.5 (17)", "chunk counts", "TTFT ≤ 500 ms"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
	}
	tk.Counting, tk.ChunkCounted = analyze.CountUsage, 0
	if md := Markdown(s, nil); strings.Contains(md, "chunk counts") || !strings.Contains(md, "from each response's usage") {
		t.Errorf("usage counting not said:\n%s", md)
	}
}
