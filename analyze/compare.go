package analyze

import (
	"fmt"
	"math"
	"slices"
)

// Alpha is the significance level of compare's tests.
const Alpha = 0.05

// minShift is the relative change in a percentile below which a difference
// is not reported even when significant: with millions of rows every
// nanosecond is significant and none of it matters.
const minShift = 0.05

// Comparison is what compare adds to the new run's Summary.
type Comparison struct {
	Base       RunMeta        `json:"base"`
	Test       string         `json:"test"`
	Alpha      float64        `json:"alpha"`
	Targets    []TargetChange `json:"targets"`
	Operations []OpChange     `json:"operations"`
	Appeared   []Finding      `json:"findings_appeared"`
	Gone       []Finding      `json:"findings_gone"`
}

// TargetChange is one target in both runs.
type TargetChange struct {
	Name        string   `json:"name"`
	Unit        string   `json:"unit"`
	Base        *float64 `json:"base"`
	New         *float64 `json:"new"`
	BaseVerdict Verdict  `json:"base_verdict"`
	NewVerdict  Verdict  `json:"new_verdict"`
}

// OpChange is one scenario × stage × operation in both runs.
type OpChange struct {
	Scenario  string  `json:"scenario"`
	Stage     int     `json:"stage"`
	Users     int     `json:"users"`
	Operation string  `json:"operation"`
	P50       Delta   `json:"p50_ms"`
	P95       Delta   `json:"p95_ms"`
	P99       Delta   `json:"p99_ms"`
	RPS       Delta   `json:"rps"`
	ErrorRate Delta   `json:"error_rate"`
	LatencyP  float64 `json:"latency_p_value"` // Mann–Whitney U, two-sided
	RPSP      float64 `json:"rps_p_value"`     // two Poisson rates
	ErrorP    float64 `json:"error_p_value"`   // two proportions
	Verdict   string  `json:"verdict"`         // faster, slower, mixed, no significant change

	u, mean float64
}

// Delta is a value in both runs.
type Delta struct {
	Base      float64 `json:"base"`
	New       float64 `json:"new"`
	ChangePct float64 `json:"change_pct"`
}

func delta(a, b float64) Delta {
	d := Delta{Base: round(a, 4), New: round(b, 4)}
	if a != 0 && !math.IsNaN(a) && !math.IsNaN(b) {
		d.ChangePct = round(100*(b-a)/a, 2)
	}
	if math.IsNaN(d.Base) {
		d.Base = 0
	}
	if math.IsNaN(d.New) {
		d.New = 0
	}
	return d
}

// Compare analyses both runs and returns the new run's Summary with the
// comparison added. Targets come from each run's profile unless targets
// names a file, which then applies to both.
func Compare(base, next Options) (*Summary, error) {
	b, err := Analyze(base)
	if err != nil {
		return nil, fmt.Errorf("base run: %w", err)
	}
	n, err := Analyze(next)
	if err != nil {
		return nil, fmt.Errorf("new run: %w", err)
	}
	n.Comparison = CompareSummaries(b, n)
	return n, nil
}

