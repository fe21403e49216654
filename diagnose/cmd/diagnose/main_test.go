package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/diagnose"
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
		{"an unknown target", []string{"-target", "healthy-1ms"}, `-target: no target "healthy-1ms"`},
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
	out.Reset()
	if code := run([]string{"-list", "-target", "pool-2x20ms,lane-1x30ms-among-5ms"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := out.String(); strings.Count(got, "\n") != 3 || !strings.HasPrefix(got, "pool-2x20ms ") || !strings.Contains(got, "\nlane-1x30ms-among-5ms ") {
		t.Errorf("-target pool-2x20ms,lane-1x30ms-among-5ms listed:\n%s", got)
	}
}

func TestBar(t *testing.T) {
	right := diagnose.Outcome{Target: diagnose.Target{Planted: diagnose.KindRetrograde}, Findings: []diagnose.Finding{{Kind: diagnose.KindRetrograde}}}
	quiet := diagnose.Outcome{Target: diagnose.Target{Planted: diagnose.KindNone}}
	noisy := diagnose.Outcome{Target: diagnose.Target{Planted: diagnose.KindNone}, Findings: []diagnose.Finding{{Kind: diagnose.KindLoadGen}}}
	cases := []struct {
		why     string
		outs    []diagnose.Outcome
		wall    time.Duration
		catalog int
		want    string
	}{
		{"all right, quiet, in time", []diagnose.Outcome{right, quiet}, 12 * time.Minute, 2, "bar met: yes"},
		{"a control with a finding", []diagnose.Outcome{right, noisy}, 12 * time.Minute, 2, "bar met: no"},
		{"too slow", []diagnose.Outcome{right, quiet}, 16 * time.Minute, 2, "bar met: no"},
		{"a part of the catalog", []diagnose.Outcome{right, quiet}, time.Minute, 51, "bar met: not judged"},
	}
	for _, c := range cases {
		if got := bar(diagnose.NewMatrix(c.outs), c.wall, c.catalog); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want it to start %q", c.why, got, c.want)
		}
	}
}
