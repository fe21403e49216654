package reports

import (
	"bytes"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/runspec"
)

func ptr[T any](v T) *T { return &v }

// nineTargets is a run of eight passed targets and one failed one, with a
// medium finding of another scenario ranked before nothing and a high one
// that explains the miss.
func nineTargets() *analyze.Summary {
	s := &analyze.Summary{Run: analyze.RunMeta{ID: "r1"}}
	s.Stages = []*analyze.Stage{{Scenario: "mcp", Stage: 2, Users: 20, Mode: "closed"}, {Scenario: "gen", Stage: 1, Users: 5, Mode: "open"}}
	for i := range 8 {
		s.Targets = append(s.Targets, analyze.TargetResult{Scenario: "gateway", Metric: "p95", Operation: "all", Bound: float64(100 + i), Unit: "ms", Max: true, Value: ptr(50.0), Verdict: analyze.Pass})
	}
	s.Targets = append(s.Targets, analyze.TargetResult{Scenario: "mcp", Metric: "p95", Operation: "all", Stage: ptr(2), Users: 20, Bound: 500, Acceptable: 625, Unit: "ms", Max: true, Value: ptr(862.0), Verdict: analyze.Fail})
	s.Findings = []analyze.Finding{
		{Kind: analyze.KindSerialization, Scenario: "mcp", Operation: "all", Severity: analyze.SeverityHigh, Summary: "mcp handles one request at a time."},
		{Kind: analyze.KindTailAmplification, Scenario: "gateway", Operation: "all", Severity: analyze.SeverityMedium, Summary: "gateway's tail grows."},
	}
	return s
}

