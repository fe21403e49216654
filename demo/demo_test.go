package demo_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/demo"
)

// The end-to-end test runs the real command, `loadtape demo --quick`, built
// without the race detector: the demo measures latency and send lag, and a
// race-instrumented load generator on a 2-core machine would (rightly) report
// itself saturated. The Makefile runs this package on its own, after the
// rest of the suite, so that no other test competes for the CPU.

// summary is the part of summary.json the test checks; decoding into
// map[string]any as well checks the documented keys are all there.
type summary struct {
	Schema int `json:"schema"`
	Run    struct {
		ID        string  `json:"id"`
		TimeScale float64 `json:"time_scale"`
	} `json:"run"`
	Stages []struct {
		Scenario   string                    `json:"scenario"`
		Users      int                       `json:"users"`
		Operations map[string]map[string]any `json:"operations"`
	} `json:"stages"`
	Targets []struct {
		Scenario string `json:"scenario"`
		Metric   string `json:"metric"`
		Verdict  string `json:"verdict"`
	} `json:"targets"`
	Findings []struct {
		Kind     string         `json:"kind"`
		Scenario string         `json:"scenario"`
		Severity string         `json:"severity"`
		Summary  string         `json:"summary"`
		Evidence map[string]any `json:"evidence"`
	} `json:"findings"`
}

func runDemo(t *testing.T, bin string, args ...string) (summary, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(bin, append([]string{"demo", "--quick", "--out", out}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("loadtape demo %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	t.Logf("loadtape demo --quick %v:\n%s", args, stdout.String())

	for _, f := range []string{"report/report.html", "report/report.md", "report/summary.json", "report/junit.xml", "run/run.json"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", f, err)
		}
	}
	// CI installs chromium; elsewhere the picture is taken when one is there.
	if _, err := exec.LookPath("chromium"); err == nil || os.Getenv("CI") != "" {
		if fi, err := os.Stat(filepath.Join(out, "report", "report.png")); err != nil || fi.Size() < 10_000 {
			t.Errorf("report/report.png: missing or nearly empty (%v)", err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(out, "captures", "*.parquet")); len(m) == 0 {
		t.Errorf("no capture files in %s", filepath.Join(out, "captures"))
	}
	raw, err := os.ReadFile(filepath.Join(out, "report", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	for _, k := range []string{"schema", "run", "stages", "targets", "findings"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("summary.json has no %q key", k)
		}
	}
	var s summary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if s.Schema != 1 || s.Run.ID == "" || s.Run.TimeScale <= 0 {
		t.Errorf("summary.json run: schema %d, id %q, time_scale %v", s.Schema, s.Run.ID, s.Run.TimeScale)
	}
	// The built-in profile's three scenarios, each with its baseline and levels.
	users := map[string][]int{}
	for _, st := range s.Stages {
		users[st.Scenario] = append(users[st.Scenario], st.Users)
		if _, ok := st.Operations["all"]; !ok {
			t.Errorf("stage %s/%d users has no 'all' operation", st.Scenario, st.Users)
		}
	}
	want := map[string][]int{"gateway": {1, 10, 50, 100, 100}, "rag": {1, 5, 25, 50}, "mcp": {1, 5, 20}}
	for sc, u := range want {
		if !slices.Equal(users[sc], u) {
			t.Errorf("scenario %s stages: got users %v, want %v", sc, users[sc], u)
		}
	}
	if len(s.Targets) != 11 {
		t.Errorf("got %d targets, want the built-in profile's 11", len(s.Targets))
	}
	for _, tg := range s.Targets {
		if !slices.Contains([]string{"pass", "acceptable", "fail"}, tg.Verdict) {
			t.Errorf("target %s %s: verdict %q", tg.Scenario, tg.Metric, tg.Verdict)
		}
	}
	html, _ := os.ReadFile(filepath.Join(out, "report", "report.html"))
	if !strings.Contains(string(html), "<table") {
		t.Errorf("report.html has no table")
	}
	return s, out
}

func TestDemoFindsThePlantedBottlenecks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end demo: skipped in -short")
	}
	bin := demo.BuildLoadtape(t)

	s, _ := runDemo(t, bin)
	found := map[string][]string{} // scenario → kinds
	for _, f := range s.Findings {
		found[f.Scenario] = append(found[f.Scenario], f.Kind)
		if f.Summary == "" || len(f.Evidence) == 0 {
			t.Errorf("finding %s/%s has no summary or evidence", f.Scenario, f.Kind)
		}
	}
	t.Logf("findings: %v", found)
	// The three planted bottlenecks, each on its own scenario.
	wantAny := map[string][]string{
		"gateway": {"gpu_memory_pressure", "gpu_saturation"},
		"rag":     {"timeouts", "pool_exhaustion"},
		"mcp":     {"serialization"},
	}
	for sc, kinds := range wantAny {
		if !slices.ContainsFunc(found[sc], func(k string) bool { return slices.Contains(kinds, k) }) {
			t.Errorf("scenario %s: found %v, want one of %v", sc, found[sc], kinds)
		}
	}
	for _, f := range s.Findings {
		if f.Kind == "sandbox_violation" {
			t.Errorf("the sim's sandbox held, yet the report claims a violation: %s", f.Summary)
		}
		if strings.HasPrefix(f.Kind, "gpu_") && f.Scenario != "gateway" {
			t.Errorf("GPU finding %s attributed to %s, which uses no GPU", f.Kind, f.Scenario)
		}
	}

	// The healthy sim has no bottleneck, and the analyser must find none in
	// it. The one finding a busy machine can cause without a fault in the
	// sim or the analyser is load_generator_saturated (CI machines are
	// shared, and a stalled core delays every timer at once): then the run
	// is repeated once; if the generator lags again that is logged, as a
	// statement about this machine, and the stages it names are marked
	// untrustworthy by the analyser. Any other finding fails the test. The
	// figures behind this are in README.md ("The demo's time scale").
	for try := 1; try <= 2; try++ {
		healthy, _ := runDemo(t, bin, "--healthy")
		lagOnly := len(healthy.Findings) > 0
		for _, f := range healthy.Findings {
			if f.Kind != "load_generator_saturated" {
				lagOnly = false
				t.Errorf("healthy run %d: finding %s on %s: %s", try, f.Kind, f.Scenario, f.Summary)
			}
		}
		if !lagOnly {
			break
		}
		for _, f := range healthy.Findings {
			t.Logf("healthy run %d: the load generator lagged on this machine: %s", try, f.Summary)
		}
	}
}