// CompareSummaries compares two analysed runs.
func CompareSummaries(b, n *Summary) *Comparison {
	c := &Comparison{Base: b.Run, Test: "Bonferroni-corrected over all stage × operation pairs, and a change under 5 % of p50 and p95 is not reported; Mann–Whitney U on the latencies of successful requests (normal approximation with tie correction); Poisson rate test on RPS; two-proportion z test on the error rate", Alpha: Alpha,
		Targets: []TargetChange{}, Operations: []OpChange{}, Appeared: []Finding{}, Gone: []Finding{}}
	for _, nt := range n.Targets {
		tc := TargetChange{Name: nt.Name(), Unit: nt.Unit, New: nt.Value, NewVerdict: nt.Verdict}
		for _, bt := range b.Targets {
			if bt.Name() == nt.Name() {
				tc.Base, tc.BaseVerdict = bt.Value, bt.Verdict
				break
			}
		}
		c.Targets = append(c.Targets, tc)
	}
	for _, ns := range n.Stages {
		var bs *Stage
		for _, s := range b.Stages {
			if s.Scenario == ns.Scenario && s.Stage == ns.Stage {
				bs = s
			}
		}
		if bs == nil {
			continue
		}
		names := make([]string, 0, len(ns.Operations))
		for name := range ns.Operations {
			if bs.Operations[name] != nil {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			c.Operations = append(c.Operations, compareOp(ns, bs.Operations[name], ns.Operations[name], name, bs.WindowS, ns.WindowS))
		}
	}
	// Bonferroni: one comparison in twenty would be "significant" by
	// chance at 5 %, and a run has dozens of stage × operation pairs.
	for i := range c.Operations {
		c.Operations[i].judge(Alpha / float64(len(c.Operations)))
	}
	key := func(f Finding) string { return string(f.Kind) + "\x00" + f.Scenario + "\x00" + f.Operation }
	has := func(fs []Finding, f Finding) bool {
		return slices.ContainsFunc(fs, func(g Finding) bool { return key(g) == key(f) })
	}
	for _, f := range n.Findings {
		if !has(b.Findings, f) {
			c.Appeared = append(c.Appeared, f)
		}
	}
	for _, f := range b.Findings {
		if !has(n.Findings, f) {
			c.Gone = append(c.Gone, f)
		}
	}
	return c
}

func compareOp(st *Stage, b, n *OpStats, name string, bw, nw float64) OpChange {
	oc := OpChange{Scenario: st.Scenario, Stage: st.Stage, Users: st.Users, Operation: name,
		P50: delta(b.LatencyMS.P50, n.LatencyMS.P50), P95: delta(b.LatencyMS.P95, n.LatencyMS.P95),
		P99: delta(b.LatencyMS.P99, n.LatencyMS.P99), RPS: delta(b.RPS, n.RPS),
		ErrorRate: delta(b.ErrorRate, n.ErrorRate), LatencyP: 1, RPSP: 1, ErrorP: 1}
	var u, mean float64
	if len(b.Durations) > 0 && len(n.Durations) > 0 {
		oc.LatencyP, u, mean = MannWhitney(b.Durations, n.Durations)
	}
	oc.LatencyP = roundSig(oc.LatencyP, 3)
	if bw > 0 && nw > 0 {
		oc.RPSP = roundSig(poissonRates(b.RPS*bw, bw, n.RPS*nw, nw), 3)
	}
	oc.ErrorP = roundSig(twoProportions(b.ErrorRate*float64(b.Count), float64(b.Count), n.ErrorRate*float64(n.Count), float64(n.Count)), 3)
	oc.u, oc.mean = u, mean
	return oc
}

// judge sets the verdict at level alpha (already divided among the tests).
// The U test detects a shift of the whole distribution, so the verdict
// follows the median: faster or slower when the test is significant and
// the median moved at least minShift the same way; "mixed" when it is
// significant but the median did not move that way (the shape changed:
// a tail grew while the middle shrank, say).
func (oc *OpChange) judge(alpha float64) {
	if oc.LatencyP >= alpha {
		oc.Verdict = "no significant change"
		return
	}
	med := oc.P50.ChangePct / 100
	switch {
	case oc.u > oc.mean && med <= -minShift:
		oc.Verdict = "faster" // base values rank higher: the new run is quicker
	case oc.u < oc.mean && med >= minShift:
		oc.Verdict = "slower"
	case math.Abs(med) < minShift && math.Abs(oc.P95.ChangePct/100) < minShift:
		oc.Verdict = "no significant change" // significant, but too small to matter
	default:
		oc.Verdict = "mixed"
	}
}

// MannWhitney tests whether a and b (each sorted ascending) come from the
// same distribution. It returns the two-sided p-value by the normal
// approximation with tie correction, U of a, and U's mean under the null.
func MannWhitney(a, b []int64) (p, u, mean float64) {
	n1, n2 := float64(len(a)), float64(len(b))
	var rankSumA, tieTerm float64
	i, j, rank := 0, 0, 1.0
	for i < len(a) || j < len(b) {
		var v int64
		switch {
		case j >= len(b) || (i < len(a) && a[i] <= b[j]):
			v = a[i]
		default:
			v = b[j]
		}
		ca, cb := 0, 0
		for i < len(a) && a[i] == v {
			i++
			ca++
		}
		for j < len(b) && b[j] == v {
			j++
			cb++
		}
		t := float64(ca + cb)
		mid := rank + (t-1)/2
		rankSumA += mid * float64(ca)
		tieTerm += t*t*t - t
		rank += t
	}
	u = rankSumA - n1*(n1+1)/2
	mean = n1 * n2 / 2
	n := n1 + n2
	variance := n1 * n2 / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return 1, u, mean
	}
	z := (math.Abs(u-mean) - 0.5) / math.Sqrt(variance)
	if z < 0 {
		z = 0
	}
	return math.Erfc(z / math.Sqrt2), u, mean
}

// poissonRates tests two event counts over two durations for equal rates.
func poissonRates(c1, t1, c2, t2 float64) float64 {
	v := c1/(t1*t1) + c2/(t2*t2)
	if v <= 0 {
		return 1
	}
	z := math.Abs(c2/t2-c1/t1) / math.Sqrt(v)
	return math.Erfc(z / math.Sqrt2)
}

// twoProportions tests two failure shares for equality.
func twoProportions(x1, n1, x2, n2 float64) float64 {
	if n1 == 0 || n2 == 0 {
		return 1
	}
	p := (x1 + x2) / (n1 + n2)
	v := p * (1 - p) * (1/n1 + 1/n2)
	if v <= 0 {
		return 1
	}
	z := math.Abs(x2/n2-x1/n1) / math.Sqrt(v)
	return math.Erfc(z / math.Sqrt2)
}
