package analyze

import (
	"math"
	"slices"

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
func fitUSL(n, x []float64) *USLFit { return fitUSLFrom(n, x, nil) }

// fitUSLFrom is fitUSL starting from an earlier fit of nearly the same
// points (nil: from several starts).
func fitUSLFrom(n, x []float64, from *USLFit) *USLFit {
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
	if from != nil {
		// A refit of nearly the same points: one start, at the first fit,
		// with a small simplex search (gonum's costs a goroutine handshake
		// per evaluation, too much for a hundred refits).
		bp = nelderMead(loss, []float64{math.Sqrt(from.Lambda), math.Sqrt(from.Sigma) + 1e-3, math.Sqrt(from.Kappa) + 1e-4}, 300)
		best = loss(bp)
	}
	for _, init := range [][3]float64{{0.1, 0.01}, {0.5, 0.1}, {0.01, 0.001}, {0.9, 0.3}} {
		if from != nil {
			break
		}
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

// nelderMead minimises f from x0 by the simplex method (reflection 1,
// expansion 2, contraction ½, shrink ½), in at most maxEval evaluations.
func nelderMead(f func([]float64) float64, x0 []float64, maxEval int) []float64 {
	d := len(x0)
	pts := make([][]float64, d+1)
	val := make([]float64, d+1)
	for i := range pts {
		pts[i] = slices.Clone(x0)
		if i > 0 {
			pts[i][i-1] += 0.1*math.Abs(x0[i-1]) + 0.01
		}
		val[i] = f(pts[i])
	}
	evals := d + 1
	at := func(c []float64, w []float64, t float64) []float64 {
		out := make([]float64, d)
		for j := range out {
			out[j] = c[j] + t*(w[j]-c[j])
		}
		return out
	}
	for evals < maxEval {
		idx := []int{}
		for i := range pts {
			idx = append(idx, i)
		}
		slices.SortFunc(idx, func(a, b int) int { return cmpFloat(val[a], val[b]) })
		p2, v2 := make([][]float64, d+1), make([]float64, d+1)
		for i, k := range idx {
			p2[i], v2[i] = pts[k], val[k]
		}
		pts, val = p2, v2
		c := make([]float64, d) // centroid of all but the worst
		for _, p := range pts[:d] {
			for j := range c {
				c[j] += p[j] / float64(d)
			}
		}
		r := at(c, pts[d], -1)
		fr := f(r)
		evals++
		switch {
		case fr < val[0]:
			e := at(c, pts[d], -2)
			if fe := f(e); fe < fr {
				pts[d], val[d] = e, fe
			} else {
				pts[d], val[d] = r, fr
			}
			evals++
		case fr < val[d-1]:
			pts[d], val[d] = r, fr
		default:
			k := at(c, pts[d], 0.5)
			fk := f(k)
			evals++
			if fk < val[d] {
				pts[d], val[d] = k, fk
				continue
			}
			for i := 1; i <= d; i++ {
				pts[i] = at(pts[0], pts[i], 0.5)
				val[i] = f(pts[i])
			}
			evals += d
		}
	}
	best := 0
	for i := range val {
		if val[i] < val[best] {
			best = i
		}
	}
	return pts[best]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
