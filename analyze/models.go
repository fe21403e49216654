package analyze

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// A capacity model is a curve of throughput against users that names a
// cause. Each is fitted to the clean points and the one with the lowest
// Akaike information criterion (AIC = n·ln(SSE/n) + 2k: the fit's error,
// plus two per free parameter, so that a model with more parameters must
// fit enough better to be chosen) is the curve's model; the others are
// kept, rejected, with how much worse they were.
const (
	ModelLinear = "linear"        // X = λN: throughput grows with users, nothing limits it yet
	ModelSingle = "single_server" // X = min(λN, 1/R₁): one request at a time, each taking the one-user latency
	ModelC      = "c_servers"     // X = min(λN, c/R₁): a pool or batch of c
	ModelUSL    = "usl"           // X = λN / (1 + σ(N−1) + κN(N−1)): contention σ and crosstalk κ
)

// ModelFit is one candidate fitted to a scenario's throughput curve.
type ModelFit struct {
	Model  string             `json:"model"`
	Params map[string]float64 `json:"params"`
	AIC    float64            `json:"aic"`
	// DeltaAIC is how much worse than the chosen model; exp(−Δ/2) is the
	// relative likelihood (Δ 2: 0.37, Δ 10: under 0.01).
	DeltaAIC float64 `json:"delta_aic"`
	Why      string  `json:"why,omitempty"` // for a rejected model: why it lost
	// servers is the parallelism the fitted curve implies: its highest
	// throughput over the users measured times the one-user latency (1
	// for a single server, c for c servers; for the USL, what its curve
	// peaks at, so that a USL with σ near 1 reads as one server).
	servers float64
}

// compareModels fits every model to the points (users, throughput in
// req/s) with r1 the one-user latency in seconds, and returns them best
// first. Residuals are relative to each point's throughput: measurement
// noise grows with the rate, and a 2 % miss at the top must weigh what a
// 2 % miss at one user does.
func compareModels(n, x []float64, r1 float64) []ModelFit { return compareModelsFrom(n, x, r1, nil) }

// compareModelsFrom is compareModels with the USL refitted from an earlier
// fit (nil: from scratch).
func compareModelsFrom(n, x []float64, r1 float64, uslFrom *USLFit) []ModelFit {
	if len(n) < 3 || r1 <= 0 {
		return nil
	}
	xmax := slices.Max(x)
	if xmax <= 0 {
		return nil
	}
	for _, v := range x {
		if v <= 0 {
			return nil // a point with no successes has no relative error
		}
	}
	sse := func(f func(float64) float64) float64 { return relSSE(n, x, f) }
	var fits []ModelFit
	add := func(model string, k int, s float64, params map[string]float64, servers float64) {
		// A model is compared only on k+2 points or more: on fewer it can
		// pass through nearly every point, and its small error says
		// nothing (the USL's three parameters need five user counts).
		if len(n) < k+2 {
			return
		}
		// A floor on the error: a perfect fit of a few points must not
		// make the criterion −∞.
		s = math.Max(s, 1e-9*float64(len(n)))
		fits = append(fits, ModelFit{Model: model, Params: params, AIC: float64(len(n))*math.Log(s/float64(len(n))) + 2*float64(k), servers: servers})
	}
	// Linear: λ by least squares of the relative errors, through the origin.
	var sxy, sxx float64
	for i := range n {
		sxy += n[i] / x[i]
		sxx += n[i] * n[i] / (x[i] * x[i])
	}
	lam := sxy / sxx
	add(ModelLinear, 1, sse(func(v float64) float64 { return lam * v }), map[string]float64{"lambda": lam}, 0)
	// Single server: the ceiling is fixed by the one-user latency.
	ceil1 := 1 / r1
	l1 := fitCeiling(n, x, &ceil1)
	add(ModelSingle, 1, sse(func(v float64) float64 { return math.Min(l1[0]*v, ceil1) }), map[string]float64{"lambda": l1[0], "ceiling_rps": ceil1}, 1)
	// c servers: the ceiling is free, c is it times the one-user latency.
	lc := fitCeiling(n, x, nil)
	add(ModelC, 2, sse(func(v float64) float64 { return math.Min(lc[0]*v, lc[1]) }), map[string]float64{"lambda": lc[0], "ceiling_rps": lc[1], "c": lc[1] * r1}, lc[1]*r1)
	if u := fitUSLFrom(n, x, uslFrom); u != nil {
		add(ModelUSL, 3, sse(u.X), map[string]float64{"lambda": u.Lambda, "sigma": u.Sigma, "kappa": u.Kappa}, curvePeak(u.X, n[0], n[len(n)-1])*r1)
	}
	slices.SortStableFunc(fits, func(a, b ModelFit) int {
		switch {
		case a.AIC < b.AIC:
			return -1
		case a.AIC > b.AIC:
			return 1
		}
		return 0
	})
	for i := range fits[1:] {
		f := &fits[i+1]
		f.DeltaAIC = f.AIC - fits[0].AIC
		f.Why = fmt.Sprintf("fits worse than %s: AIC %.1f higher (relative likelihood %.2g)", fits[0].Model, f.DeltaAIC, math.Exp(-f.DeltaAIC/2))
	}
	return fits
}

