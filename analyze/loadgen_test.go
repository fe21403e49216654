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
