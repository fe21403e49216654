package analyze

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenStage is what the detectors decide about a stage.
type goldenStage struct {
	Scenario    string   `json:"scenario"`
	Stage       int      `json:"stage"`
	Users       int      `json:"users"`
	Trustworthy bool     `json:"trustworthy"`
	Steady      bool     `json:"steady"`
	Notes       []string `json:"notes,omitempty"`
}

// The findings (with their evidence, as summary.json writes them) and the
// stage marks of every known model are pinned, so that a change in how the
// detectors are arranged cannot change what they say. Refresh with
// go test ./analyze -run TestGoldenFindings -update after a deliberate
// change, and say why in the commit.
func TestGoldenFindings(t *testing.T) {
	t.Parallel()
	type entry struct {
		Case     string        `json:"case"`
		Stages   []goldenStage `json:"stages"`
		Findings []Finding     `json:"findings"`
	}
	var out []entry
	for _, tc := range queueingCases() {
		info, rows, samples := simulate(tc.m, 7) // not testSeed: the file is for one seed
		s, err := Summarize(info, rows, samples, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := entry{Case: tc.name, Findings: s.Findings}
		for _, st := range s.Stages {
			e.Stages = append(e.Stages, goldenStage{st.Scenario, st.Stage, st.Users, st.Trustworthy, st.Steady, st.Notes})
		}
		out = append(out, e)
	}
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", "findings.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./analyze -run TestGoldenFindings -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s differs in length: %d lines, want %d", path, len(gl), len(wl))
	}
}
