package analyze

import (
	"fmt"
	"math"
	"strings"
)

// Thresholds of the capacity detectors; docs/analyze.md explains each.
const (
	serialPEff = 1.6 // effective parallelism under this is one-at-a-time work
	serialR2   = 0.8 // latency linear in users
	// A single server's latency grows by its service time per user, so the
	// one-user latency over the slope estimates its servers c: serialization
	// needs c near 1. Work that grows faster than the queue (c far under 1)
	// is not one server.
	serialMinC = 0.5
	serialMaxC = 1.6
)

// The capacity family names what limits a scenario's throughput from the
// shape of its curve: one request at a time, a curve that falls, or a
// plateau with no more specific explanation. The GPU family's
// gpu_saturation is another explanation of the same limit; the link step
// keeps the most specific one.
func init() {
	register(detector{name: "capacity", detect: detectCapacity, kinds: []kindSpec{
		// A curve that falls is retrograde even where it also looks like
		// one request at a time: a single server's throughput stays.
		{kind: KindRetrograde, rank: 50, explains: 2},
		{kind: KindSerialization, rank: 20, explains: 3, namesCause: true},
		{kind: KindThroughputPlateau, rank: 70, explains: 4},
	}})
}

func detectCapacity(sc *scenarioCtx) detected {
	var d detected
	if n := len(sc.curve.clean); n < 3 && len(sc.stages) > 0 {
		// Say why no capacity finding can appear, rather than let
		// silence read as "scales fine".
		d.marks = append(d.marks, stageMark{sc.stages[0].Stage, fmt.Sprintf("%s has %d clean user count(s): serialization, plateau, retrograde and GPU saturation need three (a 1-user baseline first)", sc.name, n)})
	}
	op, growth := sc.bottleneckOp()
	var opModels []ModelFit
	if op != AllOps {
		opModels = sc.operationModels(op)
	}
	serial := detectSerialization(sc)
	for _, f := range []*Finding{serial, detectRetrograde(sc), detectThroughputPlateau(sc)} {
		if f == nil {
			continue
		}
		f.Summary += modelSummary(sc.curve.models)
		if op != AllOps {
			others := 0.0
			for name, g := range growth {
				if name != op {
					others = math.Max(others, g)
				}
			}
			f.Operation = op
			ev := f.Evidence.(*CapacityEvidence)
			ev.OperationLatencyGrowth = growth
			if len(opModels) > 0 {
				ev.OperationModel, ev.OperationModelParams = opModels[0].Model, opModels[0].Params
			}
			// A plateau of the whole whose one growing operation's own
			// curve is clearly one server: that operation is serialized
			// while the others scale.
			if c := serversOf(opModels); f.Kind == KindThroughputPlateau && serial == nil && clearlyOneServer(opModels) {
				top := sc.stageOf(sc.curve.clean[len(sc.curve.clean)-1].Stage).Operations[op]
				f.Kind = KindSerialization
				f.Summary = fmt.Sprintf("%s: operation %s handles one request at a time: its mean latency grew %.1f× up to %g users while the other operations' grew at most %.1f×, and its throughput stays at %.1f req/s (its curve is one server's: c = %.1f).",
					sc.name, op, growth[op], sc.curve.clean[len(sc.curve.clean)-1].Users, others, top.OKRPS, c) + sc.caveat()
				f.Action = "Find the lock, single worker or single-threaded executor that operation queues on (a store or tool only it uses) and let its requests run concurrently; the other operations are not the limit."
				f.Severity = sc.severity()
			} else {
				f.Summary += fmt.Sprintf(" The growth is in operation %s alone: its mean latency grew %.1f× up to %g users while the others' grew at most %.1f×.",
					op, growth[op], sc.curve.clean[len(sc.curve.clean)-1].Users, others)
				if decisive(opModels) {
					f.Summary += " Its own throughput:" + strings.TrimPrefix(modelSummary(opModels), " Of the capacity models,")
				}
			}
		}
		d.findings = append(d.findings, *f)
	}
	if len(d.findings) == 0 && op != AllOps {
		if f := sc.operationSerialization(op, growth, opModels); f != nil {
			d.findings = append(d.findings, *f)
		}
	}
	return d
}

