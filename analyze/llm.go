package analyze

import (
	"fmt"
	"math"
	"slices"
)

// Thresholds shared by the LLM detectors (queueing.go, decode.go);
// docs/analyze.md explains each.
const (
	llmMinStages = 3   // trustworthy stages with streams an LLM finding needs
	llmTrend     = 0.8 // Spearman ρ of a rise with load
)

// llmPoint is one trustworthy stage of one streamed operation.
type llmPoint struct {
	users   int
	ttftP50 float64 // ms: TTFT, or TTFB for requests that were not streamed
	ttftAvg float64
	tpotP50 float64 // ms
	latAvg  float64 // ms
	okRPS   float64
	streams float64 // decoding streams in flight: ok_rps × (latency − TTFT)
	gpu     float64 // mean GPU utilisation %; NaN when not sampled
}

// llmSeries is the operation's streamed stages in order of users: those
// the load generator drove as intended and that had TTFT and TPOT.
func llmSeries(sc *scenarioCtx, op string) []llmPoint {
	var pts []llmPoint
	for i, st := range sc.stages {
		o := st.Operations[op]
		if !sc.trust[i].ok() || o == nil || o.TPOTMS == nil {
			continue
		}
		first := o.TTFTMS
		if first == nil {
			first = o.TTFBMS
		}
		if first == nil || math.IsNaN(first.P50) || math.IsNaN(o.TPOTMS.P50) || o.OKRPS <= 0 {
			continue
		}
		p := llmPoint{users: st.Users, ttftP50: first.P50, ttftAvg: first.Avg, tpotP50: o.TPOTMS.P50, latAvg: o.LatencyMS.Avg,
			okRPS: o.OKRPS, gpu: math.NaN()}
		p.streams = o.OKRPS * math.Max(0, p.latAvg-p.ttftAvg) / 1000
		if r, ok := st.Resources[ResGPUUtil]; ok {
			p.gpu = r.Mean
		}
		pts = append(pts, p)
	}
	return pts
}

// llmOperations are the scenario's operations that stream tokens: one
// operation alone, else each with TPOT but not "all" (it mixes them).
func llmOperations(sc *scenarioCtx) []string {
	var ops []string
	for _, st := range sc.stages {
		for name, o := range st.Operations {
			if name != AllOps && o.TPOTMS != nil && !slices.Contains(ops, name) {
				ops = append(ops, name)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// gpuBeside is what an LLM finding says of the GPU samples of its stages,
// and their means by users: nothing when there are none. A GPU is called
// busy only at saturation's threshold; below it the text says the GPU is
// not what limits.
func gpuBeside(pts []llmPoint, what string) (string, map[string]float64, *float64) {
	by := map[string]float64{}
	for _, p := range pts {
		if !math.IsNaN(p.gpu) {
			by[fmt.Sprint(p.users)] = p.gpu
		}
	}
	top := pts[len(pts)-1]
	if math.IsNaN(top.gpu) {
		return "", nil, nil
	}
	if top.gpu >= gpuBusyPct {
		return fmt.Sprintf(" The GPU was busy meanwhile (%.0f %% at %d users).", top.gpu, top.users), by, ptr(top.gpu)
	}
	return fmt.Sprintf(" GPU utilisation was %.0f %% at %d users, so the GPU is not saturated: %s.", top.gpu, top.users, what), by, ptr(top.gpu)
}
