package reports

import (
	"encoding/json"
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