// operationSerialization names one operation that handles one request at
// a time while the scenario as a whole still scales: a rare operation (a
// report, a RAG query) queues on its own lock while the others' requests
// run in parallel, so the whole curve neither plateaus nor bends; only
// that operation's own does. Its latency alone grew (bottleneckOp) and
// its own throughput curve fits one server's (its ceiling one request per
// its one-user latency) at least as well as any other, and at the most
// users the operation is busy about all the time. A rare operation has
// few requests per stage, so its curve alone seldom rejects a line that
// still rises; a queue that grew (its latency) on a server busy all the
// time is what one server at its ceiling looks like, while a line with
// room left has no queue.
func (sc *scenarioCtx) operationSerialization(op string, growth map[string]float64, opModels []ModelFit) *Finding {
	if !oneServerFits(opModels) {
		return nil
	}
	cv := sc.curve.clean
	top := sc.stageOf(cv[len(cv)-1].Stage)
	o := top.Operations[op]
	var first *OpStats
	for _, p := range cv {
		if b := sc.stageOf(p.Stage).Operations[op]; b != nil && len(b.Durations) >= opCurveMinOK {
			first = b
			break
		}
	}
	if o == nil || first == nil || first.LatencyMS.Avg <= 0 {
		return nil
	}
	// One server's throughput is at most one request per service time:
	// the operation's busy share (its throughput × one-user latency) at
	// the most users is near 1, not over (several servers) nor far under
	// (a curve that bent for another reason).
	busy := o.OKRPS * first.LatencyMS.Avg / 1000
	if busy < opSerialBusy || busy > serialMaxC {
		return nil
	}
	others, slowest := 0.0, 0.0
	latency := map[string]float64{}
	for name, st := range top.Operations {
		if name == AllOps {
			continue
		}
		latency[name] = round(st.LatencyMS.Avg, 3)
		if name != op {
			others = math.Max(others, growth[name])
			slowest = math.Max(slowest, st.LatencyMS.Avg)
		}
	}
	ev := sc.capEvidence()
	ev.OperationLatencyGrowth = growth
	ev.OperationMeanLatencyMS = latency
	ev.OperationModel, ev.OperationModelParams = opModels[0].Model, opModels[0].Params
	users := cv[len(cv)-1].Users
	than := ""
	if slowest > 0 {
		than = fmt.Sprintf(" (%.1f× the slowest other's %.0f ms)", o.LatencyMS.Avg/slowest, slowest)
	}
	return &Finding{Kind: KindSerialization, Scenario: sc.name, Operation: op, Severity: sc.severity(),
		Summary: fmt.Sprintf("%s: operation %s handles one request at a time while the others scale: its mean latency grew %.1f× up to %g users, to %.0f ms%s, while the other operations' grew at most %.1f×; its throughput reaches %.1f req/s, one request per its %.0f ms one-user latency (busy %.0f %% of the time).",
			sc.name, op, growth[op], users, o.LatencyMS.Avg, than, others, o.OKRPS, first.LatencyMS.Avg, 100*busy) +
			strings.Replace(modelSummary(opModels), " Of the capacity models,", " Of the capacity models for its own throughput,", 1) + sc.caveat(),
		Action:   "Find the lock, single worker or single-threaded executor that operation queues on (a store or tool only it uses) and let its requests run concurrently; the other operations are not the limit.",
		Evidence: ev}
}

// oneServerFits tells whether a model implying one server is the best fit
// of an operation's curve, or within decisiveAIC of it when linear scaling
// fits best: the points cannot tell a line from a ceiling just reached,
// and no model of several servers fits better.
func oneServerFits(fits []ModelFit) bool {
	if len(fits) == 0 {
		return false
	}
	one := func(f ModelFit) bool { c := serversOfFit(f); return c >= serialMinC && c <= serialMaxC }
	if one(fits[0]) {
		return true
	}
	if fits[0].Model != ModelLinear {
		return false
	}
	for _, f := range fits[1:] {
		if f.DeltaAIC >= decisiveAIC {
			break
		}
		if !one(f) {
			return false
		}
		return true
	}
	return false
}

