package reports

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/analyze/analyzetest"
)

// A run whose stages got no rows (a replay that failed at once) still
// renders every report, with empty tables rather than a crash.
func TestWriteEmptyRun(t *testing.T) {
	t.Parallel()
	run, _, _ := analyzetest.Simulate(analyzetest.Healthy, 1)
	var info analyze.RunInfo
	if err := json.Unmarshal(run.JSON(), &info); err != nil {
		t.Fatal(err)
	}
	s, err := analyze.Summarize(&info, nil, nil, []analyze.TargetSpec{{Scenario: "gateway", Metric: "p95", Max: "1s"}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(t.TempDir(), s); err != nil {
		t.Fatal(err)
	}
	if !Failed(s) {
		t.Error("a target with no measurement must fail")
	}
}

// Targets of a scenario the run did not include are left out of the table
// and the verdict, and both reports say which.
func TestTargetsOfScenariosNotRun(t *testing.T) {
	t.Parallel()
	run, rows, samples := analyzetest.Simulate(analyzetest.Healthy, 1)
	var info analyze.RunInfo
	if err := json.Unmarshal(run.JSON(), &info); err != nil {
		t.Fatal(err)
	}
	info.Profile.Scenarios["rag"] = analyze.ScenarioInfo{Service: "rag"} // in the profile, not run
	specs := []analyze.TargetSpec{{Scenario: "gateway", Metric: "p95", Max: "10s"}, {Scenario: "rag", Metric: "p95", Max: "1ms"}}
	s, err := analyze.Summarize(&info, rows, samples, specs, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if Failed(s) || len(s.Targets) != 1 {
		t.Errorf("targets %+v: want only the gateway's, passed", s.Targets)
	}
	html, err := HTML(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"markdown": Markdown(s, nil), "html": string(html)} {
		if !strings.Contains(text, "not in this run: rag p95") {
			t.Errorf("%s does not name the target left out", name)
		}
	}
}
