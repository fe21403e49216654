package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loadtape/loadtape/analyze/analyzetest"
	"github.com/loadtape/loadtape/runspec"
)

func writeModelRun(t *testing.T, m analyzetest.Model, targets []runspec.Target) string {
	t.Helper()
	dir := t.TempDir()
	run, rows, samples := analyzetest.Simulate(m, 1)
	run.Profile.Targets = targets
	if err := analyzetest.WriteRun(dir, run, rows, samples); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The analyze and compare commands end to end: reports written, exit code
// 3 on a missed target, 2 on bad input. Not parallel: cobra's flags are
// package state.
func TestAnalyzeAndCompareCommands(t *testing.T) {
	healthy := writeModelRun(t, analyzetest.Healthy, []runspec.Target{{Scenario: "gateway", Metric: "p95", Max: "2s"}})
	slow := writeModelRun(t, analyzetest.Serialized, []runspec.Target{{Scenario: "mcp", Metric: "p95", Max: "100ms"}})
	badTargets := filepath.Join(t.TempDir(), "targets.yaml")
	os.WriteFile(badTargets, []byte("targets:\n  - {scenario: gateway, metric: p42, max: 1s}\n"), 0o644)
	out := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"a healthy run passes", []string{"analyze", healthy, "--out", out, "--targets="}, exitOK},
		{"a missed target is exit 3", []string{"analyze", slow, "--out", t.TempDir(), "--targets="}, exitTargetMiss},
		{"no result files is exit 2", []string{"analyze", t.TempDir(), "--out", t.TempDir(), "--targets="}, exitBadInput},
		{"an unknown target metric is exit 2", []string{"analyze", healthy, "--out", t.TempDir(), "--targets", badTargets}, exitBadInput},
		{"--out is required", []string{"analyze", healthy, "--out=", "--targets="}, exitBadInput},
		{"compare two healthy runs", []string{"compare", healthy, healthy, "--out", t.TempDir(), "--targets="}, exitOK},
		{"compare against a run that misses", []string{"compare", healthy, slow, "--out", t.TempDir(), "--targets="}, exitTargetMiss},
	}
	for _, tc := range cases {
		if got := run(tc.args); got != tc.code {
			t.Errorf("%s: loadtape %v: exit %d, want %d", tc.name, tc.args, got, tc.code)
		}
	}
	for _, name := range []string{"report.html", "report.md", "summary.json", "junit.xml", "stats.csv", "stats_history.csv", "failures.csv", "figures/timeline.png"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
}
