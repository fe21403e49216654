package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --metrics-linger without --metrics-addr, or negative, is bad input: one
// line naming the flag, exit 2, before any capture is read.
func TestMetricsLingerBadInput(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := t.TempDir()
	base := []string{"replay", "--captures", filepath.Join(dir, "none"), "--profile", filepath.Join(dir, "none.yaml"), "--target", "gateway=http://127.0.0.1:1", "--out", filepath.Join(dir, "out")}
	for _, extra := range [][]string{{"--metrics-linger", "30s"}, {"--metrics-addr", "127.0.0.1:0", "--metrics-linger", "-1s"}} {
		_, stderr, code := loadtape(t, bin, append(base, extra...)...)
		if code != exitBadInput || !strings.Contains(stderr, "--metrics-linger") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line naming --metrics-linger", extra, code, stderr)
		}
	}
}
