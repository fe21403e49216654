package analyze

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/loadtape/loadtape/runspec"
)

// Thresholds of the error detectors; docs/analyze.md explains each.
const (
	abruptAt         = 0.01 // error rate at the onset of pool exhaustion
	abruptJump       = 10.0 // and at least this many times the rate of every stage before
	defaultVectorPct = 0.1  // vector-store timeouts tolerated without a target of their own, %: a store that times out more often than one search in a thousand needs attention
	defaultErrorPct  = 1.0  // bound of plain timeouts without an error-rate target, %
)

// The errors-and-pools family: a pool that runs out at one load, and
// timeouts over their target. Plain timeouts that a pool running out
// explains are not said twice.
func init() {
	register(detector{name: "errors", detect: func(sc *scenarioCtx) detected {
		pool := detectPoolExhaustion(sc)
		d := found(pool)
		if f := detectTimeouts(sc, pool != nil); f != nil {
			d.findings = append(d.findings, *f)
		}
		return d
	}, kinds: []kindSpec{
		{kind: KindPoolExhaustion, rank: 40},
		{kind: KindTimeouts, rank: 60},
	}})
}

// poolKinds are the failures of a resource that ran out: waiting for it
// timed out, or it refused more.
var poolKinds = map[string]bool{runspec.ErrTimeout: true, runspec.ErrVectorTimeout: true, runspec.ErrConnection: true, runspec.ErrDBConnection: true, runspec.ErrPoolTimeout: true}

var timeoutKinds = map[string]bool{runspec.ErrTimeout: true, runspec.ErrVectorTimeout: true, runspec.ErrPoolTimeout: true}

// namesPool: a failure's text names a pool that ran out ("connection pool
// exhausted", "QueuePool limit", "too many connections").
func namesPool(text string) bool {
	t := strings.ToLower(text)
	return strings.Contains(t, "pool") || strings.Contains(t, "too many connections")
}

// waitTimedOut: a failure that waited until a timeout, by its kind, or a
// server error whose text says it timed out waiting (a service that
// refuses a waiter after its own wait timeout, "timed out waiting for a
// worker", answers with a 5xx, not a transport timeout).
func waitTimedOut(kind, text string) bool {
	if timeoutKinds[kind] {
		return true
	}
	t := strings.ToLower(text)
	return kind == runspec.ErrHTTP5xx && (strings.Contains(t, "timed out") || strings.Contains(t, "timeout"))
}

// detectPoolExhaustion: errors start abruptly at one user count, and the
// requests that still succeed take nearly as long as the failures' timeout
// (they waited for a free connection too).
func detectPoolExhaustion(c *scenarioCtx) *Finding {
	rate := func(st stageData) (float64, int64, bool) {
		all := st.Operations[AllOps]
		if all == nil || all.Count == 0 {
			return 0, 0, false
		}
		var n int64
		for k, v := range all.Errors {
			if poolKinds[k] || namesPool(all.ErrorText[k]) || waitTimedOut(k, all.ErrorText[k]) {
				n += v
			}
		}
		return float64(n) / float64(all.Count), n, true
	}
	onset := -1
	before := 0.0 // the highest rate before the onset
	for i, st := range c.stages {
		r, n, ok := rate(st)
		if !ok {
			continue
		}
		if r >= abruptAt && n >= 3 {
			// Abrupt: ten times (at least) the rate of every stage before,
			// which had enough requests for its few errors to mean
			// something at this rate.
			if i > 0 && r >= abruptJump*before && float64(c.stages[i-1].Operations[AllOps].Count)*r >= 3 {
				onset = i
			}
			break
		}
		before = math.Max(before, r)
	}
	if onset < 0 {
		return nil
	}
	var tdurs, okP99 []float64
	textual := false
	rates := map[string]float64{}
	for _, st := range c.stages[onset:] {
		all := st.Operations[AllOps]
		for k, d := range st.errDurs {
			if waitTimedOut(k, all.ErrorText[k]) {
				for _, v := range d {
					tdurs = append(tdurs, float64(v)/1e6)
				}
			}
		}
		if len(all.Durations) > 0 {
			okP99 = append(okP99, all.LatencyMS.P99)
		}
		// The server's own words name the pool: that is enough, whatever
		// kind the answer got (a pool that refuses a waiter usually
		// answers 503, an http_5xx).
		for _, txt := range all.ErrorText {
			if namesPool(txt) {
				textual = true
			}
		}
	}
	for _, st := range c.stages {
		r, _, _ := rate(st)
		rates[fmt.Sprint(st.Users)] = 100 * r
	}
	ev := &PoolEvidence{OnsetUsers: c.stages[onset].Users, ErrorRatePctByUser: rates}
	cluster := false
	if len(tdurs) > 0 && len(okP99) > 0 {
		slices.Sort(tdurs)
		timeout := tdurs[len(tdurs)/2]
		top := slices.Max(okP99)
		ev.TimeoutMS, ev.SuccessP99MS = ptr(timeout), ptr(top)
		// Failures that wait for a pool take far longer than a normal
		// request: one at the lightest load before the onset, where no
		// request queues (the stage just before the onset may already
		// queue for the pool without any waiter giving up yet); successes
		// then wait nearly as long.
		before := math.Inf(1)
		for _, st := range c.stages[:onset] {
			if all := st.Operations[AllOps]; all != nil && len(all.Durations) > 0 {
				before = math.Min(before, all.LatencyMS.P50)
			}
		}
		if math.IsInf(before, 1) {
			before = c.stages[onset-1].Operations[AllOps].LatencyMS.P50
		}
		ev.SuccessP50BeforeMS = ptr(before)
		cluster = top >= 0.5*timeout && before < 0.5*timeout
	}
	if !cluster && !textual {
		return nil
	}
	first := c.stages[onset]
	return &Finding{Kind: KindPoolExhaustion, Scenario: c.name, Operation: c.worstOp(first, poolKinds), Severity: SeverityHigh,
		Summary: fmt.Sprintf("%s runs out of a pool at %d users: errors jump from at most %.2f %% to %.1f %% there while the successful requests wait close to the timeout.",
			c.name, first.Users, 100*before, rates[fmt.Sprint(first.Users)]),
		Action:   "Size the connection pool for the concurrency (e.g. the vector-store or database pool to the user count at the onset), or queue with back-pressure instead of timing out.",
		Evidence: ev}
}

