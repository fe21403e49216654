package analyze

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/loadtape/loadtape/captures"
)

// Thresholds the detectors use; docs/analyze.md explains each.
const (
	cleanErrorRate   = 0.05 // stages above it are left out of the throughput curve: failures, not capacity, shape it
	flatGrowth       = 1.2  // throughput grew at most this much over the plateau...
	plateauUsers     = 1.5  // ...while users grew at least this much
	latencyGrowth    = 1.3  // and latency grew at least this much: work queued
	serialPEff       = 1.6  // effective parallelism under this is one-at-a-time work
	serialR2         = 0.8  // latency linear in users
	retrogradeDrop   = 0.85 // throughput at the top below this share of its peak
	gpuBusyPct       = 95.0 // GPU utilisation of a saturated GPU
	hostBusyPct      = 90.0 // host CPU share worth naming beside a busy GPU
	gpuMemPct        = 95.0 // GPU memory or KV-cache share under pressure
	memRise          = 5.0  // and, for device memory, points it rose over the stages: else it is a reservation
	maxSendLagMS     = 10.0 // p99 send lag of a load generator keeping up
	minLagged        = 3    // requests over maxSendLagMS before a stage's lag counts
	littleTolerance  = 0.10 // Little's law mismatch the plan tolerates
	abruptAt         = 0.01 // error rate at the onset of pool exhaustion
	abruptJump       = 10.0 // and at least this many times the rate of every stage before
	tailRatio        = 3.0  // p99/p50 at the top
	tailGrowth       = 2.0  // and its growth from the bottom
	tailMinCount     = 100  // successes a stage needs for its p99 to count
	tailMinSpreadMS  = 50.0 // and p99 − p50 at the top at least this
	defaultVectorPct = 0.1  // the plan's Qdrant timeout target, %
	defaultErrorPct  = 1.0  // the plan's error-rate target, %: the bound of plain timeouts without one
)

// scenarioCtx is what every detector looks at: one scenario's stages in
// order of users, the clean points of its throughput curve, and its targets.
type scenarioCtx struct {
	name    string
	workers int // open mode's send limit, from run.json (0: not open or not known)
	// poolExhausted is set when detectPoolExhaustion found the scenario's
	// pool running out; detectTimeouts, which runs after it, reads it.
	poolExhausted bool
	stages        []*Stage
	clean         []Point
	view          *Scenario
	targets       []TargetResult
	cap           capacity
}

// capacity is the shape of the throughput curve, shared by the capacity
// detectors so that they agree on where the knee is.
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

// detect runs every detector over every scenario. Specific explanations
// of a throughput limit (serialization, GPU saturation, retrograde) take
// the place of the generic throughput_plateau.
func detect(scenarios []*scenarioCtx) []Finding {
	var out []Finding
	for _, c := range scenarios {
		if f := detectLoadGenerator(c); f != nil {
			out = append(out, *f)
		}
		c.clean = cleanPoints(c.stages)
		c.cap = analyseCapacity(c.clean)
		if len(c.clean) < 3 && len(c.stages) > 0 {
			// Say why no capacity finding can appear, rather than let
			// silence read as "scales fine".
			st := c.stages[0]
			st.Notes = append(st.Notes, fmt.Sprintf("%s has %d clean user count(s): serialization, plateau, retrograde and GPU saturation need three (a 1-user baseline first)", c.name, len(c.clean)))
		}
		if len(c.clean) >= 3 {
			c.view.USL = c.usl(usersOf(c.clean), mapPoints(c.clean, func(p Point) float64 { return p.X }))
		}
		var capFinding *Finding
		for _, d := range []func(*scenarioCtx) *Finding{detectGPUSaturation, detectSerialization, detectRetrograde, detectThroughputPlateau} {
			if capFinding = d(c); capFinding != nil {
				out = append(out, *capFinding)
				break
			}
		}
		for _, d := range []func(*scenarioCtx) *Finding{detectGPUMemoryPressure, detectPoolExhaustion, detectTimeouts, detectTailAmplification, detectSandboxViolation} {
			if f := d(c); f != nil {
				out = append(out, *f)
				c.poolExhausted = c.poolExhausted || f.Kind == KindPoolExhaustion
			}
		}
	}
	linkConcurrentMisses(out, scenarios)
	for i := range out {
		roundEvidence(out[i].Evidence)
	}
	// The bottleneck first: by severity, then the named causes before the
	// generic shapes, and the load generator's own trouble last.
	slices.SortStableFunc(out, func(a, b Finding) int {
		if d := severityRank[a.Severity] - severityRank[b.Severity]; d != 0 {
			return d
		}
		return kindRank[a.Kind] - kindRank[b.Kind]
	})
	return out
}

