package analyze

import (
	"fmt"
	"math"
)

// KindQueueing: the first token comes later and later with load while the
// pace of the tokens after it stays the same: requests wait before they
// are served, for admission or a batch slot (vLLM's max_num_seqs, a
// gateway's concurrency limit).
const KindQueueing Kind = "queueing"

// Thresholds of the queueing detector; docs/analyze.md explains each.
const (
	queueTTFTGrowth = 2.0  // TTFT at the most users over TTFT at the fewest
	queueOverTPOT   = 2.0  // and that growth at least this many times TPOT's
	queueWaitStart  = 1.5  // the first stage whose TTFT is this × the fewest users' is where waiting starts
	queueWaitShare  = 0.25 // and the wait (TTFT's growth) is at least this share of the request at the most users: a first token some ms later on a busy host is not a queue
)

// QueueingEvidence backs queueing.
type QueueingEvidence struct {
	Users            []int              `json:"users"`
	TTFTP50MS        []float64          `json:"ttft_p50_ms"` // TTFB where the requests were not streamed
	TPOTP50MS        []float64          `json:"tpot_p50_ms"`
	TTFTGrowth       float64            `json:"ttft_growth"`
	TPOTGrowth       float64            `json:"tpot_growth"`
	TTFTSpearman     float64            `json:"ttft_spearman"`
	WaitingFromUsers int                `json:"waiting_from_users"` // the first stage whose requests waited
	LastFlatUsers    int                `json:"last_flat_users"`    // the stage before it
	SlotsEstimate    float64            `json:"slots_estimate"`     // requests in service at the most users: ok_rps × (latency − wait)
	WaitAtMostMS     float64            `json:"wait_at_most_ms"`    // TTFT's growth at the most users, ms
	GPUUtilMeanPct   *float64           `json:"gpu_util_mean_pct,omitempty"`
	GPUUtilByUsers   map[string]float64 `json:"gpu_util_by_users,omitempty"`
}

func (*QueueingEvidence) evidence() {}

func init() {
	register(detector{name: "queueing", detect: func(sc *scenarioCtx) detected {
		var best *Finding
		var growth float64
		for _, op := range llmOperations(sc) {
			if f := detectQueueing(sc, op); f != nil && f.Evidence.(*QueueingEvidence).TTFTGrowth > growth {
				best, growth = f, f.Evidence.(*QueueingEvidence).TTFTGrowth
			}
		}
		return found(best)
	}, kinds: []kindSpec{{kind: KindQueueing, rank: 25, namesCause: true}}})
}

// detectQueueing: over the stages, TTFT grows at least queueTTFTGrowth×
// with a rank correlation of llmTrend, and at least queueOverTPOT× as
// much as TPOT does: the time goes to waiting before the first token, not
// to decoding.
func detectQueueing(sc *scenarioCtx, op string) *Finding {
	pts := llmSeries(sc, op)
	if len(pts) < llmMinStages {
		return nil
	}
	base, top := pts[0], pts[len(pts)-1]
	if base.ttftP50 <= 0 || base.tpotP50 <= 0 {
		return nil
	}
	ev := &QueueingEvidence{TTFTGrowth: top.ttftP50 / base.ttftP50, TPOTGrowth: top.tpotP50 / base.tpotP50}
	var users, ttft []float64
	for _, p := range pts {
		ev.Users = append(ev.Users, p.users)
		ev.TTFTP50MS = append(ev.TTFTP50MS, round(p.ttftP50, 3))
		ev.TPOTP50MS = append(ev.TPOTP50MS, round(p.tpotP50, 3))
		users, ttft = append(users, float64(p.users)), append(ttft, p.ttftP50)
	}
	ev.TTFTSpearman = spearman(users, ttft)
	if ev.TTFTGrowth < queueTTFTGrowth || ev.TTFTSpearman < llmTrend || ev.TTFTGrowth < queueOverTPOT*ev.TPOTGrowth ||
		top.ttftAvg-base.ttftAvg < queueWaitShare*top.latAvg {
		return nil
	}
	for i, p := range pts {
		if p.ttftP50 >= queueWaitStart*base.ttftP50 {
			ev.WaitingFromUsers, ev.LastFlatUsers = p.users, pts[max(i-1, 0)].users
			break
		}
	}
	ev.WaitAtMostMS = round(top.ttftAvg-base.ttftAvg, 1)
	ev.SlotsEstimate = round(top.okRPS*math.Max(0, top.latAvg-(top.ttftAvg-base.ttftAvg))/1000, 1)
	gpuText, by, util := gpuBeside(pts, "the wait is for a slot the server admits requests into, not for compute")
	ev.GPUUtilByUsers, ev.GPUUtilMeanPct = by, util
	pace := "stays flat"
	if ev.TPOTGrowth >= 1.25 {
		pace = fmt.Sprintf("grew only %.1f×", ev.TPOTGrowth)
	}
	return &Finding{Kind: KindQueueing, Scenario: sc.name, Operation: op, Severity: sc.severity(),
		Summary: fmt.Sprintf("Requests of %s queue before their first token: TTFT p50 grew %.1f× from %.0f ms at %d users to %.0f ms at %d, while the time per output token %s (%.1f → %.1f ms). Waiting starts between %d and %d users; about %.0f requests were in service at once at the most users, which is the server's admission or batch-slot limit.%s",
			op, ev.TTFTGrowth, base.ttftP50, base.users, top.ttftP50, top.users, pace, base.tpotP50, top.tpotP50, ev.LastFlatUsers, ev.WaitingFromUsers, ev.SlotsEstimate, gpuText),
		Action:   "Raise the server's concurrency limit (vLLM --max-num-seqs, a gateway's max concurrent requests) if memory allows, add replicas, or cap users below the point where waiting starts; watch the server's own queue gauge (vllm:num_requests_waiting) to confirm.",
		Evidence: ev}
}
