package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A single server of 20 ms with no think whose throughput sags a little
// as its queue grows (each queued request costs it some bookkeeping: 10 %
// at 12 users, short of retrograde): the USL follows the sag far better
// than a flat ceiling does, but its curve peaks at one request at a time
// (peak × one-user latency ≈ 1), so it is serialization, not a plateau.
func TestSingleServerWithSagIsSerialization(t *testing.T) {
	t.Parallel()
	m := model{Name: "mcp", Users: []int{1, 2, 4, 8, 12}, Servers: 1,
		Service: func(r *rand.Rand, n, _ int) time.Duration {
			return time.Duration(float64(20*time.Millisecond) * (1 + 0.01*float64(n-1)) * (0.9 + 0.2*r.Float64()))
		}}
	s := analyseModel(t, m, nil)
	if got := kinds(s.Findings); !slices.Equal(got, []string{"serialization/mcp"}) {
		t.Errorf("findings %v, want [serialization/mcp]\n%s", got, describe(s))
	}
}