// opSerialBusy is the least busy share of a serialized operation at the
// most users: below it the operation has not reached its ceiling, and a
// bend in its curve is not yet one server's.
const opSerialBusy = 0.7

// operationModels fits the capacity models to one operation's own curve:
// its successes per second against users over the clean points, with its
// mean latency at the fewest users as the one-user latency. A throughput
// needs fewer successes than a growth ratio does (opCurveMinOK): the curve
// must start before the operation queues, or the latency taken for its
// service time is already a queue's.
func (sc *scenarioCtx) operationModels(op string) []ModelFit {
	var n, x []float64
	r1 := 0.0
	for _, p := range sc.curve.clean {
		o := sc.stageOf(p.Stage).Operations[op]
		if o == nil || len(o.Durations) < opCurveMinOK {
			continue
		}
		if r1 == 0 {
			r1 = o.LatencyMS.Avg / 1000
		}
		n, x = append(n, p.Users), append(x, o.OKRPS)
	}
	return compareModels(n, x, r1)
}

// opMinOK is the successes an operation needs in a stage for its mean
// latency to say how it grew.
const opMinOK = 20

// opCurveMinOK is the successes a stage needs to be a point of an
// operation's own throughput curve.
const opCurveMinOK = 5

// bottleneckOp names the one operation whose mean latency grew with users
// (by latencyGrowth or more, from the fewest users of the curve at which
// it had opMinOK successes to the most) while every other operation's did not: the limit is in that
// operation (a store RAG queries share, a lock one tool takes), not in the
// service as a whole. AllOps when the scenario has one operation, or more
// than one grew. growth is every operation's, for the evidence.
func (sc *scenarioCtx) bottleneckOp() (op string, growth map[string]float64) {
	cv := sc.curve.clean
	if len(cv) < 3 {
		return AllOps, nil
	}
	top := sc.stageOf(cv[len(cv)-1].Stage)
	growth = map[string]float64{}
	added := map[string]float64{} // ms of mean latency gained
	for name, o := range top.Operations {
		if name == AllOps || len(o.Durations) < opMinOK {
			continue
		}
		// From the fewest users at which the operation had enough
		// successes: a rare one has few at one user.
		for _, p := range cv[:len(cv)-1] {
			if b := sc.stageOf(p.Stage).Operations[name]; b != nil && len(b.Durations) >= opMinOK && b.LatencyMS.Avg > 0 {
				growth[name] = o.LatencyMS.Avg / b.LatencyMS.Avg
				added[name] = o.LatencyMS.Avg - b.LatencyMS.Avg
				break
			}
		}
	}
	if len(growth) < 2 {
		return AllOps, nil
	}
	op = AllOps
	for name, g := range growth {
		if g >= latencyGrowth && (op == AllOps || g > growth[op]) {
			op = name
		}
	}
	if op == AllOps {
		return AllOps, nil
	}
	for name, g := range growth {
		// Another operation that grew too is the service as a whole,
		// unless the latency it gained is a small part of what op
		// gained: a queue the operations share adds the same wait to
		// each (the fastest grows most in ratio), while a busy machine's
		// stalls add a few ms to every operation beside op's own queue.
		if name != op && g >= latencyGrowth && added[op] < opAloneAdded*added[name] {
			return AllOps, nil
		}
	}
	return op, growth
}

// opAloneAdded is how many times the latency (ms) another operation gained
// the one that grew must have gained to be the limit alone.
const opAloneAdded = 4.0

