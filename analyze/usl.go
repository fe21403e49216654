package analyze

import (
	"math"

	"gonum.org/v1/gonum/optimize"
)

// USLFit is the Universal Scalability Law fitted to throughput against
// users: X(N) = λN / (1 + σ(N−1) + κN(N−1)). σ is contention (queueing on
// a shared resource), κ coherency (crosstalk that makes throughput fall).
type USLFit struct {
	Lambda, Sigma, Kappa float64
	NMax                 float64 // users at peak throughput, +Inf when κ = 0
	R2                   float64
	UsersAtP95Goal       float64 // users at which the p95 goal is predicted to be crossed; 0 when unknown
}

// X is the fitted throughput at n users.
func (f *USLFit) X(n float64) float64 {
	return f.Lambda * n / (1 + f.Sigma*(n-1) + f.Kappa*n*(n-1))
}

// fitUSL fits the law by least squares with Nelder–Mead (gonum has no
// Levenberg–Marquardt); λ = l², σ = s², κ = k² keep them non-negative.
// It needs three distinct user counts.
func fitUSL(n, x []float64) *USLFit {
	distinct := map[float64]bool{}
	var xmax, slope float64
	for i := range n {
		distinct[n[i]] = true
		xmax = math.Max(xmax, x[i])
		if n[i] > 0 {
			slope = math.Max(slope, x[i]/n[i])
		}
	}
	if len(distinct) < 3 || xmax <= 0 {
		return nil
	}
	loss := func(p []float64) float64 {
		f := USLFit{Lambda: p[0] * p[0], Sigma: p[1] * p[1], Kappa: p[2] * p[2]}
		var sse float64
		for i := range n {
			d := (f.X(n[i]) - x[i]) / xmax
			sse += d * d
		}
		return sse
	}
	best := math.Inf(1)
	var bp []float64
	for _, init := range [][3]float64{{0.1, 0.01}, {0.5, 0.1}, {0.01, 0.001}, {0.9, 0.3}} {
		res, err := optimize.Minimize(optimize.Problem{Func: loss},
			[]float64{math.Sqrt(slope), init[0], init[1]},
			&optimize.Settings{FuncEvaluations: 4000}, &optimize.NelderMead{})
		if err != nil && res == nil {
			continue
		}
		if res.F < best {
			best, bp = res.F, res.X
		}
	}
	if bp == nil {
		return nil
	}
	f := &USLFit{Lambda: bp[0] * bp[0], Sigma: bp[1] * bp[1], Kappa: bp[2] * bp[2], NMax: math.Inf(1)}
	if f.Kappa > 1e-12 && f.Sigma < 1 {
		f.NMax = math.Sqrt((1 - f.Sigma) / f.Kappa)
	}
	var mean, sst float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		sst += (v - mean) * (v - mean) / (xmax * xmax)
	}
	if sst > 0 {
		f.R2 = 1 - best/sst
	}
	return f
}

// usersAtGoal predicts where the p95 goal (ms) is crossed: closed-system
// response time R(N) = N/X(N) − Z from the fit, scaled by the p95/mean
// ratio seen at the highest measured load. 0 when it cannot be told.
func (f *USLFit) usersAtGoal(goalMS, thinkS, p95OverMean, nLimit float64) float64 {
	if f == nil || goalMS <= 0 || thinkS < 0 || p95OverMean <= 0 {
		return 0
	}
	for n := 1.0; n <= nLimit; n++ {
		x := f.X(n)
		if x <= 0 {
			return n
		}
		r := (n/x - thinkS) * 1000 * p95OverMean
		if r > goalMS {
			return n
		}
	}
	return 0
}

// kneedle finds the knee of a concave rising curve (Satopää et al.): with
// both axes scaled to [0, 1], the point farthest above the diagonal.
// It returns -1 when the curve never rises above it.
func kneedle(n, x []float64) int {
	if len(n) < 3 {
		return -1
	}
	nmin, nmax := n[0], n[len(n)-1]
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		xmin, xmax = math.Min(xmin, v), math.Max(xmax, v)
	}
	if nmax <= nmin || xmax <= xmin {
		return -1
	}
	best, at := 0.05, -1
	for i := range n {
		d := (x[i]-xmin)/(xmax-xmin) - (n[i]-nmin)/(nmax-nmin)
		if d > best {
			best, at = d, i
		}
	}
	return at
}