// fitCeiling fits X = min(λN, ceiling) by least squares of the relative
// errors: λ alone when ceiling is given, else both. For each split of the
// points (those below it on the line, the rest on the ceiling) both have
// a closed form; the split whose whole curve fits best wins. It returns
// [λ, ceiling].
func fitCeiling(n, x []float64, ceiling *float64) [2]float64 {
	best, out := math.Inf(1), [2]float64{x[0] / n[0], slices.Max(x)}
	for k := 1; k <= len(n); k++ {
		var a, b float64
		for i := range k {
			a += n[i] / x[i]
			b += n[i] * n[i] / (x[i] * x[i])
		}
		lam := a / b
		c := math.Inf(1)
		switch {
		case ceiling != nil:
			c = *ceiling
		case k < len(n):
			var p, q float64
			for i := k; i < len(n); i++ {
				p += 1 / x[i]
				q += 1 / (x[i] * x[i])
			}
			c = p / q
		}
		if s := relSSE(n, x, func(v float64) float64 { return math.Min(lam*v, c) }); s < best {
			best, out = s, [2]float64{lam, c}
		}
	}
	if math.IsInf(out[1], 1) {
		out[1] = slices.Max(x) // every point on the line: the ceiling is not reached
	}
	return out
}

// serversOf is the number of servers the best model implies: 1 for a single
// server, c for c servers, the USL curve's peak throughput times the
// one-user latency, 0 for a linear curve (still rising: no such number).
func serversOf(fits []ModelFit) float64 {
	if len(fits) == 0 {
		return 0
	}
	return serversOfFit(fits[0])
}

func serversOfFit(f ModelFit) float64 {
	switch f.Model {
	case ModelSingle:
		return 1
	case ModelC:
		return f.Params["c"]
	case ModelUSL:
		return f.servers
	}
	return 0
}

// curvePeak is the highest value of f on [lo, hi], on a grid fine enough
// for a smooth curve such as the USL's.
func curvePeak(f func(float64) float64, lo, hi float64) float64 {
	const steps = 200
	peak := math.Max(f(lo), f(hi))
	for i := 1; i < steps; i++ {
		peak = math.Max(peak, f(lo+(hi-lo)*float64(i)/steps))
	}
	return peak
}

// clearlyOneServer tells whether the models say one server: every model
// within decisiveAIC of the best implies about one (a single server, or c
// servers with c near 1, say the same), and some model is rejected.
func clearlyOneServer(fits []ModelFit) bool {
	rejected := false
	for _, f := range fits {
		if f.DeltaAIC >= decisiveAIC {
			rejected = true
			continue
		}
		if c := serversOfFit(f); c < serialMinC || c > serialMaxC {
			return false
		}
	}
	return rejected
}