// capEvidence is the evidence every capacity finding shares.
func (sc *scenarioCtx) capEvidence() *CapacityEvidence {
	cv := sc.curve
	first, last := cv.clean[0], cv.clean[len(cv.clean)-1]
	ev := &CapacityEvidence{
		Users:                usersOf(cv.clean),
		ThroughputRPS:        mapPoints(cv.clean, func(p Point) float64 { return p.X }),
		MeanLatencyMS:        mapPoints(cv.clean, func(p Point) float64 { return p.RMS }),
		LatencySlope:         cv.cap.slope,
		LatencyR2:            cv.cap.r2,
		EffectiveParallelism: cv.cap.pEff,
		LatencyGrowth:        last.RMS / first.RMS,
		UntrustworthyUsers:   sc.untrusted(),
	}
	if cv.cap.knee >= 0 {
		ev.KneeUsers = ptr(sc.kneeUsers())
	}
	if len(cv.models) > 0 {
		ev.Model, ev.ModelParams = cv.models[0].Model, cv.models[0].Params
		ev.ModelConfidence = ptr(cv.modelConfidence)
		if len(cv.modelCI) > 0 {
			ev.ModelParamsCI = map[string][2]float64{}
			for k, v := range cv.modelCI {
				ev.ModelParamsCI[k] = [2]float64{round(v[0], 4), round(v[1], 4)}
			}
		}
		for _, m := range cv.models[1:] {
			p := map[string]float64{}
			for k, v := range m.Params {
				p[k] = round(v, 4)
			}
			ev.ModelsRejected = append(ev.ModelsRejected, ModelFit{Model: m.Model, Params: p, AIC: round(m.AIC, 2), DeltaAIC: round(m.DeltaAIC, 2), Why: m.Why})
		}
	}
	if f := cv.usl; f != nil {
		ev.USLLambda, ev.USLSigma, ev.USLKappa = ptr(f.Lambda), ptr(f.Sigma), ptr(f.Kappa)
		if !math.IsInf(f.NMax, 0) {
			ev.USLNMax = ptr(f.NMax)
		}
		if f.UsersAtP95Goal > 0 {
			ev.UsersAtP95Target = ptr(f.UsersAtP95Goal)
		}
	}
	return ev
}

// detectSerialization: latency linear in users, throughput flat (not
// fallen 15 % or more from its peak: that is retrograde), the peak
// throughput times the one-user latency (effective parallelism) ≈ 1, and
// the servers the latency slope implies ≈ 1.
func detectSerialization(sc *scenarioCtx) *Finding {
	c := sc.curve.cap
	if !c.plateau || c.pEff > serialPEff || c.r2 < serialR2 || c.slope <= 0 {
		return nil
	}
	top, peak := sc.curve.clean[len(sc.curve.clean)-1], sc.curve.clean[c.peak]
	if top.X <= retrogradeDrop*peak.X {
		return nil
	}
	servers := sc.curve.clean[0].RMS / sc.slopeFromKnee()
	if servers < serialMinC || servers > serialMaxC {
		return nil
	}
	// And when one capacity model fits clearly best, it is one server,
	// not a pool, a curve that turns down or one still rising.
	if m := sc.curve.models; decisive(m) {
		if c := serversOf(m); c < serialMinC || c > serialMaxC {
			return nil
		}
	}
	ev := sc.capEvidence()
	ev.ServersFromSlope = ptr(servers)
	return &Finding{Kind: KindSerialization, Scenario: sc.name, Operation: AllOps, Severity: sc.severity(),
		Summary: fmt.Sprintf("%s handles one request at a time: latency grows linearly with users (%.0f ms per user, R² %.2f) while throughput stays at %.1f req/s from %g users (effective parallelism %.2f).",
			sc.name, c.slope, c.r2, top.X, sc.kneeUsers(), c.pEff) + sc.caveat(),
		Action:   "Find the lock, single worker or single-threaded executor the requests queue on and let requests run concurrently (a worker pool, async handlers, or more replicas).",
		Evidence: ev}
}

// slopeFromKnee is the latency slope (ms per user) over the points from
// the knee on, where one server's queue adds one service time per user;
// with think time the points before it sit flat, and a line through all
// of them is flatter than the queue's (the servers it implies too many).
// The slope over every point when fewer than two are past the knee, or
// when theirs is the lower.
func (sc *scenarioCtx) slopeFromKnee() float64 {
	c, p := sc.curve.cap, sc.curve.clean
	if c.knee < 0 || len(p)-c.knee < 2 {
		return c.slope
	}
	n, r := make([]float64, 0, len(p)), make([]float64, 0, len(p))
	for _, q := range p[c.knee:] {
		n, r = append(n, q.Users), append(r, q.RMS)
	}
	_, slope, _ := linReg(n, r)
	return math.Max(slope, c.slope)
}

