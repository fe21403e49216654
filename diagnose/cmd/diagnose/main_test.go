package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// Bad flags are refused with one line naming the flag and exit code 2,
// before any target starts.
func TestBadFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-loadtape")
	cases := []struct {
		why  string
		args []string
		want string
	}{
		{"an unknown family", []string{"-only", "pools"}, `-only: unknown family "pools"`},
		{"a binary that is not there", []string{"-loadtape", missing, "-only", "healthy", "-quick"}, "-loadtape: "},
		{"an argument that is not a flag", []string{"healthy"}, `unexpected argument "healthy"`},
		{"an unknown flag", []string{"-fast"}, "flag provided but not defined: -fast\n"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(append(c.args, "-out", t.TempDir()), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.want) || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line with %q", c.why, code, errOut.String(), c.want)
		}
		if strings.Contains(out.String(), "targets,") {
			t.Errorf("%s: it started: %q", c.why, out.String())
		}
	}
}

func TestListShowsEveryTarget(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-list"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 41 || !strings.Contains(lines[len(lines)-1], "targets,") {
		t.Errorf("-list printed %d lines, want at least 40 targets and a total:\n%s", len(lines), out.String())
	}
	out.Reset()
	if code := run([]string{"-list", "-quick", "-only", "pool,retrograde"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Errorf("-quick -only pool,retrograde listed %d lines, want 2 targets and a total:\n%s", got, out.String())
	}
}
