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

// A scenario with token figures gets the three token figures, and a
// queueing finding shows the TTFT and the TPOT ones; one without gets none.
func TestTokenFigures(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	var stages []*analyze.Stage
	for i, users := range []int{1, 8, 32} {
		u := float64(users)
		lat := analyze.Latency{Min: 1, Avg: 500, P50: 500, P90: 600, P95: 650, P99: 700, Max: 800}
		o := &analyze.OpStats{Count: 100, LatencyMS: lat,
			TTFTMS: &analyze.Latency{Min: 1, Avg: 30 * u, P50: 30 * u, P90: 40 * u, P95: 45 * u, P99: 50 * u, Max: 60 * u},
			TPOTMS: &analyze.Latency{Min: 1, Avg: 10, P50: 10, P90: 11, P95: 12, P99: 13, Max: 14},
			Tokens: &analyze.TokenStats{Counting: analyze.CountUsage, Requests: 100, OutputTokens: 4000, OutputPerS: 40 * u, PeakOutputPerS: 50 * u,
				PerRequest: &analyze.RateDist{Min: nan, P10: 90, P50: 100 / u, Avg: 100, Max: 110}}}
		stages = append(stages, &analyze.Stage{Scenario: "llm", Stage: i + 1, Users: users, Trustworthy: true, Steady: true,
			Operations: map[string]*analyze.OpStats{analyze.AllOps: o, "chat.completions": o}})
	}
	plain := &analyze.Stage{Scenario: "rag", Stage: 1, Users: 1, Trustworthy: true, Steady: true,
		Operations: map[string]*analyze.OpStats{analyze.AllOps: {Count: 1, LatencyMS: analyze.Latency{Min: 1, Avg: 1, P50: 1, P90: 1, P95: 1, P99: 1, Max: 1}}}}
	s := &analyze.Summary{Stages: append(stages, plain), Findings: []analyze.Finding{{Kind: analyze.KindQueueing, Scenario: "llm"}},
		Scenarios: []*analyze.Scenario{{Name: "llm"}, {Name: "rag"}}}
	figs, err := figures(s)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, f := range figs {
		if strings.HasPrefix(f.Kind, "tokens_") {
			kinds[f.Kind] = f.Scenario
			if len(f.PNG) == 0 || !strings.Contains(string(f.SVG), "<svg") {
				t.Errorf("%s: empty figure", f.Name)
			}
		}
	}
	for _, k := range []string{"tokens_ttft", "tokens_tpot", "tokens_throughput", "tokens_tradeoff"} {
		if kinds[k] != "llm" {
			t.Errorf("figure %s: scenario %q, want llm (got %v)", k, kinds[k], kinds)
		}
	}
	if len(kinds) != 4 {
		t.Errorf("token figures %v, want four, none for rag", kinds)
	}
	if f := figuresFor(s.Findings[0], figs); len(f) != 2 || f[0].Kind != "tokens_ttft" || f[1].Kind != "tokens_tpot" {
		t.Errorf("queueing shows %d figures, want the TTFT and the TPOT one", len(f))
	}
}