// detectRetrograde: throughput falls as users grow, with a USL coherency
// term κ > 0.
func detectRetrograde(sc *scenarioCtx) *Finding {
	cv := sc.curve
	if !cv.cap.retro || cv.usl == nil || cv.usl.Kappa <= 1e-9 {
		return nil
	}
	ev := sc.capEvidence()
	peak, last := cv.clean[cv.cap.peak], cv.clean[len(cv.clean)-1]
	ev.PeakUsers, ev.PeakRPS = ptr(peak.Users), ptr(peak.X)
	return &Finding{Kind: KindRetrograde, Scenario: sc.name, Operation: AllOps, Severity: SeverityHigh,
		Summary: fmt.Sprintf("%s throughput falls as users grow: %.1f req/s at %g users, %.1f at %g (USL κ = %.3g, peak near %.0f users).",
			sc.name, peak.X, peak.Users, last.X, last.Users, cv.usl.Kappa, cv.usl.NMax) + sc.caveat(),
		Action:   "Look for crosstalk that grows with concurrency: lock contention with spinning, cache thrashing, retries, or coordination between workers; cap concurrency near the peak meanwhile.",
		Evidence: ev}
}

// detectThroughputPlateau: throughput stops growing at a knee while latency
// grows, and nothing more specific explains it.
func detectThroughputPlateau(sc *scenarioCtx) *Finding {
	cv := sc.curve
	if !cv.cap.plateau {
		return nil
	}
	ev := sc.capEvidence()
	top := sc.stageOf(cv.clean[len(cv.clean)-1].Stage)
	hint := ""
	if u, ok := top.Resources[ResGPUUtil]; ok {
		ev.GPUUtilMeanPct = ptr(u.Mean)
		if u.Mean < gpuBusyPct {
			hint = fmt.Sprintf(" The GPU is at %.0f %%, so the limit is elsewhere (CPU, a pool, a lock).", u.Mean)
		}
	}
	if u, ok := top.Resources["cpu_util"]; ok {
		ev.CPUUtilMeanPct = ptr(u.Mean)
	}
	last := cv.clean[len(cv.clean)-1]
	return &Finding{Kind: KindThroughputPlateau, Scenario: sc.name, Operation: AllOps, Severity: sc.severity(),
		Summary: fmt.Sprintf("%s throughput stops growing at %g users (knee): %.1f req/s there, %.1f at %g users, while mean latency grew %.1f×; effective parallelism %.1f.%s",
			sc.name, sc.kneeUsers(), cv.clean[cv.cap.knee].X, last.X, last.Users, cv.cap.rGrowth, cv.cap.pEff, hint) + sc.caveat(),
		Action:   fmt.Sprintf("The service handles about %.0f requests at once: raise that limit (workers, pool size, batch size, replicas) or keep the load under the knee.", math.Max(1, cv.cap.pEff)),
		Evidence: ev}
}

// untrusted lists the user counts of curve points the load generator
// did not drive as intended.
func (sc *scenarioCtx) untrusted() []float64 {
	var out []float64
	for _, p := range sc.curve.clean {
		if !p.Trustworthy {
			out = append(out, p.Users)
		}
	}
	return out
}

// caveat is appended to a capacity finding's summary that rests on
// untrustworthy stages.
func (sc *scenarioCtx) caveat() string {
	u := sc.untrusted()
	if len(u) == 0 {
		return ""
	}
	return fmt.Sprintf(" (The load generator lagged at %v users: those points are lower bounds of the load offered.)", u)
}

// severity of a capacity finding: high when a latency or throughput target
// of the scenario fails.
func (sc *scenarioCtx) severity() Severity {
	for _, t := range sc.targets {
		if t.Verdict == Fail && t.Metric != "count" && t.Metric != "error_rate" {
			return SeverityHigh
		}
	}
	return SeverityMedium
}
