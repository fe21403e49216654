package analyze

import (
	"cmp"
	"fmt"
	"slices"
)

// KindDecodeSlowdown: the time per output token grows with the number of
// streams decoded at once: each step of the batch gets slower (compute or
// memory bandwidth shared by more sequences).
const KindDecodeSlowdown Kind = "decode_slowdown"

// decodeTPOTGrowth is how much TPOT must grow, most users over fewest.
const decodeTPOTGrowth = 1.5

// decodeTie: TPOT p50s within 2 % of each other are one value to the
// trend test. A batch that is full at its slot limit keeps TPOT on a
// plateau across the top stages, and the order of 13.59, 13.64 and 13.64
// ms there is noise; ranked as it comes it read as a fall often enough
// to hide a slowdown of 1.7×. A p50 over thousands of tokens moves far
// less than 2 % by chance.
const decodeTie = 0.02

// DecodeEvidence backs decode_slowdown.
type DecodeEvidence struct {
	Users            []int              `json:"users"`
	Streams          []float64          `json:"streams"` // decoding streams in flight per stage
	TPOTP50MS        []float64          `json:"tpot_p50_ms"`
	TPOTGrowth       float64            `json:"tpot_growth"`
	TPOTSpearman     float64            `json:"tpot_spearman"`
	SlopeMSPerStream float64            `json:"slope_ms_per_stream"` // least-squares TPOT growth per stream in flight
	SlopeR2          float64            `json:"slope_r2"`
	GPUUtilMeanPct   *float64           `json:"gpu_util_mean_pct,omitempty"`
	GPUUtilByUsers   map[string]float64 `json:"gpu_util_by_users,omitempty"`
}

func (*DecodeEvidence) evidence() {}

func init() {
	register(detector{name: "decode_slowdown", detect: func(sc *scenarioCtx) detected {
		var best *Finding
		var growth float64
		for _, op := range llmOperations(sc) {
			if f := detectDecodeSlowdown(sc, op); f != nil && f.Evidence.(*DecodeEvidence).TPOTGrowth > growth {
				best, growth = f, f.Evidence.(*DecodeEvidence).TPOTGrowth
			}
		}
		return found(best)
	}, kinds: []kindSpec{{kind: KindDecodeSlowdown, rank: 27, namesCause: true}}})
}

// detectDecodeSlowdown: TPOT at the most users is decodeTPOTGrowth× that
// at the fewest, rising with the users (rank correlation llmTrend, near
// ties merged); the slope is TPOT's least-squares growth per stream in
// flight. The trend is tested against the users, not the streams: the
// streams come from ok_rps, which reads low at the top stages where long
// requests still running at a stage's end are left out.
func detectDecodeSlowdown(sc *scenarioCtx, op string) *Finding {
	pts := llmSeries(sc, op)
	if len(pts) < llmMinStages {
		return nil
	}
	base, top := pts[0], pts[len(pts)-1]
	if base.tpotP50 <= 0 {
		return nil
	}
	ev := &DecodeEvidence{TPOTGrowth: top.tpotP50 / base.tpotP50}
	var tpot []float64
	for _, p := range pts {
		ev.Users = append(ev.Users, p.users)
		ev.Streams = append(ev.Streams, round(p.streams, 2))
		ev.TPOTP50MS = append(ev.TPOTP50MS, round(p.tpotP50, 3))
		tpot = append(tpot, p.tpotP50)
	}
	users := make([]float64, len(ev.Users))
	for i, u := range ev.Users {
		users[i] = float64(u)
	}
	ev.TPOTSpearman = round(spearman(users, nearTies(tpot, decodeTie)), 3)
	if ev.TPOTGrowth < decodeTPOTGrowth || ev.TPOTSpearman < llmTrend {
		return nil
	}
	_, b, r2 := linReg(ev.Streams, tpot)
	ev.SlopeMSPerStream, ev.SlopeR2 = round(b, 4), round(r2, 3)
	gpuText, by, util := gpuBeside(pts, "look at memory bandwidth, the KV cache and the CPU-side scheduling of each step rather than at compute")
	ev.GPUUtilByUsers, ev.GPUUtilMeanPct = by, util
	return &Finding{Kind: KindDecodeSlowdown, Scenario: sc.name, Operation: op, Severity: SeverityMedium,
		Summary: fmt.Sprintf("Decoding of %s slows with the streams in flight: time per output token p50 grew %.1f× from %.1f ms at %d users (%.1f streams) to %.1f ms at %d (%.1f streams), %+.2f ms per added stream (R² %.2f).%s",
			op, ev.TPOTGrowth, base.tpotP50, base.users, base.streams, top.tpotP50, top.users, top.streams, ev.SlopeMSPerStream, ev.SlopeR2, gpuText),
		Action:   "Each step of the batch gets slower as it grows: cap the batch (vLLM --max-num-seqs) where TPOT still meets its target, use a faster attention kernel or quantised KV cache, or add replicas; compare with the server's own step time.",
		Evidence: ev}
}

// nearTies replaces each run of values within rel of the run's smallest
// (in sorted order) with the run's mean, so that rank tests see them as
// tied.
func nearTies(v []float64, rel float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(v[a], v[b]) })
	out := slices.Clone(v)
	for lo := 0; lo < len(idx); {
		hi, sum := lo, 0.0
		for hi < len(idx) && v[idx[hi]] <= v[idx[lo]]*(1+rel) {
			sum += v[idx[hi]]
			hi++
		}
		for _, i := range idx[lo:hi] {
			out[i] = sum / float64(hi-lo)
		}
		lo = hi
	}
	return out
}
