package analyze

import (
	"testing"
	"time"
)

// A short stage's p99 is nearly its maximum: one request delayed by a GC
// pause must not condemn it, while a generator that is really behind (many
// late requests) still does.
func TestSendLagNeedsSeveralLateRequests(t *testing.T) {
	t.Parallel()
	stageWith := func(n, late int) *Stage {
		op := &opAcc{count: int64(n), errors: map[string]int64{}}
		for i := range n {
			lag := 300 * time.Microsecond
			if i < late {
				lag = 25 * time.Millisecond
			}
			op.lag = append(op.lag, int64(lag))
			op.ok = append(op.ok, int64(20*time.Millisecond))
		}
		return &Stage{Stage: 1, Users: 5, Trustworthy: true, Operations: map[string]*OpStats{AllOps: op.stats(10)}}
	}
	for _, tc := range []struct {
		name      string
		n, late   int
		saturated bool
	}{
		{"one late request in 90", 90, 1, false},
		{"two late requests in 90", 90, 2, false},
		{"five late requests in 90", 90, 5, true},
		{"three in 100 is over 1 %", 100, 3, true},
		{"three in 1000 keeps p99 low", 1000, 3, false},
	} {
		st := stageWith(tc.n, tc.late)
		if got := st.Operations[AllOps].Lagged; got != int64(tc.late) {
			t.Errorf("%s: Lagged %d, want %d", tc.name, got, tc.late)
		}
		sc := &scenarioCtx{name: "rag", stages: []stageData{{st, &stageFacts{}}}}
		sc.trust = judgeTrust(sc)
		f := detectLoadGenerator(sc)
		if got := f != nil; got != tc.saturated {
			t.Errorf("%s: saturated %v, want %v (p99 lag %.1f ms)", tc.name, got, tc.saturated, st.Operations[AllOps].SendLagMS.P99)
		}
		if trusted := sc.trust[0].ok(); tc.saturated == trusted {
			t.Errorf("%s: trustworthy %v", tc.name, trusted)
		}
	}
}
