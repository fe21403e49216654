package analyze

import (
	"fmt"
	"math"
	"strings"

	"github.com/loadtape/loadtape/runspec"
)

// Thresholds of the load generator's checks; docs/analyze.md explains each.
const (
	maxSendLagMS    = 10.0 // requests sent later than this are counted (OpStats.Lagged)
	lagFloorMS      = 2.0  // send-lag p99 a generator keeping up stays within, whatever the latency
	lagShare        = 0.10 // send-lag p99 beyond this share of the stage's median latency distorts it
	minLagged       = 3    // requests over the bound before a stage's lag counts
	littleTolerance = 0.10 // Little's law mismatch tolerated: think times are drawn, and a stage holds few iterations
	stealPct        = 2.0  // hypervisor steal (mean over a stage) that names the host as the cause
)

// lagBound is the send-lag p99 beyond which a stage's measurements are
// distorted by the generator: a tenth of the stage's median latency, and
// at least lagFloorMS. Lag adds to when a user sees the answer (latency
// from the intended send time) and, in open mode, bunches arrivals that
// were meant to be apart; how much that matters is a matter of the
// latency beside it. The latency is the run's own, at its time scale: a
// run compressed tenfold has a tenth of the latency and the same lag, so
// the same lag weighs ten times as much there. A fixed bound of 10 ms
// let 9 ms of lag pass on a 2 ms service (from-intended latency 5 times
// the latency) and in the demo at a time scale of 0.1 (the same as 100 ms
// in the unscaled run), and it condemned 15 ms beside 2 s answers.
func lagBound(all *OpStats) float64 {
	return math.Max(lagFloorMS, lagShare*all.LatencyMS.P50)
}

// lateAtLeast is how many requests were sent more than bound ms late, at
// least, as far as the stage's percentiles tell: a nearest-rank quantile q
// over the bound puts every request from rank ⌈q·n⌉ on over it. Lagged
// (requests over maxSendLagMS, counted exactly) counts too when the bound
// is at most that.
func lateAtLeast(all *OpStats, bound float64) int64 {
	l := all.SendLagMS
	n := all.Count - all.Errors[runspec.ErrDropped] // dropped arrivals were never sent
	var late int64
	if l.Max > bound {
		late = 1
	}
	for _, q := range []struct{ p, v float64 }{{0.5, l.P50}, {0.9, l.P90}, {0.95, l.P95}, {0.99, l.P99}} {
		if q.v > bound && n > 0 {
			late = max(late, n-int64(math.Ceil(q.p*float64(n)))+1)
		}
	}
	if bound <= maxSendLagMS {
		late = max(late, all.Lagged)
	}
	return late
}

// stageTrust is the trust step's verdict on one stage: what showed that
// the load generator did not drive it as intended, if anything.
type stageTrust struct {
	lagP99MS float64 // p99 send lag, when it counts against the stage (else 0)
	little   *littleOff
}

// littleOff is a Little's law mismatch beyond the tolerance, with the
// think the profile asks for and the think the generator's records show.
type littleOff struct{ n, predicted, offPct, thinkS, thinkSeen float64 }

// thinkOff tells whether the generator paused longer or shorter than the
// profile asks, by more than the tolerance: then that is the cause.
func (l *littleOff) thinkOff() bool {
	return l.thinkS > 0 && l.thinkSeen > 0 && math.Abs(l.thinkSeen-l.thinkS)/l.thinkS > littleTolerance
}

func (t stageTrust) ok() bool { return t.lagP99MS == 0 && t.little == nil }

// why says in words what made the stage untrustworthy.
func (t stageTrust) why() string {
	var why []string
	if t.lagP99MS > 0 {
		why = append(why, fmt.Sprintf("requests sent late: send lag p99 %.1f ms", t.lagP99MS))
	}
	if l := t.little; l != nil && l.thinkOff() {
		why = append(why, fmt.Sprintf("users paused %.3g s between requests where the profile says %.3g s: %.1f users busy by Little's law X·(R+Z) against %.1f running (%.0f %% off)", l.thinkSeen, l.thinkS, l.predicted, l.n, l.offPct))
	} else if l != nil {
		why = append(why, fmt.Sprintf("users idle outside their requests and think times: %.1f users busy by Little's law X·(R+Z) against %.1f running (%.0f %% off)", l.predicted, l.n, l.offPct))
	}
	return strings.Join(why, "; ")
}

// judgeTrust is the trust step, which judges the load generator by its own
// records: per stage, it sent requests late (send-lag p99 over lagBound,
// with at least minLagged requests over it), or
// its users were neither in a request nor thinking for a share of the time
// (Little's law N = X·(R+Z) off by more than 10 %, with R the time requests
// ran inside the window: a request waiting in the target across the
// window's start or end keeps its user busy, so a queue in the target never
// counts against the generator). Those stages are marked untrustworthy; the
// capacity findings name them.
func judgeTrust(sc *scenarioCtx) []stageTrust {
	out := make([]stageTrust, len(sc.stages))
	for i, st := range sc.stages {
		all := st.Operations[AllOps]
		if all == nil || all.Count == 0 {
			continue
		}
		// In a short stage p99 is nearly the maximum, and one request
		// delayed by a GC pause would condemn it: a few must have lagged.
		if l := all.SendLagMS; l != nil {
			if b := lagBound(all); l.P99 > b && lateAtLeast(all, b) >= minLagged {
				out[i].lagP99MS = l.P99
			}
		}
		if lc := st.little; lc.Known && lc.N > 0 {
			off := math.Abs(lc.Predicted-lc.N) / lc.N
			tol := math.Max(littleTolerance, 2/math.Sqrt(math.Max(lc.Iterations, 1)))
			if off > tol {
				out[i].little = &littleOff{n: lc.N, predicted: lc.Predicted, offPct: 100 * off, thinkS: lc.ThinkS, thinkSeen: lc.ThinkSeen}
			}
		}
	}
	return out
}

