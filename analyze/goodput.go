package analyze

// GoodputStats are the requests that met every bound of their scenario's
// goodput, as vLLM's bench serve --goodput counts them: a request is good
// when it succeeded and its TTFT, TPOT and end-to-end latency are each at
// or under the bound given (a bound not given always holds).
type GoodputStats struct {
	Good      int64   `json:"good"`
	PerS      float64 `json:"good_per_s"` // good requests per second of the window
	Share     float64 `json:"good_share"` // good / measured requests (failures included), 0–1
	TTFTMS    float64 `json:"ttft_ms,omitempty"`
	TPOTMS    float64 `json:"tpot_ms,omitempty"`
	E2EMS     float64 `json:"e2e_ms,omitempty"`
	TimeScale float64 `json:"time_scale,omitempty"` // set when the bounds are the written ones × the run's time scale
}

// goodBounds are a scenario's goodput bounds in ns, time-scaled.
type goodBounds struct {
	ttft, tpot, e2e float64
	scale           float64
}

// goodBoundsOf reads the scenario's goodput from run.json; nil when it
// sets none. A run compressed in time has its bounds scaled with it, as
// its latency targets are.
func goodBoundsOf(info *RunInfo, scenario string) *goodBounds {
	if info == nil {
		return nil
	}
	sc, ok := info.Profile.Scenarios[scenario]
	if !ok || sc.Goodput == nil || sc.Goodput.Empty() {
		return nil
	}
	k := info.Scale()
	return &goodBounds{ttft: float64(sc.Goodput.TTFT) * k, tpot: float64(sc.Goodput.TPOT) * k, e2e: float64(sc.Goodput.E2E) * k, scale: k}
}

// holds reports whether a successful request met every bound.
func (g *goodBounds) holds(rt *requestTokens) bool {
	if g == nil {
		return false
	}
	return (g.ttft == 0 || float64(rt.ttftNS) <= g.ttft) &&
		(g.tpot == 0 || rt.tpotNS <= g.tpot) &&
		(g.e2e == 0 || float64(rt.e2eNS) <= g.e2e)
}

// stats is the goodput of count measured requests of which good met the
// bounds; nil without bounds.
func (g *goodBounds) stats(good, count int64, window float64) *GoodputStats {
	if g == nil {
		return nil
	}
	s := &GoodputStats{Good: good, TTFTMS: g.ttft / 1e6, TPOTMS: g.tpot / 1e6, E2EMS: g.e2e / 1e6}
	if g.scale != 1 {
		s.TimeScale = g.scale
	}
	if window > 0 {
		s.PerS = float64(good) / window
	}
	if count > 0 {
		s.Share = float64(good) / float64(count)
	}
	return s
}
