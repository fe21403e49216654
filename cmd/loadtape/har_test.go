package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/har"
)

// TestHARCommands: import a browser's HAR, inspect it, export it, import
// the export, through the binary; bad input is exit 2 and writes nothing.
func TestHARCommands(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	fixture := filepath.Join("..", "..", "har", "testdata", "chromium.har")
	capDir := filepath.Join(t.TempDir(), "capture")
	out, stderr, code := loadtape(t, bin, "import", "har", fixture, "--service", "gateway", "--out", capDir)
	if code != 0 || !strings.Contains(out, "imported 9 exchanges") {
		t.Fatalf("import har: exit %d: %s%s", code, out, stderr)
	}
	out, _, code = loadtape(t, bin, "inspect", capDir)
	for _, want := range []string{"chat.completions", "mcp.tools.call/echo", "gpt-4o-mini"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect of the imported capture (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	harFile := filepath.Join(t.TempDir(), "out.har")
	if _, stderr, code := loadtape(t, bin, "export", "har", capDir, "--out", harFile); code != 0 {
		t.Fatalf("export har: exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(harFile)
	if err != nil {
		t.Fatal(err)
	}
	if probs := har.Validate(data); len(probs) > 0 {
		t.Errorf("exported HAR misses required fields: %v", probs)
	}
	stdout, _, code := loadtape(t, bin, "export", "har", capDir, "--out", "-")
	if code != 0 || len(har.Validate([]byte(stdout))) > 0 || !strings.Contains(stdout, `"_operation": "mcp.tools.call/echo"`) {
		t.Errorf("export har --out -: exit %d, %d problems", code, len(har.Validate([]byte(stdout))))
	}
	again := filepath.Join(t.TempDir(), "again")
	if out, stderr, code := loadtape(t, bin, "import", "har", harFile, "--service", "gateway", "--out", again); code != 0 || !strings.Contains(out, "imported 9 exchanges") {
		t.Errorf("re-import: exit %d: %s%s", code, out, stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.har")
	os.WriteFile(bad, []byte("{\"log\": {\"entries\": [}\n"), 0o644)
	for _, args := range [][]string{
		{"import", "har", bad, "--service", "gateway", "--out", filepath.Join(t.TempDir(), "x")},
		{"import", "har", fixture, "--out", filepath.Join(t.TempDir(), "x")},
		{"import", "har", filepath.Join(t.TempDir(), "missing.har"), "--service", "g", "--out", filepath.Join(t.TempDir(), "x")},
		{"export", "har", t.TempDir(), "--out", filepath.Join(t.TempDir(), "x.har")},
	} {
		_, stderr, code := loadtape(t, bin, args...)
		if code != exitBadInput || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("loadtape %v: exit %d, stderr %q; want exit 2, one line", args, code, stderr)
		}
	}
	if _, stderr, _ := loadtape(t, bin, "import", "har", bad, "--service", "g", "--out", t.TempDir()); !strings.Contains(stderr, "bad.har:1:22") {
		t.Errorf("syntax error without its position: %s", stderr)
	}
}
