package analyze

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Each capacity model is chosen on its own curve (with 2 % noise), and the
// others are kept as rejected with a reason.
func TestCompareModels(t *testing.T) {
	t.Parallel()
	n := []float64{1, 2, 4, 8, 16, 32}
	usl := USLFit{Lambda: 10, Sigma: 0.02, Kappa: 0.004}
	for _, tc := range []struct {
		name  string
		r1    float64 // one-user latency, s
		x     func(float64) float64
		model string
		c     float64 // servers, for c_servers
	}{
		{"linear", 0.1, func(v float64) float64 { return 10 * v }, ModelLinear, 0},
		{"one server of 20 ms", 0.02, func(v float64) float64 { return math.Min(10*v, 50) }, ModelSingle, 0},
		{"eight servers of 50 ms", 0.05, func(v float64) float64 { return math.Min(10*v, 160) }, ModelC, 8},
		{"crosstalk", 0.1, usl.X, ModelUSL, 0},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			r := rand.New(rand.NewPCG(seed, 1))
			x := make([]float64, len(n))
			for i, v := range n {
				x[i] = tc.x(v) * (1 + 0.02*r.NormFloat64())
			}
			fits := compareModels(n, x, tc.r1)
			// The true model first, or within the noise of the first: a
			// linear curve is also a pool whose ceiling was not reached.
			i := slices.IndexFunc(fits, func(f ModelFit) bool { return f.Model == tc.model })
			if len(fits) != 4 || i < 0 || fits[i].DeltaAIC >= decisiveAIC {
				t.Fatalf("%s seed %d: fits %+v, want %s first or within %g", tc.name, seed, fits, tc.model, decisiveAIC)
			}
			if linear := slices.IndexFunc(fits, func(f ModelFit) bool { return f.Model == ModelLinear }); tc.model != ModelLinear && fits[linear].DeltaAIC < decisiveAIC {
				t.Errorf("%s seed %d: linear scaling not rejected: %+v", tc.name, seed, fits)
			}
			if tc.c > 0 && math.Abs(fits[i].Params["c"]-tc.c) > 0.5 {
				t.Errorf("%s seed %d: c = %.2f, want %g", tc.name, seed, fits[i].Params["c"], tc.c)
			}
			for _, f := range fits[1:] {
				if f.DeltaAIC < 0 || f.Why == "" {
					t.Errorf("%s seed %d: rejected %s with ΔAIC %v, why %q", tc.name, seed, f.Model, f.DeltaAIC, f.Why)
				}
			}
		}
	}
	if fits := compareModels([]float64{1, 2}, []float64{1, 2}, 0.1); fits != nil {
		t.Errorf("two points: %+v, want no comparison", fits)
	}
}

// Redrawing the curve from its counts: with thousands of requests per
// point the choice holds and the interval is tight around the true c; with
// a handful it wavers and widens.
func TestBootstrapModels(t *testing.T) {
	t.Parallel()
	n := []float64{1, 2, 4, 8, 16, 32}
	x := make([]float64, len(n))
	for i, v := range n {
		x[i] = math.Min(10*v, 160) // eight servers of 50 ms
	}
	many := curveNoise{n: []float64{5000, 5000, 5000, 5000, 5000, 5000}, r1CV: 0.005, seedH: 1}
	conf, ci := bootstrapModels(n, x, 0.05, many, ModelC, nil)
	if conf < 0.9 || ci["c"][0] > 8 || ci["c"][1] < 8 || ci["c"][1]-ci["c"][0] > 1 {
		t.Errorf("5000 requests a point: confidence %.2f, c in %v; want ≥ 0.9 and a tight interval around 8", conf, ci["c"])
	}
	few := curveNoise{n: []float64{4, 4, 4, 4, 4, 4}, r1CV: 0.2, seedH: 1}
	fconf, fci := bootstrapModels(n, x, 0.05, few, ModelC, nil)
	if fconf >= conf || fci["c"][1]-fci["c"][0] <= ci["c"][1]-ci["c"][0] {
		t.Errorf("4 requests a point: confidence %.2f, c in %v; want less sure than with 5000 (%.2f, %v)", fconf, fci["c"], conf, ci["c"])
	}
}
