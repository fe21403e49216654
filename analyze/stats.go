package analyze

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
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
	sortInt64(vals)
	return latencySorted(vals)
}

// latencySorted is latencyOf of values already sorted.
func latencySorted(vals []int64) Latency {
	if len(vals) == 0 {
		nan := math.NaN()
		return Latency{nan, nan, nan, nan, nan, nan, nan}
	}
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

// partsLatency is latencyPtr of the values of parts together, which need
// not be sorted: each percentile is selected by its rank (selectRanks),
// nothing is sorted or merged. The mean sums the values in the parts'
// order; that is the sorted order's sum whenever the total stays within
// 2^53 ns (104 days), where float64 adds whole numbers exactly.
func partsLatency(parts [][]int64) *Latency {
	l, _ := partsLatencyOver(parts, math.MaxInt64)
	return l
}

// partsLatencyOver is partsLatency, and how many values exceed over.
func partsLatencyOver(parts [][]int64, over int64) (*Latency, int64) {
	n := 0
	var sum float64
	var above int64
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, p := range parts {
		n += len(p)
		for _, v := range p {
			sum += float64(v)
			lo, hi = min(lo, v), max(hi, v)
			if v > over {
				above++
			}
		}
	}
	if n == 0 {
		return nil, 0
	}
	ps := [4]float64{0.50, 0.90, 0.95, 0.99}
	var ks [4]int
	for i, p := range ps {
		ks[i] = min(max(int(math.Ceil(p*float64(n)))-1, 0), n-1)
	}
	var got [4]int64
	selectRanks(parts, n, ks[:], lo, hi, got[:])
	const ms = 1e6
	return &Latency{
		Min: float64(lo) / ms, Avg: sum / float64(n) / ms,
		P50: float64(got[0]) / ms, P90: float64(got[1]) / ms, P95: float64(got[2]) / ms, P99: float64(got[3]) / ms,
		Max: float64(hi) / ms,
	}, above
}

// selectBits is the width of selectRanks' histogram: 2^14 counters (64
// KiB) stay in the CPU's cache while every value is counted.
const selectBits = 14

// selectRanks sets out[i] to the ks[i]-th smallest (from 0; ks ascending)
// of the n values of parts, all within [lo, hi]. It counts the values
// into 2^selectBits equal buckets of the range, copies out the few
// buckets that hold a wanted rank and selects within them the same way,
// until a bucket is one value wide or holds few enough values to sort:
// two passes over the values where sorting them would take six.
func selectRanks(parts [][]int64, n int, ks []int, lo, hi int64, out []int64) {
	if n <= 1<<10 || lo == hi {
		if lo == hi {
			for i := range ks {
				out[i] = lo
			}
			return
		}
		all := make([]int64, 0, n)
		for _, p := range parts {
			all = append(all, p...)
		}
		slices.Sort(all)
		for i, k := range ks {
			out[i] = all[k]
		}
		return
	}
	span := uint64(hi) - uint64(lo)
	shift := uint(max(bits.Len64(span)-selectBits, 0))
	counts := make([]int, span>>shift+1)
	base := uint64(lo)
	for _, p := range parts {
		for _, v := range p {
			counts[(uint64(v)-base)>>shift]++
		}
	}
	// The bucket of each wanted rank, and the rank within it.
	buckets := make([]int, len(ks))
	within := make([]int, len(ks))
	b, below := 0, 0
	for i, k := range ks {
		for below+counts[b] <= k {
			below += counts[b]
			b++
		}
		buckets[i], within[i] = b, k-below
	}
	if shift == 0 {
		for i, b := range buckets {
			out[i] = lo + int64(b)
		}
		return
	}
	// Copy out the wanted buckets (a few; ranks in one bucket share it).
	want := slices.Compact(slices.Clone(buckets))
	subs := make([][]int64, len(want))
	for j, b := range want {
		subs[j] = make([]int64, 0, counts[b])
	}
	for _, p := range parts {
		for _, v := range p {
			b := int((uint64(v) - base) >> shift)
			for j, w := range want {
				if b == w {
					subs[j] = append(subs[j], v)
					break
				}
			}
		}
	}
	for j, w := range want {
		var rks []int
		var idx []int
		for i, b := range buckets {
			if b == w {
				rks, idx = append(rks, within[i]), append(idx, i)
			}
		}
		got := make([]int64, len(rks))
		// The bucket's range, as offsets from lo (the last one ends at hi).
		off := uint64(w) << shift
		blo, bhi := int64(base+off), int64(base+min(off+(1<<shift-1), span))
		selectRanks([][]int64{subs[j]}, len(subs[j]), rks, blo, bhi, got)
		for t, i := range idx {
			out[i] = got[t]
		}
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