// detectTimeouts: the share of vector-store (or targeted) timeouts exceeds
// its target, or 0.1 % when no target names it. poolExhausted says that a
// pool running out explains the plain timeouts already.
func detectTimeouts(c *scenarioCtx, poolExhausted bool) *Finding {
	// Requests that ran past --request-timeout are held to the scenario's
	// error-rate target (1 % when it has none); a target on a
	// timeout kind of its own overrides either bound.
	bounds := map[string]float64{runspec.ErrVectorTimeout: defaultVectorPct, runspec.ErrTimeout: defaultErrorPct}
	for _, t := range c.targets {
		if t.ErrorKind == "" && t.Metric == "error_rate" && t.Max {
			bounds[runspec.ErrTimeout] = t.Bound
		}
	}
	for _, t := range c.targets {
		if t.ErrorKind != "" && strings.Contains(t.ErrorKind, "timeout") && t.Metric == "error_rate" && t.Max {
			bounds[t.ErrorKind] = t.Bound
		}
	}
	// Plain timeouts that a pool running out already explains are not
	// said twice; the vector store's keep their own finding: a vector
	// store timing out is worth its own target.
	if poolExhausted {
		delete(bounds, runspec.ErrTimeout)
	}
	var best *Finding
	bestShare := 0.0
	for kind, bound := range bounds {
		var total int64
		worst, worstUsers := 0.0, 0
		byUsers := map[string]float64{}
		for _, st := range c.stages {
			all := st.Operations[AllOps]
			if all == nil || all.Count == 0 {
				continue
			}
			n := all.Errors[kind]
			total += n
			share := 100 * float64(n) / float64(all.Count)
			byUsers[fmt.Sprint(st.Users)] = share
			if share > worst && beyondNoise(n, all.Count, bound, len(c.stages)) {
				worst, worstUsers = share, st.Users
			}
		}
		if total < 2 || worst <= bound {
			continue
		}
		sev := SeverityMedium
		if worst > bound/DefaultAcceptance {
			sev = SeverityHigh
		}
		action := "Find why the store is slow under load (pool size, index, collection size, its CPU) and raise its timeout only once it keeps up."
		if kind != runspec.ErrVectorTimeout {
			action = "Requests ran out of time: find what they wait on under load (the capacity findings, the service's queues and pools) before raising the timeout."
		}
		f := &Finding{Kind: KindTimeouts, Scenario: c.name, Operation: c.worstOpAll(kind), Severity: sev,
			Summary:  fmt.Sprintf("%s: %.2f %% of requests failed with %s at %d users, over the %.3g %% target.", c.name, worst, kind, worstUsers, bound),
			Action:   action,
			Evidence: &TimeoutEvidence{ErrorKind: kind, SharePctByUsers: byUsers, WorstSharePct: worst, TargetPct: bound, Count: total}}
		if best == nil || worst > bestShare {
			best, bestShare = f, worst
		}
	}
	return best
}

// beyondNoise says whether n failures of count requests are more than a
// true share at boundPct would give, beyond chance: a stage of 70 requests
// with one timeout shows 1.4 %, which a service timing out 0.3 % of its
// requests does in one stage of five. One-sided binomial test at
// errorAlpha, Bonferroni-corrected over the stages tested.
func beyondNoise(n, count int64, boundPct float64, stages int) bool {
	if n == 0 || count == 0 {
		return false
	}
	if boundPct <= 0 {
		return true
	}
	b := distuv.Binomial{N: float64(count), P: min(boundPct/100, 1)}
	return b.Survival(float64(n-1)) < errorAlpha/float64(max(stages, 1))
}

// errorAlpha is the chance, per scenario, of naming timeouts that a
// service inside its bound produced by luck.
const errorAlpha = 0.05

func (c *scenarioCtx) worstOp(st stageData, kinds map[string]bool) string {
	op, top := AllOps, int64(0)
	for name, o := range st.Operations {
		if name == AllOps {
			continue
		}
		var n int64
		for k, v := range o.Errors {
			if kinds[k] {
				n += v
			}
		}
		if n > top || (n == top && n > 0 && name < op) {
			op, top = name, n
		}
	}
	return op
}

func (c *scenarioCtx) worstOpAll(kind string) string {
	by := map[string]int64{}
	for _, st := range c.stages {
		for name, o := range st.Operations {
			if name != AllOps {
				by[name] += o.Errors[kind]
			}
		}
	}
	op, top := AllOps, int64(0)
	for k, v := range by {
		if v > top || (v == top && v > 0 && k < op) {
			op, top = k, v
		}
	}
	return op
}
