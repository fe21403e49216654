package analyze

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze/analyzetest"
)

// laneModel is a wide server where share of the requests queue instead
// for a lane of servers slots (service each): the target's own queue.
func laneModel(share float64, servers int, service time.Duration) model {
	m := healthy
	m.Users = []int{1, 8, 16, 32}
	m.StageLen = 10 * time.Second // the demo's short stages: boundary effects weigh most
	m.Lane = &analyzetest.Lane{Share: share, Servers: servers, Operation: "slow",
		Service: func(r *rand.Rand) time.Duration {
			return service/2 + time.Duration(r.ExpFloat64()*float64(service/2))
		}}
	return m
}

// A queue in the target is never the load generator's fault: users
// waiting in it across a window's start or end are busy, and Little's law
// must count them. Users that think longer than the profile says are the
// generator's own doing, and still mark the stage.
func TestLittleCountsRequestsInFlight(t *testing.T) {
	t.Parallel()
	slowGen := healthy
	slowGen.RealThink = 320 * time.Millisecond
	for _, tc := range []struct {
		name   string
		m      model
		lagged bool
	}{
		{"10 % of requests behind a 2-wide lane", laneModel(0.1, 2, 300*time.Millisecond), false},
		{"10 % of requests behind a saturated 2-wide lane", laneModel(0.1, 2, time.Second), false},
		{"one operation serialized among fast ones", laneModel(0.3, 1, 60*time.Millisecond), false},
		{"a lane whose requests wait across the window's start", laneModel(0.1, 1, 2*time.Second), false},
		{"users thinking longer than the profile says", slowGen, true},
	} {
		for seed := uint64(1); seed <= 4; seed++ {
			info, rows, samples := simulate(tc.m, seed)
			s, err := Summarize(info, rows, samples, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			lagged := slices.Contains(kinds(s.Findings), "load_generator_saturated/"+tc.m.Name)
			var untrusted []int
			for _, st := range s.Stages {
				if !st.Trustworthy {
					untrusted = append(untrusted, st.Users)
				}
			}
			if lagged != tc.lagged || (len(untrusted) > 0) != tc.lagged {
				t.Errorf("%s seed %d: load generator saturated %v (untrustworthy at %v users), want %v\n%s", tc.name, seed, lagged, untrusted, tc.lagged, describe(s))
			}
			// The cause named is the one the records show: pauses of
			// 0.32 s where the profile says 0.2 s.
			for _, f := range s.Findings {
				if f.Kind != KindLoadGenSaturated {
					continue
				}
				for _, st := range f.Evidence.(*LoadGenEvidence).Stages {
					if st.ThinkSeenS == nil || math.Abs(*st.ThinkSeenS-0.32) > 0.03 || *st.ThinkProfileS != 0.2 || !strings.Contains(st.Why, "paused") {
						t.Errorf("%s seed %d: stage %d cause %q, think seen %v, want about 0.32 s against 0.2 s", tc.name, seed, st.Stage, st.Why, st.ThinkSeenS)
					}
				}
			}
		}
	}
}

// Send lag counts against a stage by what it does to the latency beside
// it, measured in the run itself and so at its time scale: a few ms of lag
// distort a 2 ms service (or the same service in a run compressed
// tenfold) and not one answering in 200 ms; the floor keeps the timer's
// and collector's noise from condemning a sub-millisecond service.
func TestSendLagIsWeighedAgainstLatency(t *testing.T) {
	t.Parallel()
	stageWith := func(n int, latency, lag time.Duration) *Stage {
		op := &opAcc{count: int64(n), errors: map[string]int64{}}
		r := rand.New(rand.NewPCG(1, 2))
		for range n {
			l := 200 * time.Microsecond
			if r.Float64() < 0.03 { // 3 % late: p99 is theirs
				l = lag
			}
			op.lag = append(op.lag, int64(l))
			op.ok = append(op.ok, int64(latency))
		}
		return &Stage{Stage: 1, Users: 5, Trustworthy: true, Operations: map[string]*OpStats{AllOps: op.stats(10)}}
	}
	for _, tc := range []struct {
		name             string
		latency, lag     time.Duration
		saturated        bool
		wasSaturatedAt10 bool // the former fixed 10 ms bound, for the record
	}{
		{"6 ms of lag on a 2 ms service", 2 * time.Millisecond, 6 * time.Millisecond, true, false},
		{"6 ms of lag beside 200 ms answers", 200 * time.Millisecond, 6 * time.Millisecond, false, false},
		{"the same 6 ms in that run compressed tenfold (20 ms answers)", 20 * time.Millisecond, 6 * time.Millisecond, true, false},
		{"1.5 ms (a collector pause) on a 0.4 ms service", 400 * time.Microsecond, 1500 * time.Microsecond, false, false},
		{"25 ms beside 20 ms answers", 20 * time.Millisecond, 25 * time.Millisecond, true, true},
		{"40 ms beside 2 s answers", 2 * time.Second, 40 * time.Millisecond, false, true},
		{"400 ms beside 2 s answers", 2 * time.Second, 400 * time.Millisecond, true, true},
	} {
		st := stageWith(1000, tc.latency, tc.lag)
		all := st.Operations[AllOps]
		if was := all.SendLagMS.P99 > maxSendLagMS && all.Lagged >= minLagged; was != tc.wasSaturatedAt10 {
			t.Errorf("%s: the fixed 10 ms bound gives %v, the case says %v", tc.name, was, tc.wasSaturatedAt10)
		}
		sc := &scenarioCtx{name: "rag", stages: []stageData{{st, &stageFacts{}}}}
		sc.trust = judgeTrust(sc)
		if got := detectLoadGenerator(sc) != nil; got != tc.saturated {
			t.Errorf("%s: saturated %v, want %v (p99 lag %.2f ms, median latency %.1f ms, bound %.2f ms)",
				tc.name, got, tc.saturated, all.SendLagMS.P99, all.LatencyMS.P50, lagBound(all))
		}
	}
}

// lateAtLeast never counts more late requests than there were: checked
// against the exact count for stages of every size and share of lag.
func TestLateAtLeastIsALowerBound(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		n := 1 + r.IntN(2000)
		share := r.Float64()
		bound := 1 + r.Float64()*20
		op := &opAcc{count: int64(n), errors: map[string]int64{}}
		var exact int64
		for range n {
			l := r.Float64() * bound * 0.9
			if r.Float64() < share {
				l = bound * (1.01 + r.Float64())
			}
			if l > bound {
				exact++
			}
			op.lag = append(op.lag, int64(l*1e6))
			op.ok = append(op.ok, int64(time.Millisecond))
		}
		all := op.stats(10)
		if got := lateAtLeast(all, bound); got > exact {
			t.Fatalf("n %d, %d over %.2f ms: lateAtLeast says %d", n, exact, bound, got)
		} else if exact >= int64(n)/20+1 && got == 0 {
			t.Fatalf("n %d, %d over %.2f ms (over 5 %%): lateAtLeast says none", n, exact, bound)
		}
	}
}

