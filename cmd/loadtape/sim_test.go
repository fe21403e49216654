package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSimBadConfigExitsTwo: an invalid --config or --time-scale is bad input.
// Not parallel: run drives the shared root command.
func TestSimBadConfigExitsTwo(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(bad, []byte("gateway:\n  batch_slots: 4\n  bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	free := []string{"--gateway", "127.0.0.1:0", "--rag", "127.0.0.1:0", "--mcp", "127.0.0.1:0"}
	for _, args := range [][]string{
		append([]string{"sim", "--config", bad}, free...),
		append([]string{"sim", "--time-scale", "-2"}, free...),
		{"sim", "--healthy=maybe"},
	} {
		if code := run(args); code != exitBadInput {
			t.Errorf("loadtape %v: exit %d, want %d", args, code, exitBadInput)
		}
	}
}
