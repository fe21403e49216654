package analyze

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
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

// partsLatency is latencyPtr of the merge of sorted parts, without
// merging them: each percentile is found by its rank.
func partsLatency(parts [][]int64) *Latency {
	n := 0
	var sum float64
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		n += len(p)
		for _, v := range p {
			sum += float64(v)
		}
		lo, hi = min(lo, p[0]), max(hi, p[len(p)-1])
	}
	if n == 0 {
		return nil
	}
	const ms = 1e6
	pct := func(p float64) float64 {
		i := int(math.Ceil(p*float64(n))) - 1
		return float64(kthOfSorted(parts, min(max(i, 0), n-1), lo, hi)) / ms
	}
	return &Latency{
		Min: float64(lo) / ms, Avg: sum / float64(n) / ms,
		P50: pct(0.50), P90: pct(0.90), P95: pct(0.95), P99: pct(0.99),
		Max: float64(hi) / ms,
	}
}

// PercentileOfParts is Percentile of the merge of sorted parts, found by
// rank without merging them.
func PercentileOfParts(parts [][]int64, p float64) float64 {
	n := 0
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, q := range parts {
		if len(q) > 0 {
			n += len(q)
			lo, hi = min(lo, q[0]), max(hi, q[len(q)-1])
		}
	}
	if n == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(n))) - 1
	return float64(kthOfSorted(parts, min(max(i, 0), n-1), lo, hi))
}

// kthOfSorted is the k-th smallest (from 0) of the values of sorted parts,
// all within [lo, hi]: the smallest value v with more than k values ≤ v.
func kthOfSorted(parts [][]int64, k int, lo, hi int64) int64 {
	for lo < hi {
		mid := lo + (hi-lo)/2
		atMost := 0
		for _, p := range parts {
			atMost += sort.Search(len(p), func(i int) bool { return p[i] > mid })
		}
		if atMost > k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
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
