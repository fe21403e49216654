package analyze

import "fmt"

// Thresholds of the tail detector; docs/analyze.md explains each.
const (
	tailRatio       = 3.0  // p99/p50 at the top
	tailGrowth      = 2.0  // and its growth from the bottom
	tailMinCount    = 100  // successes a stage needs for its p99 to count
	tailMinSpreadMS = 50.0 // and p99 − p50 at the top at least this
)

// The tails family: a tail that grows faster than the median with users.
func init() {
	register(detector{name: "tails", detect: func(sc *scenarioCtx) detected { return found(detectTailAmplification(sc)) },
		kinds: []kindSpec{{kind: KindTailAmplification, rank: 80}}})
}

// detectTailAmplification: p99/p50 grows with users (a long tail forms:
// head-of-line blocking, GC, retries).
func detectTailAmplification(sc *scenarioCtx) *Finding {
	var n, ratio []float64
	for _, p := range sc.curve.clean {
		st := sc.stageOf(p.Stage)
		if len(st.Operations[AllOps].Durations) < tailMinCount || p.P50 <= 0 {
			continue
		}
		n = append(n, p.Users)
		ratio = append(ratio, p.P99/p.P50)
	}
	if len(n) < 3 {
		return nil
	}
	first, last := ratio[0], ratio[len(ratio)-1]
	rho := spearman(n, ratio)
	top := sc.curve.clean[len(sc.curve.clean)-1]
	// A floor in milliseconds: on a fast service, scheduling noise alone
	// makes a 3 ms p50 and a 10 ms p99.
	if last < tailRatio || last < tailGrowth*first || rho < 0.8 || top.P99-top.P50 < tailMinSpreadMS {
		return nil
	}
	return &Finding{Kind: KindTailAmplification, Scenario: sc.name, Operation: AllOps, Severity: SeverityMedium,
		Summary:  fmt.Sprintf("%s tail grows faster than its median: p99/p50 went from %.1f at %g users to %.1f at %g users.", sc.name, first, n[0], last, n[len(n)-1]),
		Action:   "Look for head-of-line blocking, garbage-collection pauses, retries or one slow dependency; set per-request timeouts and hedge or shed the slowest requests.",
		Evidence: &TailEvidence{Users: n, P99OverP50: ratio, Spearman: rho}}
}