// The CLI's first line counts targets by verdict (the old one printed
// "FAIL: 9 target(s), 1 finding(s)" for 8 passed and 1 failed), the failed
// target follows with its value, bound, stage and explaining finding, and
// the report's path has no doubled slash.
func TestTextLeadsWithTheFailedTarget(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := Text(&b, nineTargets(), TextOptions{Dir: "out/"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if want := "FAIL: 1 of 9 targets failed, 8 passed; 2 findings (1 high, 1 medium)"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if lines[1] != "Failed targets:" || !strings.Contains(lines[2], "862 ms against a bound of ≤ 500 ms at stage 2 (20 users)") {
		t.Errorf("lines 2-3 %q, want the failed target with value, bound and stage", lines[1:3])
	}
	if !strings.Contains(lines[3], "explained by serialization (high)") {
		t.Errorf("line 4 %q, want the finding that explains the miss", lines[3])
	}
	if last := lines[len(lines)-1]; last != "Report: out/report.html" {
		t.Errorf("last line %q, want Report: out/report.html", last)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("colours without TextOptions.Color")
	}
}

// A finding of the wrong family or scenario does not explain a miss: an
// error-rate target is not explained by serialization.
func TestExplains(t *testing.T) {
	t.Parallel()
	errTarget := analyze.TargetResult{Scenario: "rag", Metric: "error_rate", Operation: "all", Verdict: analyze.Fail}
	opTarget := analyze.TargetResult{Scenario: "rag", Metric: "p95", Operation: "search", Verdict: analyze.Fail}
	cases := []struct {
		name string
		f    analyze.Finding
		t    analyze.TargetResult
		want bool
	}{
		{"pool exhaustion explains errors", analyze.Finding{Kind: analyze.KindPoolExhaustion, Scenario: "rag"}, errTarget, true},
		{"serialization does not explain errors", analyze.Finding{Kind: analyze.KindSerialization, Scenario: "rag"}, errTarget, false},
		{"another scenario's finding does not", analyze.Finding{Kind: analyze.KindTimeouts, Scenario: "gateway"}, errTarget, false},
		{"another operation's finding does not", analyze.Finding{Kind: analyze.KindTailAmplification, Scenario: "rag", Operation: "upsert"}, opTarget, false},
		{"the same operation's does", analyze.Finding{Kind: analyze.KindTailAmplification, Scenario: "rag", Operation: "search"}, opTarget, true},
		{"a scenario-wide finding does", analyze.Finding{Kind: analyze.KindSerialization, Scenario: "rag", Operation: "all"}, opTarget, true},
		{"requests queueing for a batch slot explain latency", analyze.Finding{Kind: analyze.KindQueueing, Scenario: "rag", Operation: "search"}, opTarget, true},
		{"a slower decode explains latency", analyze.Finding{Kind: analyze.KindDecodeSlowdown, Scenario: "rag", Operation: "search"}, opTarget, true},
		{"queueing does not explain errors", analyze.Finding{Kind: analyze.KindQueueing, Scenario: "rag"}, errTarget, false},
		{"a GPU finding listing the miss does", analyze.Finding{Kind: analyze.KindGPUMemoryPressure, Scenario: "gateway",
			Evidence: &analyze.GPUMemoryEvidence{ConcurrentTargetMisses: []string{"rag p95 search (4100 ms against 3000 ms at 50 users)"}}},
			opTarget, true},
		{"a GPU finding listing another target does not", analyze.Finding{Kind: analyze.KindGPUMemoryPressure, Scenario: "gateway",
			Evidence: &analyze.GPUMemoryEvidence{ConcurrentTargetMisses: []string{"rag p95 search stage 2 (4100 ms against 3000 ms at 50 users)"}}},
			opTarget, false},
	}
	for _, tc := range cases {
		if got := explains(tc.f, tc.t); got != tc.want {
			t.Errorf("%s: explains = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// compare's summary leads with what changed: a flipped target, a finding
// that appeared, the significant operation with its tiny p-value in
// scientific notation, coloured when asked.
func TestTextCompareLeadsWithChanges(t *testing.T) {
	t.Parallel()
	s := nineTargets()
	s.Comparison = &analyze.Comparison{
		Base:     analyze.RunMeta{ID: "r0"},
		Targets:  []analyze.TargetChange{{Name: "mcp p95", Unit: "ms", Base: ptr(400.0), New: ptr(862.0), BaseVerdict: analyze.Pass, NewVerdict: analyze.Fail}},
		Appeared: []analyze.Finding{{Kind: analyze.KindSerialization, Scenario: "mcp", Operation: "all", Severity: analyze.SeverityHigh}},
		Operations: []analyze.OpChange{
			{Scenario: "mcp", Stage: 2, Users: 20, Operation: "all", P50: analyze.Delta{Base: 100, New: 300, ChangePct: 200}, P95: analyze.Delta{Base: 400, New: 862, ChangePct: 115.5}, LatencyP: 3.2e-12, Verdict: "slower"},
			{Scenario: "gateway", Stage: 1, Users: 1, Operation: "all", LatencyP: 0.4, Verdict: "no significant change"},
		},
	}
	var b bytes.Buffer
	if err := Text(&b, s, TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Compared with r0:", "mcp p95: pass → fail (400 ms → 862 ms)", ansiRed + "appeared" + ansiReset + " serialization mcp [high]",
		ansiRed + "slower" + ansiReset, "(p = 3.2e-12)"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "gateway stage 1") {
		t.Error("an operation with no significant change is listed among the changes")
	}
	figs := []Figure{}
	html, err := HTML(s, figs)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := bytes.Index(html, []byte(`id="changes"`)), bytes.Index(html, []byte("Findings, by severity")); i < 0 || i > j {
		t.Error("report.html: the changes do not come before the findings")
	}
	if !bytes.Contains(html, []byte(`<li class="slower">slower: mcp stage 2 (20 users)`)) || !bytes.Contains(html, []byte("3.2e-12")) {
		t.Error("report.html: the slower operation is not listed, coloured, with its p-value")
	}
	md := Markdown(s, figs)
	if !strings.Contains(md, "## What changed since r0\n\n- 🔴 target mcp p95: pass → fail") {
		t.Errorf("report.md does not lead the comparison with the flipped target:\n%s", md)
	}
}

// The first screen of report.html: the banner names the failed target, not
// the first finding.
func TestHTMLBannerNamesTheFailedTarget(t *testing.T) {
	t.Parallel()
	html, err := HTML(nineTargets(), nil)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(html, []byte(`id="verdict"`))
	j := bytes.Index(html[i:], []byte("</div>"))
	banner := string(html[i : i+j])
	for _, want := range []string{"1 of 9 targets failed, 8 passed", "862 ms against a bound of ≤ 500 ms at stage 2 (20 users)", "Explained by", "serialization (high)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "tail") {
		t.Errorf("banner names the medium finding of another scenario:\n%s", banner)
	}
}

// A bound scaled by the run's time scale says so, with the bound as
// written.
func TestBoundTextScaled(t *testing.T) {
	t.Parallel()
	lat := analyze.TargetResult{Bound: 200, Unit: "ms", Max: true, TimeScale: 0.1}
	if got, want := boundText(lat), "≤ 200 ms (2000 ms × time scale 0.1)"; got != want {
		t.Errorf("latency: %q, want %q", got, want)
	}
	rps := analyze.TargetResult{Bound: 100, Unit: "req/s", TimeScale: 0.1}
	if got, want := boundText(rps), "≥ 100 req/s (10 req/s ÷ time scale 0.1)"; got != want {
		t.Errorf("rate: %q, want %q", got, want)
	}
	if got := boundText(analyze.TargetResult{Bound: 1, Unit: "%", Max: true}); got != "≤ 1 %" {
		t.Errorf("unscaled: %q", got)
	}
}

// An open-mode stage reads as its arrival rate, not as users.
func TestLoadText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		st   analyze.Stage
		want string
	}{
		{analyze.Stage{Users: 20, Mode: "open", Rate: 20}, "20 arrivals/s"},
		{analyze.Stage{Users: 3, Mode: "open", Rate: 2.5}, "2.5 arrivals/s"},
		{analyze.Stage{Users: 1, Mode: "closed"}, "1 user"},
		{analyze.Stage{Users: 50, Mode: "sessions"}, "50 users"},
	} {
		if got := loadText(&c.st); got != c.want {
			t.Errorf("loadText(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}

func TestReportPath(t *testing.T) {
	t.Parallel()
	for dir, want := range map[string]string{"out/": "out/report.html", "out": "out/report.html", "/tmp//x/": "/tmp/x/report.html", "s3://bucket/runs/": "s3://bucket/runs/report.html"} {
		if got := reportPath(dir); got != want {
			t.Errorf("reportPath(%q) = %q, want %q", dir, got, want)
		}
	}
}

// The exchanges left out of the pools, and the scenarios that kept them,
// are in both reports.
func TestLeftOutInReports(t *testing.T) {
	t.Parallel()
	s := nineTargets()
	s.Run.LeftOut = []runspec.LeftOut{{Scenario: "gateway", Service: "gw", Operation: "chat.completions", Reason: "HTTP 404", Count: 3}}
	s.Run.IncludeFailed = []string{"mcp"}
	html, err := HTML(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	md := Markdown(s, nil)
	for _, want := range []string{"scenario gateway: left out 3 × HTTP 404 chat.completions (gw)", "scenario mcp replayed the exchanges that failed when recorded too"} {
		if !strings.Contains(string(html), want) || !strings.Contains(md, want) {
			t.Errorf("report.html or report.md lacks %q", want)
		}
	}
}
