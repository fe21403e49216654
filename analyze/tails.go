package analyze

import (
	"fmt"
	"math"
	"sort"
)

// Thresholds of the tail detector; docs/analyze.md explains each.
const (
	tailRatio  = 3.0 // p99/p50 at the top
	tailGrowth = 1.5 // and its growth from the bottom
	// A success slower than tailRatio × its stage's median is slow; the
	// slow share must reach tailMinSlow at the top, be tailGrowth× its
	// share over the fewer users together, and grow with users by a trend
	// test's z of tailTrendZ or more (one-sided p under 0.023).
	tailMinSlow = 0.01
	tailTrendZ  = 2.0
	// tailMinCount is the successes a stage needs for its p99 to count.
	tailMinCount    = 100
	tailMinSpreadMS = 50.0 // p99 − p50 at the top at least this
	// tailOpShare is the share of the top stage's slowest 1 % one
	// operation must hold to be the tail's operation.
	tailOpShare = 0.8
)

// The tails family: a tail that grows faster than the median with users.
func init() {
	register(detector{name: "tails", detect: func(sc *scenarioCtx) detected { return found(detectTailAmplification(sc)) },
		kinds: []kindSpec{{kind: KindTailAmplification, rank: 80}}})
}

// detectTailAmplification: the tail grows faster than the median with
// users (head-of-line blocking, GC, retries, one slow dependency). A tail
// grows in one of two ways, and either is enough: the slow requests get
// slower (p99/p50 grows: a lane whose queue lengthens), or more requests
// are slow (the share slower than tailRatio × the median grows, by a
// trend test over the stages' counts: a stall that hits more requests as
// load grows, where p99 already sits on the stall's length and cannot
// grow).
func detectTailAmplification(sc *scenarioCtx) *Finding {
	var n, ratio, slow, p99, count, slowN []float64
	for _, p := range sc.curve.clean {
		st := sc.stageOf(p.Stage)
		d := st.Operations[AllOps].Durations
		if len(d) < tailMinCount || p.P50 <= 0 {
			continue
		}
		n = append(n, p.Users)
		ratio = append(ratio, p.P99/p.P50)
		k := float64(len(d) - upperIndex(d, int64(tailRatio*p.P50*1e6)))
		slow = append(slow, k/float64(len(d)))
		p99 = append(p99, p.P99)
		count, slowN = append(count, float64(len(d))), append(slowN, k)
	}
	if len(n) < 3 {
		return nil
	}
	last := len(n) - 1
	top := sc.curve.clean[len(sc.curve.clean)-1]
	// A floor in milliseconds: on a fast service, scheduling noise alone
	// makes a 3 ms p50 and a 10 ms p99.
	if ratio[last] < tailRatio || top.P99-top.P50 < tailMinSpreadMS {
		return nil
	}
	ev := &TailEvidence{Users: n, P99OverP50: ratio, SlowSharePct: mapFloats(slow, func(v float64) float64 { return round(100*v, 2) })}
	var summary string
	// The slow requests got slower: p99 in ms grew by the floor too, so
	// that a ratio growing on a shrinking median is not a tail.
	if rho := spearman(n, ratio); ratio[last] >= tailGrowth*ratio[0] && rho >= 0.8 && p99[last]-p99[0] >= tailMinSpreadMS {
		ev.Spearman = rho
		summary = fmt.Sprintf("%s tail grows faster than its median: p99/p50 went from %.1f at %g users to %.1f at %g users.", sc.name, ratio[0], n[0], ratio[last], n[last])
	} else if z := trendZ(n, count, slowN); slow[last] >= tailMinSlow && slow[last] >= tailGrowth*pooled(count[:last], slowN[:last]) && z >= tailTrendZ {
		ev.Spearman, ev.SlowTrendZ = spearman(n, slow), ptr(round(z, 2))
		summary = fmt.Sprintf("%s tail grows faster than its median: the share of requests slower than %g× the median went from %.1f %% at %g users to %.1f %% at %g users (p99/p50 %.1f there).",
			sc.name, tailRatio, 100*slow[0], n[0], 100*slow[last], n[last], ratio[last])
	} else {
		return nil
	}
	if op, share := tailOperation(sc.stageOf(top.Stage)); share >= tailOpShare {
		ev.Operation, ev.OperationSharePct = op, ptr(round(100*share, 1))
		summary += fmt.Sprintf(" Operation %s makes up %.0f %% of the slowest 1 %% at %g users.", op, 100*share, n[last])
	}
	return &Finding{Kind: KindTailAmplification, Scenario: sc.name, Operation: AllOps, Severity: SeverityMedium,
		Summary:  summary,
		Action:   "Look for head-of-line blocking, garbage-collection pauses, retries or one slow dependency; set per-request timeouts and hedge or shed the slowest requests.",
		Evidence: ev}
}

// trendZ is the Cochran–Armitage test's z for a share k/n that grows with
// the score t (users): how many standard errors the slow requests lean
// towards the higher loads beyond what one share for all would give. It
// weighs each stage by its requests, so a stage with few cannot decide.
func trendZ(t, n, k []float64) float64 {
	var sn, sk, snt, snt2, T float64
	for i := range t {
		sn, sk, snt, snt2 = sn+n[i], sk+k[i], snt+n[i]*t[i], snt2+n[i]*t[i]*t[i]
	}
	if sn == 0 {
		return 0
	}
	p := sk / sn
	for i := range t {
		T += t[i] * (k[i] - n[i]*p)
	}
	v := p * (1 - p) * (snt2 - snt*snt/sn)
	if v <= 0 {
		return 0
	}
	return T / math.Sqrt(v)
}

// pooled is the share of slow requests over the stages together.
func pooled(n, k []float64) float64 {
	var sn, sk float64
	for i := range n {
		sn, sk = sn+n[i], sk+k[i]
	}
	if sn == 0 {
		return 0
	}
	return sk / sn
}

func mapFloats(v []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

// tailOperation is the operation holding the most of the stage's slowest
// 1 % of successes (those over its p99), with its share of them; "" when
// the stage has one operation.
func tailOperation(st stageData) (string, float64) {
	all := st.Operations[AllOps]
	if all == nil || len(all.Durations) == 0 || len(st.Operations) < 3 {
		return "", 0
	}
	d := all.Durations
	cut := d[int(0.99*float64(len(d)-1))]
	total := len(d) - upperIndex(d, cut)
	if total == 0 {
		return "", 0
	}
	best, most := "", 0
	for name, o := range st.Operations {
		if name == AllOps {
			continue
		}
		if k := len(o.Durations) - upperIndex(o.Durations, cut); k > most || k == most && name < best {
			best, most = name, k
		}
	}
	return best, float64(most) / float64(total)
}

// upperIndex is the index of the first of the sorted durations over cut.
func upperIndex(d []int64, cut int64) int {
	return sort.Search(len(d), func(i int) bool { return d[i] > cut })
}
