package analyze

import (
	"os"
	"path/filepath"
	"testing"
)

// The targets file parser takes any bytes without panicking and either
// accepts them or names the file in one line.
func FuzzReadTargets(f *testing.F) {
	f.Add([]byte("acceptance: 0.8\ntargets:\n  - {scenario: gateway, metric: p95, max: 2s}\n"))
	f.Add([]byte("targets:\n  - {scenario: rag, metric: error_rate, error_kind: vector_timeout, max: 0.1%}\n  - {scenario: g, metric: rps, users: 100, min: 10}\n"))
	f.Add([]byte("targets: [{metric: p96}]"))
	f.Add([]byte("targets:\n  - scenario: x\n    metric: count\n    max: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "t.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		specs, _, err := ReadTargets(path)
		if err != nil {
			return
		}
		for _, s := range specs {
			if _, err := s.Bound(); err != nil {
				t.Errorf("accepted a target whose bound does not parse: %+v", s)
			}
		}
	})
}