// decisiveAIC is how much lower the chosen model's AIC must be than the
// runner-up's for the choice to count: below 2 the data support both
// about as well (relative likelihood over 0.37).
const decisiveAIC = 2.0

// decisive tells whether the best model is clearly better than the next.
func decisive(fits []ModelFit) bool {
	return len(fits) >= 2 && fits[1].DeltaAIC >= decisiveAIC
}

// relSSE is the sum of squared relative errors of f at the points.
func relSSE(n, x []float64, f func(float64) float64) float64 {
	var s float64
	for i := range n {
		d := (f(n[i]) - x[i]) / x[i]
		s += d * d
	}
	return s
}

// modelSummary says in words which model the curve follows, or that the
// points cannot tell.
func modelSummary(fits []ModelFit) string {
	if len(fits) < 2 {
		return ""
	}
	if !decisive(fits) {
		return fmt.Sprintf(" The points fit %s and %s about equally well (AIC within %g).", fits[0].Model, fits[1].Model, decisiveAIC)
	}
	best := fits[0]
	switch best.Model {
	case ModelSingle:
		return " Of the capacity models, a single server fits best."
	case ModelC:
		if c := best.Params["c"]; c <= serialMaxC {
			return fmt.Sprintf(" Of the capacity models, about one server fits best (c = %.1f).", c)
		}
		return fmt.Sprintf(" Of the capacity models, %.1f servers fit best (a pool or batch of about that size).", best.Params["c"])
	case ModelUSL:
		return fmt.Sprintf(" Of the capacity models, the USL fits best (contention σ %.3g, crosstalk κ %.3g).", best.Params["sigma"], best.Params["kappa"])
	}
	return " Of the capacity models, linear scaling still fits best."
}

// modelBootstraps is how many times the curve is redrawn to see how
// firmly the points choose their model.
const modelBootstraps = 50

// curveNoise is what a stage's measurement could have been instead: its
// throughput from n successes (a count, whose relative spread is 1/√n)
// and, for the fewest users, the mean latency's relative standard error.
type curveNoise struct {
	n     []float64 // successes behind each point
	r1CV  float64   // relative standard error of the one-user latency
	seedH uint64
}

// bootstrapModels redraws the points from their measurement noise (each
// throughput from its count of successes, the one-user latency from its
// spread) and fits the models again each time. confidence is the share of
// redraws that choose the same model as the data; ci holds the 5th and
// 95th percentiles of the chosen model's parameters over the redraws that
// chose it.
func bootstrapModels(n, x []float64, r1 float64, noise curveNoise, chosen string, usl *USLFit) (confidence float64, ci map[string][2]float64) {
	rng := rand.New(rand.NewPCG(noise.seedH, 0x5eed))
	params := map[string][]float64{}
	same := 0
	xs := make([]float64, len(x))
	for range modelBootstraps {
		for i := range x {
			xs[i] = x[i] * math.Max(0.01, 1+rng.NormFloat64()/math.Sqrt(math.Max(noise.n[i], 1)))
		}
		r := r1 * math.Max(0.01, 1+rng.NormFloat64()*noise.r1CV)
		fits := compareModelsFrom(n, xs, r, usl)
		if len(fits) == 0 || fits[0].Model != chosen {
			continue
		}
		same++
		for k, v := range fits[0].Params {
			params[k] = append(params[k], v)
		}
	}
	ci = map[string][2]float64{}
	for k, v := range params {
		slices.Sort(v)
		ci[k] = [2]float64{v[int(0.05*float64(len(v)-1))], v[int(math.Ceil(0.95*float64(len(v)-1)))]}
	}
	return float64(same) / modelBootstraps, ci
}
