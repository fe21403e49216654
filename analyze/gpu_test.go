package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/loadtape/loadtape/runspec"
)

// Out-of-memory answers are GPU memory pressure whether the replayer named
// their kind (out_of_memory, whatever the text says) or, in runs recorded
// before it did, only their text says so.
func TestOutOfMemoryByKindOrText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, kind, text string
		want             []string
	}{
		{"named by the replayer", runspec.ErrOutOfMemory, "HTTP 500: allocation failed", []string{"gpu_memory_pressure/gateway"}},
		{"an older run: the text", runspec.ErrHTTP5xx, "HTTP 500: CUDA out of memory", []string{"gpu_memory_pressure/gateway"}},
		{"another server error", runspec.ErrHTTP5xx, "HTTP 500: allocation failed", nil},
	} {
		m := healthy
		m.Fail = func(r *rand.Rand, users int) (string, string) {
			if users >= 10 && r.Float64() < 0.003 {
				return tc.kind, tc.text
			}
			return "", ""
		}
		s := analyseModel(t, m, nil)
		if got := kinds(s.Findings); !slices.Equal(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
		}
	}
}
