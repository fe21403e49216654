package replay

import (
	"strings"
	"testing"
	"time"
)

// A scenario's goodput bounds reach run.json; bad bounds and goodput
// targets without bounds stop the run, naming the line.
func TestProfileGoodput(t *testing.T) {
	t.Parallel()
	const base = `scenarios:
  llm:
    service: gateway
    mode: closed
    mix: {chat.completions: 1}
    stages: [{users: 1, duration: 10s}]
`
	p, err := ParseProfile([]byte(base+"    goodput: {ttft: 500ms, tpot: 50ms, e2e: 10s}\ntargets:\n  - {scenario: llm, metric: good_share, min: 90%}\n  - {scenario: llm, metric: goodput, min: 2}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := p.record().Scenarios["llm"].Goodput
	if g == nil || g.TTFT.D() != 500*time.Millisecond || g.TPOT.D() != 50*time.Millisecond || g.E2E.D() != 10*time.Second {
		t.Fatalf("run.json goodput %+v, want ttft 500ms, tpot 50ms, e2e 10s", g)
	}
	for _, c := range []struct{ why, yaml, want string }{
		{"a negative bound", base + "    goodput: {ttft: -1s}\n", "p.yaml:7:"},
		{"no bound at all", base + "    goodput: {}\n", "needs at least one of ttft"},
		{"an unknown bound", base + "    goodput: {ttfb: 1s}\n", "p.yaml:7:"},
		{"not a duration", base + "    goodput: {e2e: fast}\n", "want a duration"},
		{"a goodput target without bounds", base + "targets:\n  - {scenario: llm, metric: goodput, min: 1}\n", "p.yaml:8:21: target 1: goodput needs goodput bounds"},
	} {
		_, err := ParseProfile([]byte(c.yaml), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.why, err, c.want)
		}
	}
}
