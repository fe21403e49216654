package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze/analyzetest"
	"github.com/loadtape/loadtape/runspec"
)

// Pools that refuse a waiter with a 503 of their own: the text alone names
// the pool, or the waiters' 5xx says it timed out after the pool's wait
// while the queue already slowed the successes before the first refusal.
func TestPoolExhaustionRefusedWaiters(t *testing.T) {
	t.Parallel()
	named := pool
	named.ErrKind, named.ErrText = runspec.ErrHTTP5xx, "connection pool exhausted"
	// Eight workers of 40 ms, a 150 ms wait, no think: at 16 users the
	// queue makes the median success ~80 ms (over half the wait) before
	// any waiter gives up; from 32 users waiters are refused.
	queued := model{Name: "rag", Users: []int{2, 4, 8, 16, 32, 64}, Servers: 8,
		Service: analyzetest.Around(40*time.Millisecond, 8*time.Millisecond), Timeout: 150 * time.Millisecond,
		ErrKind: runspec.ErrHTTP5xx, ErrText: "timed out waiting for a worker"}
	for _, tc := range []struct {
		name string
		m    model
	}{{"503 naming the pool", named}, {"503 timed out, queue before the onset", queued}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := analyseModel(t, tc.m, nil)
			if !slices.Contains(kinds(s.Findings), "pool_exhaustion/rag") {
				t.Errorf("findings %v, want pool_exhaustion/rag\n%s", kinds(s.Findings), describe(s))
			}
		})
	}
}

// A server error that says nothing of a pool or a wait is not a pool.
func TestPlainServerErrorsAreNoPool(t *testing.T) {
	t.Parallel()
	m := pool
	m.Timeout = 0
	m.Fail = func(r *rand.Rand, users int) (string, string) {
		if users >= 50 && r.Float64() < 0.05 {
			return runspec.ErrHTTP5xx, "internal server error"
		}
		return "", ""
	}
	s := analyseModel(t, m, nil)
	if slices.Contains(kinds(s.Findings), "pool_exhaustion/rag") {
		t.Errorf("findings %v, want no pool_exhaustion\n%s", kinds(s.Findings), describe(s))
	}
}
