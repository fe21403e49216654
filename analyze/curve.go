package analyze

import (
	"hash/fnv"
	"math"
	"slices"
)

// Thresholds of the throughput curve; docs/analyze.md explains each.
const (
	cleanErrorRate = 0.05 // stages above it are left out of the throughput curve: failures, not capacity, shape it
	flatGrowth     = 1.2  // throughput grew at most this much over the plateau...
	plateauUsers   = 1.5  // ...while users grew at least this much
	latencyGrowth  = 1.3  // and latency grew at least this much: work queued
	retrogradeDrop = 0.85 // throughput at the top below this share of its peak
)

// curve is a scenario's throughput curve: its clean points, its shape and
// the USL fitted to it. The capacity detectors share it so that they agree
// on where the knee is.
type curve struct {
	clean  []Point
	cap    capacity
	usl    *USLFit
	models []ModelFit // the capacity models fitted to the clean points, best first
	// modelConfidence is the share of redrawn curves that choose the same
	// model; modelCI the chosen model's parameters' 90 % intervals.
	modelConfidence float64
	modelCI         map[string][2]float64
}

// capacity is the shape of the throughput curve.
type capacity struct {
	ok                        bool // enough clean points to judge
	knee                      int  // index in clean of the knee; -1 none
	plateau                   bool
	xGrowth, nGrowth, rGrowth float64
	pEff                      float64 // X_max · R₁
	slope, r2                 float64 // latency (ms) against users
	peak                      int
	retro                     bool
}

// fitCurve is the curve step: clean points, their shape, the USL.
func fitCurve(sc *scenarioCtx) curve {
	var cv curve
	cv.clean = cleanPoints(sc.stages, sc.trust)
	cv.cap = analyseCapacity(cv.clean)
	if len(cv.clean) >= 3 {
		cv.usl = fitUSL(usersOf(cv.clean), mapPoints(cv.clean, func(p Point) float64 { return p.X }))
		n, x, r1 := usersOf(cv.clean), mapPoints(cv.clean, func(p Point) float64 { return p.X }), cv.clean[0].RMS/1000
		cv.models = compareModels(n, x, r1)
		if len(cv.models) > 0 {
			cv.modelConfidence, cv.modelCI = bootstrapModels(n, x, r1, sc.curveNoise(cv.clean), cv.models[0].Model, cv.usl)
		}
		if top := cv.clean[len(cv.clean)-1]; cv.usl != nil && top.RMS > 0 {
			cv.usl.UsersAtP95Goal = cv.usl.usersAtGoal(sc.p95Goal, sc.thinkS, top.P95/top.RMS, 100*top.Users)
		}
	}
	return cv
}

// curveNoise is the measurement noise of the clean points, from the
// successes of their stages.
func (sc *scenarioCtx) curveNoise(clean []Point) curveNoise {
	h := fnv.New64a()
	h.Write([]byte(sc.name))
	cn := curveNoise{n: make([]float64, len(clean)), seedH: h.Sum64()}
	for i, p := range clean {
		cn.n[i] = float64(len(sc.stageOf(p.Stage).Operations[AllOps].Durations))
	}
	if d := sc.stageOf(clean[0].Stage).Operations[AllOps].Durations; len(d) > 1 {
		var sum, sq float64
		for _, v := range d {
			sum += float64(v)
		}
		m := sum / float64(len(d))
		for _, v := range d {
			sq += (float64(v) - m) * (float64(v) - m)
		}
		if m > 0 {
			cn.r1CV = math.Sqrt(sq/float64(len(d)-1)) / m / math.Sqrt(float64(len(d)))
		}
	}
	return cn
}

// cleanPoints are the stages whose error rate is low enough that
// throughput reflects capacity, averaged per user count. Stages where the
// load generator lagged stay in: what they measured is real, only less load
// than intended was offered, which cannot fake a plateau (that needs latency
// to grow); the findings name them.
func cleanPoints(stages []stageData, trust []stageTrust) []Point {
	var pts []Point
	for i, st := range stages {
		all := st.Operations[AllOps]
		if all == nil || all.Count == 0 || all.ErrorRate > cleanErrorRate || len(all.Durations) == 0 {
			continue
		}
		p := pointOf(st.Stage, trust[i].ok())
		if n := len(pts); n > 0 && pts[n-1].Users == p.Users {
			q := &pts[n-1] // a longer stage at the same load: average the two
			q.X, q.RPS, q.RMS = (q.X+p.X)/2, (q.RPS+p.RPS)/2, (q.RMS+p.RMS)/2
			q.P50, q.P95, q.P99 = math.Max(q.P50, p.P50), math.Max(q.P95, p.P95), math.Max(q.P99, p.P99)
			q.Trustworthy = q.Trustworthy && p.Trustworthy
			continue
		}
		pts = append(pts, p)
	}
	return pts
}

func pointOf(st *Stage, trusted bool) Point {
	all := st.Operations[AllOps]
	return Point{Stage: st.Stage, Users: float64(st.Users), X: all.OKRPS, RPS: all.RPS, RMS: all.LatencyMS.Avg,
		P50: all.LatencyMS.P50, P95: all.LatencyMS.P95, P99: all.LatencyMS.P99, ErrorRate: all.ErrorRate, Trustworthy: trusted}
}

func analyseCapacity(p []Point) capacity {
	c := capacity{knee: -1, peak: -1}
	if len(p) < 3 {
		return c
	}
	c.ok = true
	n, x, r := make([]float64, len(p)), make([]float64, len(p)), make([]float64, len(p))
	for i, q := range p {
		n[i], x[i], r[i] = q.Users, q.X, q.RMS
	}
	_, c.slope, c.r2 = linReg(n, r)
	xmax := slices.Max(x)
	c.peak = slices.Index(x, xmax)
	c.pEff = xmax * r[0] / 1000
	last := len(p) - 1
	if c.peak < last && x[last] <= retrogradeDrop*xmax && n[last] > n[c.peak] && r[last] >= latencyGrowth*r[c.peak] {
		c.retro = true
	}
	c.knee = kneedle(n, x)
	k := c.knee
	if k < 0 || k == last {
		k = 0 // no bend: is it flat from the start?
	}
	c.xGrowth, c.nGrowth, c.rGrowth = x[last]/x[k], n[last]/n[k], r[last]/r[k]
	if x[k] <= 0 || r[k] <= 0 {
		return c
	}
	if c.nGrowth >= plateauUsers && c.xGrowth <= flatGrowth && c.rGrowth >= latencyGrowth {
		c.plateau = true
		c.knee = k
	}
	return c
}

func (sc *scenarioCtx) kneeUsers() float64 {
	if sc.curve.cap.knee < 0 {
		return 0
	}
	return sc.curve.clean[sc.curve.cap.knee].Users
}

func usersOf(p []Point) []float64 { return mapPoints(p, func(p Point) float64 { return p.Users }) }

func mapPoints(p []Point, f func(Point) float64) []float64 {
	out := make([]float64, len(p))
	for i, q := range p {
		out[i] = round(f(q), 3)
	}
	return out
}