var severityRank = map[string]int{SeverityHigh: 0, SeverityMedium: 1, SeverityLow: 2}

var kindRank = map[string]int{KindSandboxViolation: 0, KindGPUMemoryPressure: 1, KindSerialization: 2, KindGPUSaturation: 3,
	KindPoolExhaustion: 4, KindRetrograde: 5, KindTimeouts: 6, KindThroughputPlateau: 7, KindTailAmplification: 8, KindLoadGenSaturated: 9}

// cleanPoints are the stages whose error rate is low enough that
// throughput reflects capacity, averaged per user count. Stages where the
// load generator lagged stay in: what they measured is real, only less load
// than intended was offered, which cannot fake a plateau (that needs latency
// to grow); the findings name them.
func cleanPoints(stages []*Stage) []Point {
	var pts []Point
	for _, st := range stages {
		all := st.Operations[AllOps]
		if all == nil || all.Count == 0 || all.ErrorRate > cleanErrorRate || len(all.Durations) == 0 {
			continue
		}
		p := pointOf(st)
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

func pointOf(st *Stage) Point {
	all := st.Operations[AllOps]
	return Point{Stage: st.Stage, Users: float64(st.Users), X: all.OKRPS, RPS: all.RPS, RMS: all.LatencyMS.Avg,
		P50: all.LatencyMS.P50, P95: all.LatencyMS.P95, P99: all.LatencyMS.P99, ErrorRate: all.ErrorRate, Trustworthy: st.Trustworthy}
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

func (c *scenarioCtx) kneeUsers() float64 {
	if c.cap.knee < 0 {
		return 0
	}
	return c.clean[c.cap.knee].Users
}

func (c *scenarioCtx) capEvidence() map[string]any {
	first, last := c.clean[0], c.clean[len(c.clean)-1]
	ev := map[string]any{
		"users":                     usersOf(c.clean),
		"throughput_rps":            mapPoints(c.clean, func(p Point) float64 { return p.X }),
		"mean_latency_ms":           mapPoints(c.clean, func(p Point) float64 { return p.RMS }),
		"latency_slope_ms_per_user": c.cap.slope,
		"latency_r2":                c.cap.r2,
		"effective_parallelism":     c.cap.pEff,
		"latency_growth":            last.RMS / first.RMS,
	}
	if c.cap.knee >= 0 {
		ev["knee_users"] = c.kneeUsers()
	}
	if u := c.untrusted(); len(u) > 0 {
		ev["untrustworthy_users"] = u
	}
	if f := c.view.USL; f != nil {
		ev["usl_lambda"], ev["usl_sigma"], ev["usl_kappa"] = f.Lambda, f.Sigma, f.Kappa
		if !math.IsInf(f.NMax, 0) {
			ev["usl_n_max"] = f.NMax
		}
		if f.UsersAtP95Goal > 0 {
			ev["users_at_p95_target"] = f.UsersAtP95Goal
		}
	}
	return ev
}

// detectSerialization: latency linear in users, throughput flat, and the
// peak throughput times the one-user latency (effective parallelism) ≈ 1.
func detectSerialization(c *scenarioCtx) *Finding {
	if !c.cap.plateau || c.cap.pEff > serialPEff || c.cap.r2 < serialR2 || c.cap.slope <= 0 {
		return nil
	}
	ev := c.capEvidence()
	return &Finding{Kind: KindSerialization, Scenario: c.name, Operation: AllOps, Severity: c.severity(),
		Summary: fmt.Sprintf("%s handles one request at a time: latency grows linearly with users (%.0f ms per user, R² %.2f) while throughput stays at %.1f req/s from %g users (effective parallelism %.2f).",
			c.name, c.cap.slope, c.cap.r2, c.clean[len(c.clean)-1].X, c.kneeUsers(), c.cap.pEff) + c.caveat(),
		Action:   "Find the lock, single worker or single-threaded executor the requests queue on and let requests run concurrently (a worker pool, async handlers, or more replicas).",
		Evidence: ev}
}

// detectGPUSaturation: throughput flat and latency growing while the GPU
// this scenario's service runs on is busy ≥ 95 % of the time. Never claimed
// on low utilisation: NVML utilisation is only the share of time a kernel ran.
func detectGPUSaturation(c *scenarioCtx) *Finding {
	if !(c.cap.plateau || c.cap.retro) {
		return nil
	}
	top := c.stageOf(c.clean[len(c.clean)-1].Stage)
	util, ok := top.Resources[ResGPUUtil]
	if !ok || util.Mean < gpuBusyPct {
		return nil
	}
	ev := c.capEvidence()
	ev["gpu_util_mean_pct"] = util.Mean
	ev["gpu_util_by_users"] = c.resourceByStage(ResGPUUtil)
	// Seen on an H200 (testdata/gpu): a server whose waiting threads spin
	// in the CUDA runtime took the host's CPU to 96 % along with the GPU.
	// A busy GPU is then not the whole story, and the reader should know.
	cpuNote := ""
	if cpu, ok := top.Resources["cpu_util"]; ok && cpu.Mean >= hostBusyPct {
		ev["cpu_util_mean_pct"] = cpu.Mean
		cpuNote = fmt.Sprintf(" The host CPU is at %.0f %% too: if the service runs on this host, its CPU-side work (tokenising, scheduling, threads busy-waiting on the GPU) is near its limit as well.", cpu.Mean)
	}
	return &Finding{Kind: KindGPUSaturation, Scenario: c.name, Operation: AllOps, Severity: c.severity(),
		Summary: fmt.Sprintf("The GPU behind %s is saturated: utilisation %.0f %% at %d users while throughput stays at %.1f req/s from %g users on and mean latency grew %.1f× over that range.%s",
			c.name, util.Mean, top.Users, c.clean[len(c.clean)-1].X, c.kneeUsers(), c.cap.rGrowth, cpuNote) + c.caveat(),
		Action:   "Add GPU capacity or make each request cheaper: larger batches, a smaller or quantised model, shorter max_tokens, or more replicas behind the gateway.",
		Evidence: ev}
}

// detectRetrograde: throughput falls as users grow, with a USL coherency
// term κ > 0.
func detectRetrograde(c *scenarioCtx) *Finding {
	if !c.cap.retro || c.view.USL == nil || c.view.USL.Kappa <= 1e-9 {
		return nil
	}
	ev := c.capEvidence()
	peak, last := c.clean[c.cap.peak], c.clean[len(c.clean)-1]
	ev["peak_users"], ev["peak_rps"] = peak.Users, peak.X
	return &Finding{Kind: KindRetrograde, Scenario: c.name, Operation: AllOps, Severity: SeverityHigh,
		Summary: fmt.Sprintf("%s throughput falls as users grow: %.1f req/s at %g users, %.1f at %g (USL κ = %.3g, peak near %.0f users).",
			c.name, peak.X, peak.Users, last.X, last.Users, c.view.USL.Kappa, c.view.USL.NMax) + c.caveat(),
		Action:   "Look for crosstalk that grows with concurrency: lock contention with spinning, cache thrashing, retries, or coordination between workers; cap concurrency near the peak meanwhile.",
		Evidence: ev}
}

// detectThroughputPlateau: throughput stops growing at a knee while latency
// grows, and nothing more specific explains it.
func detectThroughputPlateau(c *scenarioCtx) *Finding {
	if !c.cap.plateau {
		return nil
	}
	ev := c.capEvidence()
	top := c.stageOf(c.clean[len(c.clean)-1].Stage)
	hint := ""
	if u, ok := top.Resources[ResGPUUtil]; ok {
		ev["gpu_util_mean_pct"] = u.Mean
		if u.Mean < gpuBusyPct {
			hint = fmt.Sprintf(" The GPU is at %.0f %%, so the limit is elsewhere (CPU, a pool, a lock).", u.Mean)
		}
	}
	if u, ok := top.Resources["cpu_util"]; ok {
		ev["cpu_util_mean_pct"] = u.Mean
	}
	return &Finding{Kind: KindThroughputPlateau, Scenario: c.name, Operation: AllOps, Severity: c.severity(),
		Summary: fmt.Sprintf("%s throughput stops growing at %g users (knee): %.1f req/s there, %.1f at %g users, while mean latency grew %.1f×; effective parallelism %.1f.%s",
			c.name, c.kneeUsers(), c.clean[c.cap.knee].X, c.clean[len(c.clean)-1].X, c.clean[len(c.clean)-1].Users, c.cap.rGrowth, c.cap.pEff, hint) + c.caveat(),
		Action:   fmt.Sprintf("The service handles about %.0f requests at once: raise that limit (workers, pool size, batch size, replicas) or keep the load under the knee.", math.Max(1, c.cap.pEff)),
		Evidence: ev}
}

// detectGPUMemoryPressure: out-of-memory errors, the inference server's KV
// cache ≥ 95 % full (vLLM's gpu_cache_usage_perc), or device memory ≥ 95 %
// that rose with load. Memory that is that full from the fewest users on is
// an allocator's reservation, not pressure: vLLM takes
// gpu_memory_utilization (0.9 by default, often set to 0.95) of the device
// at start, and PyTorch's caching allocator keeps what it once took.
func detectGPUMemoryPressure(c *scenarioCtx) *Finding {
	var oom int64
	oomBy := map[string]int64{}
	firstUsers, sample := -1, ""
	maxMem, memUsers := 0.0, -1
	minMem := memBaseline(c.stages)
	maxKV, kvUsers := 0.0, -1
	for _, st := range c.stages {
		if st.oomErrors > 0 {
			oom += st.oomErrors
			oomBy[fmt.Sprint(st.Users)] += st.oomErrors
			if firstUsers < 0 {
				firstUsers, sample = st.Users, st.oomSample
			}
		}
		if m, ok := st.Resources[ResGPUMemPct]; ok && m.Max > maxMem {
			maxMem, memUsers = m.Max, st.Users
		}
		if k, ok := st.Resources[ResKVCachePct]; ok && k.Max > maxKV {
			maxKV, kvUsers = k.Max, st.Users
		}
	}
	memRose := maxMem >= gpuMemPct && maxMem-minMem >= memRise
	kvFull := maxKV >= gpuMemPct
	if oom == 0 && !memRose && !kvFull {
		return nil
	}
	ev := map[string]any{"oom_errors": oom}
	if memUsers >= 0 {
		ev["gpu_mem_max_pct"], ev["gpu_mem_pct_by_users"] = maxMem, c.resourceByStage(ResGPUMemPct)
	}
	if kvUsers >= 0 {
		ev["kv_cache_max_pct"], ev["kv_cache_pct_by_users"] = maxKV, c.resourceByStage(ResKVCachePct)
	}
	sev := SeverityMedium
	var summary string
	switch {
	case oom > 0:
		sev = SeverityHigh
		ev["oom_errors_by_users"], ev["first_oom_users"], ev["example_error"] = oomBy, firstUsers, sample
		summary = fmt.Sprintf("%s ran out of GPU memory: %d out-of-memory errors, from %d users on.", c.name, oom, firstUsers)
		if memUsers >= 0 {
			summary = strings.TrimSuffix(summary, ".") + fmt.Sprintf(" (GPU memory peaked at %.1f %%).", maxMem)
		}
	case kvFull:
		summary = fmt.Sprintf("The KV cache of %s was %.0f %% full at %d users: new requests wait for cache blocks or preempt running ones.", c.name, maxKV, kvUsers)
	default:
		summary = fmt.Sprintf("GPU memory of %s rose from %.1f %% at the fewest users to %.1f %% at %d users.", c.name, minMem, maxMem, memUsers)
	}
	return &Finding{Kind: KindGPUMemoryPressure, Scenario: c.name, Operation: AllOps, Severity: sev, Summary: summary,
		Action:   "Free GPU memory: load only the models in use, lower the KV-cache share or max sequence length, quantise, or cap concurrent requests below the first failing user count.",
		Evidence: ev}
}

// poolKinds are the failures of a resource that ran out: waiting for it
// timed out, or it refused more.
var poolKinds = map[string]bool{captures.ErrTimeout: true, captures.ErrVectorTimeout: true, captures.ErrConnection: true, "db_connection": true, "pool_timeout": true}

var timeoutKinds = map[string]bool{captures.ErrTimeout: true, captures.ErrVectorTimeout: true, "pool_timeout": true}

// detectPoolExhaustion: errors start abruptly at one user count, and the
// requests that still succeed take nearly as long as the failures' timeout
// (they waited for a free connection too).
func detectPoolExhaustion(c *scenarioCtx) *Finding {
	rate := func(st *Stage) (float64, int64, bool) {
		all := st.Operations[AllOps]
		if all == nil || all.Count == 0 {
			return 0, 0, false
		}
		var n int64
		for k, v := range all.Errors {
			if poolKinds[k] || strings.Contains(strings.ToLower(all.ErrorText[k]), "pool") || strings.Contains(strings.ToLower(all.ErrorText[k]), "too many connections") {
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
		for k, d := range st.errDurs {
			if timeoutKinds[k] {
				for _, v := range d {
					tdurs = append(tdurs, float64(v)/1e6)
				}
			}
		}
		all := st.Operations[AllOps]
		if len(all.Durations) > 0 {
			okP99 = append(okP99, all.LatencyMS.P99)
		}
		for k, txt := range all.ErrorText {
			t := strings.ToLower(txt)
			if poolKinds[k] && (strings.Contains(t, "pool") || strings.Contains(t, "too many connections")) {
				textual = true
			}
		}
	}
	for _, st := range c.stages {
		r, _, _ := rate(st)
		rates[fmt.Sprint(st.Users)] = 100 * r
	}
	ev := map[string]any{"onset_users": c.stages[onset].Users, "error_rate_pct_by_users": rates}
	cluster := false
	if len(tdurs) > 0 && len(okP99) > 0 {
		slices.Sort(tdurs)
		timeout := tdurs[len(tdurs)/2]
		top := slices.Max(okP99)
		ev["timeout_ms"], ev["success_p99_ms"] = timeout, top
		// Failures that wait for a pool take far longer than a normal
		// request did before the onset; successes then wait nearly as long.
		before := c.stages[onset-1].Operations[AllOps].LatencyMS.P50
		ev["success_p50_before_ms"] = before
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
// its target, or the plan's 0.1 % when no target names it.
func detectTimeouts(c *scenarioCtx) *Finding {
	// Requests that ran past --request-timeout are held to the scenario's
	// error-rate target (the plan's 1 % when it has none); a target on a
	// timeout kind of its own overrides either bound.
	bounds := map[string]float64{captures.ErrVectorTimeout: defaultVectorPct, captures.ErrTimeout: defaultErrorPct}
	for _, t := range c.targets {
		if t.ErrorKind == "" && t.Metric == "error_rate" && t.Max {
			bounds[captures.ErrTimeout] = t.Bound
		}
	}
	for _, t := range c.targets {
		if t.ErrorKind != "" && strings.Contains(t.ErrorKind, "timeout") && t.Metric == "error_rate" && t.Max {
			bounds[t.ErrorKind] = t.Bound
		}
	}
	// Plain timeouts that a pool running out already explains are not
	// said twice; the vector store's keep their own finding (the plan's
	// Qdrant target).
	if c.poolExhausted {
		delete(bounds, captures.ErrTimeout)
	}
	var best *Finding
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
			if share > worst {
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
		if kind != captures.ErrVectorTimeout {
			action = "Requests ran out of time: find what they wait on under load (the capacity findings, the service's queues and pools) before raising the timeout."
		}
		f := &Finding{Kind: KindTimeouts, Scenario: c.name, Operation: c.worstOpAll(kind), Severity: sev,
			Summary:  fmt.Sprintf("%s: %.2f %% of requests failed with %s at %d users, over the %.3g %% target.", c.name, worst, kind, worstUsers, bound),
			Action:   action,
			Evidence: map[string]any{"error_kind": kind, "share_pct_by_users": byUsers, "worst_share_pct": worst, "target_pct": bound, "count": total}}
		if best == nil || worst > best.Evidence["worst_share_pct"].(float64) {
			best = f
		}
	}
	return best
}

// detectTailAmplification: p99/p50 grows with users (a long tail forms:
// head-of-line blocking, GC, retries).
func detectTailAmplification(c *scenarioCtx) *Finding {
	var n, ratio []float64
	for _, p := range c.clean {
		st := c.stageOf(p.Stage)
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
	top := c.clean[len(c.clean)-1]
	// A floor in milliseconds: on a fast service, scheduling noise alone
	// makes a 3 ms p50 and a 10 ms p99.
	if last < tailRatio || last < tailGrowth*first || rho < 0.8 || top.P99-top.P50 < tailMinSpreadMS {
		return nil
	}
	return &Finding{Kind: KindTailAmplification, Scenario: c.name, Operation: AllOps, Severity: SeverityMedium,
		Summary:  fmt.Sprintf("%s tail grows faster than its median: p99/p50 went from %.1f at %g users to %.1f at %g users.", c.name, first, n[0], last, n[len(n)-1]),
		Action:   "Look for head-of-line blocking, garbage-collection pauses, retries or one slow dependency; set per-request timeouts and hedge or shed the slowest requests.",
		Evidence: map[string]any{"users": n, "p99_over_p50": ratio, "spearman": rho}}
}

// detectLoadGenerator: per stage, the replayer fell behind (send lag p99
// over 10 ms) or the users were not all busy as intended (Little's law
// N = X·(R+Z) off by more than 10 %). Those stages are marked untrustworthy
// and left out of the capacity detectors.
func detectLoadGenerator(c *scenarioCtx) *Finding {
	var bad []map[string]any
	for _, st := range c.stages {
		all := st.Operations[AllOps]
		if all == nil || all.Count == 0 {
			continue
		}
		var why []string
		item := map[string]any{"stage": st.Stage, "users": st.Users}
		// In a short stage p99 is nearly the maximum, and one request
		// delayed by a GC pause would condemn it: a few must have lagged.
		if l := all.SendLagMS; l != nil && l.P99 > maxSendLagMS && all.Lagged >= minLagged {
			why = append(why, fmt.Sprintf("send lag p99 %.1f ms", l.P99))
			item["send_lag_p99_ms"] = l.P99
		}
		if lc := st.little; lc.Known && lc.N > 0 {
			off := math.Abs(lc.Predicted-lc.N) / lc.N
			tol := math.Max(littleTolerance, 2/math.Sqrt(math.Max(lc.Iterations, 1)))
			if off > tol {
				why = append(why, fmt.Sprintf("Little's law: %.1f users busy by X·(R+Z) against %.1f running (%.0f %% off)", lc.Predicted, lc.N, 100*off))
				item["little_users"], item["little_predicted"], item["little_off_pct"] = lc.N, lc.Predicted, 100*off
			}
		}
		if len(why) > 0 {
			st.Trustworthy = false
			st.Notes = append(st.Notes, "untrustworthy: the load generator did not keep up ("+strings.Join(why, "; ")+")")
			item["why"] = strings.Join(why, "; ")
			bad = append(bad, item)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	users := make([]string, len(bad))
	for i, b := range bad {
		users[i] = fmt.Sprint(b["users"])
	}
	sev := SeverityMedium
	for _, b := range bad {
		if lag, _ := b["send_lag_p99_ms"].(float64); lag > 100 {
			sev = SeverityHigh
		}
		if off, _ := b["little_off_pct"].(float64); off > 25 {
			sev = SeverityHigh
		}
	}
	action := "Give the replayer more CPU, shard it across machines (--shard), or lower the load per replayer; then rerun those stages."
	ev := map[string]any{"stages": bad}
	// In open mode the usual cause is not the CPU: every worker was busy
	// with a slow target and arrivals queued for one.
	if c.workers > 0 {
		var most int32 // over the lagging stages
		for _, st := range c.stages {
			if !st.Trustworthy {
				most = max(most, st.inFlight)
			}
		}
		if int(most) > c.workers {
			ev["workers"], ev["max_in_flight_seen"] = c.workers, most
			action = fmt.Sprintf("All %d workers were busy (up to %d requests in flight, queued ones included): raise `workers` for scenario %s in the profile (at most its max_in_flight), or shard the replay; then rerun those stages.", c.workers, most, c.name)
		}
	}
	return &Finding{Kind: KindLoadGenSaturated, Scenario: c.name, Operation: AllOps, Severity: sev,
		Summary:  fmt.Sprintf("The load generator could not keep up in %d stage(s) of %s (users %s): %s; those stages are not trustworthy.", len(bad), c.name, strings.Join(users, ", "), bad[0]["why"]),
		Action:   action,
		Evidence: ev}
}

// detectSandboxViolation: any request the MCP server let out of its sandbox.
func detectSandboxViolation(c *scenarioCtx) *Finding {
	var n int64
	byOp := map[string]int64{}
	example := ""
	for _, st := range c.stages {
		for op, kinds := range st.raw {
			if v := kinds[captures.ErrSandboxViolation]; v > 0 {
				n += v
				byOp[op] += v
			}
		}
		if all := st.Operations[AllOps]; all != nil && example == "" {
			example = all.ErrorText[captures.ErrSandboxViolation]
		}
	}
	if n == 0 {
		return nil
	}
	op, top := AllOps, int64(0)
	for k, v := range byOp {
		if v > top || (v == top && k < op) {
			op, top = k, v
		}
	}
	return &Finding{Kind: KindSandboxViolation, Scenario: c.name, Operation: op, Severity: SeverityHigh,
		Summary:  fmt.Sprintf("%s: %d request(s) escaped the tool sandbox (most in %s); the target is 0.", c.name, n, op),
		Action:   "Fix the tool's path and command checks (resolve symlinks and '..', allow-list commands) before any further load testing.",
		Evidence: map[string]any{"count": n, "by_operation": byOp, "example_error": example}}
}

// untrusted lists the user counts of curve points the load generator
// did not drive as intended.
func (c *scenarioCtx) untrusted() []float64 {
	var out []float64
	for _, p := range c.clean {
		if !p.Trustworthy {
			out = append(out, p.Users)
		}
	}
	return out
}

// caveat is appended to a capacity finding's summary that rests on
// untrustworthy stages.
func (c *scenarioCtx) caveat() string {
	u := c.untrusted()
	if len(u) == 0 {
		return ""
	}
	return fmt.Sprintf(" (The load generator lagged at %v users: those points are lower bounds of the load offered.)", u)
}

func (c *scenarioCtx) stageOf(stage int) *Stage {
	for _, st := range c.stages {
		if st.Stage == stage {
			return st
		}
	}
	return c.stages[len(c.stages)-1]
}

// severity of a capacity finding: high when a latency or throughput target
// of the scenario fails.
func (c *scenarioCtx) severity() string {
	for _, t := range c.targets {
		if t.Verdict == Fail && t.Metric != "count" && t.Metric != "error_rate" {
			return SeverityHigh
		}
	}
	return SeverityMedium
}

func (c *scenarioCtx) resourceByStage(name string) map[string]float64 {
	out := map[string]float64{}
	for _, st := range c.stages {
		if r, ok := st.Resources[name]; ok {
			out[fmt.Sprint(st.Users)] = r.Mean
		}
	}
	return out
}

func (c *scenarioCtx) worstOp(st *Stage, kinds map[string]bool) string {
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

func usersOf(p []Point) []float64 { return mapPoints(p, func(p Point) float64 { return p.Users }) }

func mapPoints(p []Point, f func(Point) float64) []float64 {
	out := make([]float64, len(p))
	for i, q := range p {
		out[i] = round(f(q), 3)
	}
	return out
}

// roundEvidence keeps evidence readable and summary.json stable.
func roundEvidence(ev map[string]any) {
	for k, v := range ev {
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				delete(ev, k)
				continue
			}
			ev[k] = round(x, 4)
		case map[string]float64:
			for kk, vv := range x {
				if math.IsNaN(vv) || math.IsInf(vv, 0) {
					delete(x, kk)
					continue
				}
				x[kk] = round(vv, 4)
			}
		case []float64:
			// JSON has no NaN: a missing value is null.
			out := make([]any, len(x))
			for i, vv := range x {
				if !math.IsNaN(vv) && !math.IsInf(vv, 0) {
					out[i] = round(vv, 4)
				}
			}
			ev[k] = out
		}
	}
}

// linkConcurrentMisses adds to a GPU finding the latency targets other
// scenarios missed while that GPU was under pressure. The plan's third
// bottleneck is of this kind: RAG queries slow (p95 over 3 s) because the
// model reads their context on the CPU while the gateway fills the GPU's
// memory. The analyser cannot see which services share a GPU, so it says
// what coincided and lets the reader judge; it claims no cause.
func linkConcurrentMisses(out []Finding, scenarios []*scenarioCtx) {
	byName := map[string]*scenarioCtx{}
	for _, c := range scenarios {
		byName[c.name] = c
	}
	for i := range out {
		f := &out[i]
		if f.Kind != KindGPUMemoryPressure && f.Kind != KindGPUSaturation {
			continue
		}
		var windows [][2]int64 // when this scenario's GPU was under pressure
		stages := byName[f.Scenario].stages
		base := memBaseline(stages)
		for _, st := range stages {
			if gpuPressed(st, f.Kind, base) {
				windows = append(windows, [2]int64{st.startNS, st.endNS})
			}
		}
		var misses []string
		for _, c := range scenarios {
			// A scenario whose own finding names a cause for its latency
			// (MCP's serialized tools, say) is not listed.
			if c.name == f.Scenario || slices.ContainsFunc(out, func(o Finding) bool { return o.Scenario == c.name && capacityKinds[o.Kind] }) {
				continue
			}
			for _, t := range c.targets {
				if t.Unit != "ms" || !t.Max || t.Verdict == Pass || t.Stage == nil || t.Value == nil {
					continue
				}
				st := c.stageOf(*t.Stage)
				if !overlaps(windows, st.startNS, st.endNS) {
					continue
				}
				misses = append(misses, fmt.Sprintf("%s (%.0f ms against %.0f ms at %d users)", t.Name(), *t.Value, t.Bound, st.Users))
			}
		}
		if len(misses) == 0 {
			continue
		}
		f.Evidence["concurrent_target_misses"] = misses
		f.Summary += fmt.Sprintf(" In the same minutes %s missed: %s. If those services share this GPU (a model reading context, an embedder), this pressure is likely their cause too.",
			plural(len(misses), "another scenario", "other scenarios"), strings.Join(misses, "; "))
	}
}

// capacityKinds are the capacity findings that name a cause of their own;
// a plateau or retrograde curve is a shape, which a shared GPU can cause.
var capacityKinds = map[string]bool{KindSerialization: true, KindGPUSaturation: true}

// gpuPressed tells whether a stage shows the GPU condition of kind, by the
// rules of the detector that found it: memory counts when it rose memRise
// above its baseline (memBaseline), not when it was reserved that full.
func gpuPressed(st *Stage, kind string, memBase float64) bool {
	if kind == KindGPUSaturation {
		return st.Resources[ResGPUUtil].Mean >= gpuBusyPct
	}
	mem := st.Resources[ResGPUMemPct].Max
	return st.oomErrors > 0 || st.Resources[ResKVCachePct].Max >= gpuMemPct || (mem >= gpuMemPct && mem-memBase >= memRise)
}

// memBaseline is the GPU memory share at the fewest users that have a
// reading (stages are in order of users); +Inf when none has one.
func memBaseline(stages []*Stage) float64 {
	for _, st := range stages {
		if m, ok := st.Resources[ResGPUMemPct]; ok {
			return m.Mean
		}
	}
	return math.Inf(1)
}

func overlaps(windows [][2]int64, start, end int64) bool {
	for _, w := range windows {
		if start < w[1] && w[0] < end {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