// Steal the hypervisor took from the replayer's host is named as the
// cause of its lag, with each lagging stage's share, and the action is
// dedicated cores rather than more CPU inside the same machine; steal in
// stages the replayer drove on time, or under stealPct, changes nothing.
func TestSendLagNamesHypervisorSteal(t *testing.T) {
	t.Parallel()
	lagging := lagsAt10(healthy)
	stealAt := func(at10, elsewhere float64) func(int) float64 {
		return func(users int) float64 {
			if users == 10 {
				return at10
			}
			return elsewhere
		}
	}
	for _, tc := range []struct {
		name      string
		m         model
		finding   bool
		stealPct  float64 // the lagging stage's, 0: not named
		dedicated bool    // the action asks for dedicated cores
	}{
		{"lag with 12 % steal", withSteal(lagging, stealAt(12, 0.5)), true, 12, true},
		{"lag with 0.5 % steal", withSteal(lagging, stealAt(0.5, 0.5)), true, 0, false},
		{"lag with no steal sampled", lagging, true, 0, false},
		{"steal in stages without lag", withSteal(healthy, stealAt(12, 12)), false, 0, false},
	} {
		info, rows, samples := simulate(tc.m, testSeed)
		s, err := Summarize(info, rows, samples, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var f *Finding
		for i := range s.Findings {
			if s.Findings[i].Kind == KindLoadGenSaturated {
				f = &s.Findings[i]
			}
		}
		if (f != nil) != tc.finding {
			t.Errorf("%s: load generator finding %v, want %v\n%s", tc.name, f != nil, tc.finding, describe(s))
			continue
		}
		if f == nil {
			continue
		}
		ev := f.Evidence.(*LoadGenEvidence)
		var named float64
		for _, st := range ev.Stages {
			if st.HostStealPct != nil {
				named = max(named, *st.HostStealPct)
			}
		}
		if math.Abs(named-tc.stealPct) > 0.01 {
			t.Errorf("%s: steal named %.2f %%, want %.2f %%", tc.name, named, tc.stealPct)
		}
		if got := strings.Contains(f.Summary, "(steal)"); got != (tc.stealPct > 0) {
			t.Errorf("%s: summary names steal %v: %s", tc.name, got, f.Summary)
		}
		if got := strings.Contains(f.Action, "dedicated cores"); got != tc.dedicated {
			t.Errorf("%s: action asks for dedicated cores %v: %s", tc.name, got, f.Action)
		}
	}
}

func withSteal(m model, steal func(int) float64) model {
	m.HostSteal = steal
	return m
}
