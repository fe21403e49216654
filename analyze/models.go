package analyze

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"
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
}

// compareModels fits every model to the points (users, throughput in
// req/s) with r1 the one-user latency in seconds, and returns them best
// first. Residuals are relative to each point's throughput: measurement
// noise grows with the rate, and a 2 % miss at the top must weigh what a
// 2 % miss at one user does.
func compareModels(n, x []float64, r1 float64) []ModelFit {
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
	add := func(model string, k int, s float64, params map[string]float64) {
		// A floor on the error: a perfect fit of a few points must not
		// make the criterion −∞.
		s = math.Max(s, 1e-9*float64(len(n)))
		fits = append(fits, ModelFit{Model: model, Params: params, AIC: float64(len(n))*math.Log(s/float64(len(n))) + 2*float64(k)})
	}
	// Linear: λ by least squares of the relative errors, through the origin.
	var sxy, sxx float64
	for i := range n {
		sxy += n[i] / x[i]
		sxx += n[i] * n[i] / (x[i] * x[i])
	}
	lam := sxy / sxx
	add(ModelLinear, 1, sse(func(v float64) float64 { return lam * v }), map[string]float64{"lambda": lam})
	// Single server: the ceiling is fixed by the one-user latency.
	ceil1 := 1 / r1
	l1 := fitCeiling(n, x, &ceil1)
	add(ModelSingle, 1, sse(func(v float64) float64 { return math.Min(l1[0]*v, ceil1) }), map[string]float64{"lambda": l1[0], "ceiling_rps": ceil1})
	// c servers: the ceiling is free, c is it times the one-user latency.
	lc := fitCeiling(n, x, nil)
	add(ModelC, 2, sse(func(v float64) float64 { return math.Min(lc[0]*v, lc[1]) }), map[string]float64{"lambda": lc[0], "ceiling_rps": lc[1], "c": lc[1] * r1})
	if u := fitUSL(n, x); u != nil {
		add(ModelUSL, 3, sse(u.X), map[string]float64{"lambda": u.Lambda, "sigma": u.Sigma, "kappa": u.Kappa})
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

// fitCeiling fits X = min(λN, ceiling) by least squares (Nelder–Mead on
// square roots, which keep both positive): λ alone when ceiling is given,
// else both. It returns [λ, ceiling].
func fitCeiling(n, x []float64, ceiling *float64) [2]float64 {
	xmax := slices.Max(x)
	f := func(lam, c float64) float64 {
		return relSSE(n, x, func(v float64) float64 { return math.Min(lam*v, c) })
	}
	lam0 := x[0] / n[0]
	if ceiling != nil {
		c := *ceiling
		res, err := optimize.Minimize(optimize.Problem{Func: func(p []float64) float64 { return f(p[0]*p[0], c) }},
			[]float64{math.Sqrt(lam0)}, &optimize.Settings{FuncEvaluations: 2000}, &optimize.NelderMead{})
		if err != nil && res == nil {
			return [2]float64{lam0, c}
		}
		return [2]float64{res.X[0] * res.X[0], c}
	}
	res, err := optimize.Minimize(optimize.Problem{Func: func(p []float64) float64 { return f(p[0]*p[0], p[1]*p[1]) }},
		[]float64{math.Sqrt(lam0), math.Sqrt(xmax)}, &optimize.Settings{FuncEvaluations: 4000}, &optimize.NelderMead{})
	if err != nil && res == nil {
		return [2]float64{lam0, xmax}
	}
	return [2]float64{res.X[0] * res.X[0], res.X[1] * res.X[1]}
}

// serversOf is the number of servers the best model implies: 1 for a single
// server, c for c servers, 0 for the others (no such number).
func serversOf(fits []ModelFit) float64 {
	if len(fits) == 0 {
		return 0
	}
	switch fits[0].Model {
	case ModelSingle:
		return 1
	case ModelC:
		return fits[0].Params["c"]
	}
	return 0
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
