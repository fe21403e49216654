package analyze

import (
	"math/rand/v2"
	"slices"
	"strings"
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

// One rare operation (10 % of requests) handled one at a time while the
// others run in parallel: at the most users it is busy nearly all the
// time and its latency has grown, but the scenario's throughput still
// rises (no plateau of the whole). The finding is serialization on that
// operation, and the scenario's tail, which is that operation's queue, is
// folded into it rather than named apart.
func TestRareOperationSerializedWhileTheWholeScales(t *testing.T) {
	t.Parallel()
	m := laneModel(0.1, 1, 80*time.Millisecond)
	m.StageLen = 20 * time.Second
	for seed := uint64(1); seed <= 3; seed++ {
		info, rows, samples := simulate(m, seed)
		s, err := Summarize(info, rows, samples, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := kinds(s.Findings); !slices.Equal(got, []string{"serialization/gateway"}) {
			t.Fatalf("seed %d: findings %v, want [serialization/gateway]\n%s", seed, got, describe(s))
		}
		f := s.Findings[0]
		ev := f.Evidence.(*CapacityEvidence)
		slower := len(ev.OperationMeanLatencyMS) >= 2
		for name, ms := range ev.OperationMeanLatencyMS {
			slower = slower && (name == "slow" || ms < ev.OperationMeanLatencyMS["slow"])
		}
		if f.Operation != "slow" || !slower || !strings.Contains(f.Summary, "while the others scale") || !strings.Contains(f.Summary, "also the scenario's tail") {
			t.Errorf("seed %d: %s on %q: %s\nevidence %v: want it on operation slow, slower than the others, with the tail folded in", seed, f.Kind, f.Operation, f.Summary, f.EvidenceMap())
		}
	}
}

// A tail lane whose requests already take several times the median at
// the fewest users (a lane of three taking 240 ms among 40 ms requests):
// its queue lengthens with users, so p99 grows while the median stays, and
// it is a tail amplification even though p99/p50 cannot double before
// the lane saturates.
func TestTailLaneFromAHighBase(t *testing.T) {
	t.Parallel()
	m := laneModel(0.1, 3, 240*time.Millisecond)
	m.Lane.Operation = "op" // one operation: the lane is inside it
	m.StageLen = 20 * time.Second
	for seed := uint64(1); seed <= 3; seed++ {
		info, rows, samples := simulate(m, seed)
		s, err := Summarize(info, rows, samples, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := kinds(s.Findings); !slices.Contains(got, "tail_amplification/gateway") {
			t.Errorf("seed %d: findings %v, want tail_amplification\n%s", seed, got, describe(s))
		}
	}
}
