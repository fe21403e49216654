package analyze

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrBadInput marks errors caused by the input files or flags (exit code 2).
var ErrBadInput = errors.New("analyze: bad input")

type badInputError struct{ msg string }

func (e *badInputError) Error() string { return e.msg }
func (e *badInputError) Is(t error) bool {
	return t == ErrBadInput
}

func badInputf(format string, args ...any) error {
	return &badInputError{msg: fmt.Sprintf(format, args...)}
}

// Percentile is the exact nearest-rank percentile (R type 1) of sorted:
// the ⌈p·n⌉-th smallest value, p in [0, 1]. It is NaN for an empty slice.
func Percentile(sorted []int64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(n))) - 1
	i = min(max(i, 0), n-1)
	return float64(sorted[i])
}

// latencyOf sorts vals (ns) in place and summarises them in milliseconds.
func latencyOf(vals []int64) Latency {
	if len(vals) == 0 {
		nan := math.NaN()
		return Latency{nan, nan, nan, nan, nan, nan, nan}
	}
	sortInt64(vals)
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	const ms = 1e6
	return Latency{
		Min: float64(vals[0]) / ms,
		Avg: sum / float64(len(vals)) / ms,
		P50: Percentile(vals, 0.50) / ms,
		P90: Percentile(vals, 0.90) / ms,
		P95: Percentile(vals, 0.95) / ms,
		P99: Percentile(vals, 0.99) / ms,
		Max: float64(vals[len(vals)-1]) / ms,
	}
}

// latencyPtr is latencyOf, nil for no values.
func latencyPtr(vals []int64) *Latency {
	if len(vals) == 0 {
		return nil
	}
	l := latencyOf(vals)
	return &l
}

// linReg fits y = a + b·x by least squares and returns R².
func linReg(x, y []float64) (a, b, r2 float64) {
	n := float64(len(x))
	if len(x) < 2 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxx, sxy, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return my, 0, 0
	}
	b = sxy / sxx
	a = my - b*mx
	if syy == 0 {
		return a, b, 1
	}
	return a, b, sxy * sxy / (sxx * syy)
}

// spearman is the rank correlation of x and y (no tie correction: the
// inputs are few stage values).
func spearman(x, y []float64) float64 {
	rx, ry := ranks(x), ranks(y)
	_, _, r2 := linReg(rx, ry)
	_, b, _ := linReg(rx, ry)
	if b < 0 {
		return -math.Sqrt(r2)
	}
	return math.Sqrt(r2)
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return 0
	})
	r := make([]float64, len(v))
	for rank, i := range idx {
		r[i] = float64(rank)
	}
	return r
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