// The load generator's family: a finding for the stages the trust step
// found it did not drive as intended.
func init() {
	register(detector{name: "load generator", detect: func(sc *scenarioCtx) detected { return found(detectLoadGenerator(sc)) },
		kinds: []kindSpec{{kind: KindLoadGenSaturated, rank: 90}}})
}

func detectLoadGenerator(sc *scenarioCtx) *Finding {
	var bad []LaggingStage
	sev := SeverityMedium
	var most int32    // requests in flight over the lagging stages
	allThink := true  // every stage's cause is a think unlike the profile's
	var steal float64 // the most hypervisor steal of a lagging stage, % (0: under stealPct)
	for i, st := range sc.stages {
		tr := sc.trust[i]
		if tr.ok() {
			continue
		}
		allThink = allThink && tr.lagP99MS == 0 && tr.little != nil && tr.little.thinkOff()
		item := LaggingStage{Stage: st.Stage.Stage, Users: st.Users, Why: tr.why()}
		if tr.lagP99MS > 0 {
			item.SendLagP99MS = ptr(tr.lagP99MS)
			if tr.lagP99MS > 100 {
				sev = SeverityHigh
			}
		}
		if l := tr.little; l != nil {
			item.LittleUsers, item.LittlePredicted, item.LittleOffPct = ptr(l.n), ptr(l.predicted), ptr(l.offPct)
			if l.thinkSeen > 0 {
				item.ThinkProfileS, item.ThinkSeenS = ptr(l.thinkS), ptr(l.thinkSeen)
			}
			if l.offPct > 25 {
				sev = SeverityHigh
			}
		}
		if r, ok := st.Resources[ResCPUSteal]; ok && r.Mean >= stealPct {
			item.HostStealPct = ptr(r.Mean)
			steal = max(steal, r.Mean)
		}
		most = max(most, st.inFlight)
		bad = append(bad, item)
	}
	if len(bad) == 0 {
		return nil
	}
	users := make([]string, len(bad))
	for i, b := range bad {
		users[i] = fmt.Sprint(b.Users)
	}
	action := "Give the replayer more CPU, shard it across machines (--shard), or lower the load per replayer; then rerun those stages."
	if allThink {
		action = "The users paused between requests for another time than the profile's think: check the think the profile gives and the run's time scale, then whether the replayer's CPU wakes its users late (more CPU, --shard); then rerun those stages."
	}
	// Steal is time the replayer's host was not given, counted in no
	// process's CPU: a replayer that looks idle still sends late, and
	// more CPU inside the same virtual machine does not help.
	hostNote := ""
	if steal > 0 {
		hostNote = fmt.Sprintf(" The hypervisor took up to %.1f %% of the replayer host's CPU time (steal) in those stages.", steal)
		action = "The replayer's virtual machine was not given its cores: run it on dedicated cores (a host or instance type without CPU overcommit) or shard it across machines (--shard); then rerun those stages."
	}
	ev := &LoadGenEvidence{Stages: bad}
	// In open mode the usual cause is not the CPU: every worker was busy
	// with a slow target and arrivals queued for one.
	if sc.workers > 0 && int(most) > sc.workers {
		ev.Workers, ev.MaxInFlightSeen = ptr(sc.workers), ptr(most)
		action = fmt.Sprintf("All %d workers were busy (up to %d requests in flight, queued ones included): raise `workers` for scenario %s in the profile (at most its max_in_flight), or shard the replay; then rerun those stages.", sc.workers, most, sc.name)
	}
	return &Finding{Kind: KindLoadGenSaturated, Scenario: sc.name, Operation: AllOps, Severity: sev,
		Summary:  fmt.Sprintf("The load generator could not keep up in %d stage(s) of %s (users %s): %s; those stages are not trustworthy.%s", len(bad), sc.name, strings.Join(users, ", "), bad[0].Why, hostNote),
		Action:   action,
		Evidence: ev}
}

// littleCheck is Little's law for one closed-mode stage: users busy in a
// request or thinking, N = X·(R+Z), computed as (Σ R + iterations·Z)/T.
type littleCheck struct {
	Known      bool
	N          float64 // users running (mean of active_users, else the stage's users)
	Predicted  float64
	Iterations float64
	ThinkS     float64 // the profile's mean think, seconds
	// ThinkSeen is the mean pause the generator made between a user's
	// request and its next, from its own records (0: none seen).
	ThinkSeen float64
}

func (st *stageAcc) little(thinkS float64, s *Stage) littleCheck {
	if thinkS < 0 || (st.mode != "closed" && st.mode != "") || s.WindowS <= 0 || st.iterations == 0 {
		return littleCheck{}
	}
	// The users the stage asked for, or fewer while they were still being
	// spawned: active_users can only lower it, so that a replayer counting
	// users still waiting for a later stage does not inflate it.
	n := float64(s.Users)
	if st.activeN > 0 {
		n = math.Min(n, st.activeSum/float64(st.activeN))
	}
	pred := (st.busyNS/1e9 + float64(st.iterations)*thinkS) / s.WindowS
	lc := littleCheck{Known: true, N: n, Predicted: pred, Iterations: float64(st.iterations), ThinkS: thinkS}
	if st.thinkN > 0 {
		lc.ThinkSeen = st.thinkSum / float64(st.thinkN) / 1e9
	}
	return lc
}
