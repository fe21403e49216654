package reports

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/analyze/analyzetest"
	"github.com/loadtape/loadtape/runspec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// demoLike is the demo's three scenarios running at once, each with its
// planted bottleneck: a GPU-bound gateway that runs out of GPU memory, a
// RAG service whose pool times out, and an MCP server with one worker.
func demoLike(t testing.TB) *analyze.Summary {
	t.Helper()
	gw := analyzetest.GPUBound
	gw.PromGPU = true
	gw.Users = []int{1, 10, 50, 100}
	gw.Fail = func(r *rand.Rand, users int) (string, string) {
		if users >= 50 && r.Float64() < 0.05 {
			return runspec.ErrHTTP5xx, "HTTP 500: CUDA out of memory. Tried to allocate 64.00 MiB"
		}
		return "", ""
	}
	rag := analyzetest.Pool
	rag.ErrKind, rag.ErrText = runspec.ErrVectorTimeout, `HTTP 504: {"status":{"error":"Timeout error: qdrant search timed out"}}`
	mcp := analyzetest.Serialized
	r1, rows1, s1 := analyzetest.Simulate(gw, 1)
	r2, rows2, s2 := analyzetest.Simulate(rag, 2)
	r3, rows3, s3 := analyzetest.Simulate(mcp, 3)
	run := analyzetest.Combine("demo-run", r1, r2, r3)
	var info analyze.RunInfo
	if err := json.Unmarshal(run.JSON(), &info); err != nil {
		t.Fatal(err)
	}
	rows := slices.Concat(rows1, rows2, rows3)
	for i := range rows {
		rows[i].Run = info.ID
	}
	targets := []analyze.TargetSpec{
		{Scenario: "gateway", Metric: "p95", Max: "2s"},
		{Scenario: "gateway", Metric: "error_rate", Max: "1%"},
		{Scenario: "rag", Metric: "p95", Max: "3s"},
		{Scenario: "rag", Metric: "error_rate", ErrorKind: "vector_timeout", Max: "0.1%"},
		{Scenario: "mcp", Metric: "p95", Max: "500ms"},
		{Scenario: "mcp", Metric: "count", ErrorKind: "sandbox_violation", Max: "0"},
	}
	s, err := analyze.Summarize(&info, rows, slices.Concat(s1, s2, s3), targets, 0.8, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDemoLikeFindings(t *testing.T) {
	t.Parallel()
	s := demoLike(t)
	var got []string
	for _, f := range s.Findings {
		got = append(got, string(f.Kind)+"/"+f.Scenario)
	}
	slices.Sort(got)
	want := []string{"gpu_memory_pressure/gateway", "pool_exhaustion/rag", "serialization/mcp", "timeouts/rag"}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
	if !Failed(s) {
		t.Error("the RAG timeouts miss their target: want FAIL")
	}
}

// Golden files: the seeded run renders to exactly these bytes; refresh
// them with go test ./reports -update after a deliberate change.
func TestGolden(t *testing.T) {
	t.Parallel()
	s := demoLike(t)
	figs, err := figures(s)
	if err != nil {
		t.Fatal(err)
	}
	js, err := SummaryJSON(s)
	if err != nil {
		t.Fatal(err)
	}
	junit, err := JUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	html, err := HTML(s, figs)
	if err != nil {
		t.Fatal(err)
	}
	// The inline PNGs are left out: their bytes depend on the rasteriser,
	// and the figures are checked in the browser test.
	html = regexp.MustCompile(`data:image/png;base64,(?:[A-Za-z0-9/=]|&#43;)+`).ReplaceAll(html, []byte("data:image/png;base64,…"))
	for name, got := range map[string][]byte{"report.md": []byte(Markdown(s, figs)), "summary.json": js, "junit.xml": junit, "report.html": html} {
		path := filepath.Join("testdata", "golden", name)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./reports -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (go test ./reports -update refreshes it); first difference near: %s", name, path, firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			lo := max(0, i-60)
			return strings.ReplaceAll(string(a[lo:min(len(a), i+60)]), "\n", "⏎")
		}
	}
	return "(one is a prefix of the other)"
}

// summary.json holds exactly its documented top-level keys and its stage and
// target shapes.
func TestSummaryJSONKeys(t *testing.T) {
	t.Parallel()
	js, err := SummaryJSON(demoLike(t))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"failures", "findings", "run", "schema", "series", "stages", "targets"}; !slices.Equal(keys, want) {
		t.Errorf("top-level keys %v, want %v", keys, want)
	}
	stage := m["stages"].([]any)[0].(map[string]any)
	for _, k := range []string{"scenario", "stage", "name", "users", "start", "end", "trustworthy", "operations", "resources"} {
		if _, ok := stage[k]; !ok {
			t.Errorf("stage lacks %q", k)
		}
	}
	all := stage["operations"].(map[string]any)["all"].(map[string]any)
	for _, k := range []string{"count", "rps", "error_rate", "errors", "latency_ms"} {
		if _, ok := all[k]; !ok {
			t.Errorf("operations.all lacks %q", k)
		}
	}
	lat := all["latency_ms"].(map[string]any)
	for _, k := range []string{"min", "avg", "p50", "p90", "p95", "p99", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms lacks %q", k)
		}
	}
	target := m["targets"].([]any)[0].(map[string]any)
	for _, k := range []string{"scenario", "metric", "operation", "stage", "bound", "acceptable", "unit", "value", "verdict"} {
		if _, ok := target[k]; !ok {
			t.Errorf("target lacks %q", k)
		}
	}
	failure := m["failures"].([]any)[0].(map[string]any)
	for _, k := range []string{"scenario", "operation", "error_kind", "message", "count", "share", "first", "last", "first_s", "last_s", "example"} {
		if _, ok := failure[k]; !ok {
			t.Errorf("failure lacks %q", k)
		}
	}
	series := m["series"].(map[string]any)
	point := series["scenarios"].(map[string]any)["all"].([]any)[0].(map[string]any)
	for _, k := range []string{"t", "users", "requests", "failures", "rps", "failures_per_s", "tokens_per_s", "p50_ms", "p95_ms", "p99_ms"} {
		if _, ok := point[k]; !ok {
			t.Errorf("series point lacks %q", k)
		}
	}
	finding := m["findings"].([]any)[0].(map[string]any)
	for _, k := range []string{"kind", "scenario", "operation", "severity", "summary", "evidence"} {
		if _, ok := finding[k]; !ok {
			t.Errorf("finding lacks %q", k)
		}
	}
}

func TestWriteAllOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Write(dir, demoLike(t)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"report.html", "report.md", "summary.json", "junit.xml", "stats.csv", "stats_history.csv", "failures.csv",
		"figures/latency_mcp.svg", "figures/latency_mcp.png", "figures/throughput_mcp.png", "figures/cdf_rag.svg",
		"figures/errors_gateway.png", "figures/timeline.svg", "figures/timeline.png"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	for _, bad := range []string{"http://", "https://", "<script"} {
		if bytes.Contains(html, []byte(bad)) {
			t.Errorf("report.html contains %q: it must open with no network", bad)
		}
	}
	junit, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if n := bytes.Count(junit, []byte("<testcase ")); n != 6 {
		t.Errorf("junit.xml: %d test cases, want one per target (6)", n)
	}
}

// compare's outputs: the comparison tables in both reports, a figure per
// scenario, and the comparison key in summary.json.
func TestWriteComparison(t *testing.T) {
	t.Parallel()
	base, next := demoLike(t), demoLike(t)
	next.Comparison = analyze.CompareSummaries(base, next)
	dir := t.TempDir()
	if err := Write(dir, next); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"figures/compare_mcp.png", "figures/compare_rag.svg"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !bytes.Contains(html, []byte(`id="compare-operations"`)) || !bytes.Contains(md, []byte("## Comparison with demo-run")) {
		t.Error("comparison section missing from report.html or report.md")
	}
	js, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	var m struct {
		Comparison struct {
			Operations []struct{ Verdict string } `json:"operations"`
		} `json:"comparison"`
	}
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Comparison.Operations) == 0 {
		t.Fatal("summary.json: no comparison.operations")
	}
	for _, o := range m.Comparison.Operations {
		if o.Verdict != "no significant change" {
			t.Errorf("a run against itself: verdict %q", o.Verdict)
		}
	}
}
