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

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Order statistics of several series at once: the operations' figures of
// a stage and, from the same two passes, those of all of them together.
// A value's bucket is a fixed monotone function of it (logBucket: the
// value itself below 256, else its leading nine bits and its magnitude,
// a bucket 1/256 to 1/512 of the value wide), so that the operations'
// counts add up to the all row's without another pass: one pass counts,
// one copies out the few buckets holding a wanted rank of an operation or
// of the all row, which are then selected within (selectRanks).

const (
	logMantBits = 8
	logBuckets  = 1<<logMantBits + (64-logMantBits)<<logMantBits
)

func logBucket(v uint64) int {
	if v < 1<<logMantBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 - logMantBits
	return int(1<<logMantBits + uint64(e)<<logMantBits + (v>>e - 1<<logMantBits))
}

// logRange is the smallest and largest value of bucket b.
func logRange(b int) (lo, hi int64) {
	if b < 1<<logMantBits {
		return int64(b), int64(b)
	}
	e := uint(b-1<<logMantBits) >> logMantBits
	m := uint64(b-1<<logMantBits)&(1<<logMantBits-1) + 1<<logMantBits
	return int64(m << e), int64((m+1)<<e - 1)
}

// seriesAcc is what the counting pass found in one series.
type seriesAcc struct {
	n          int
	sum        float64
	lo, hi     int64
	above      int64
	counts     []int32
	ks, bucket [4]int // wanted ranks, their buckets
	within     [4]int // and their ranks within the bucket
}

// wantedRanks are the nearest ranks of p50, p90, p95 and p99 of n values.
func wantedRanks(n int) (ks [4]int) {
	for i, p := range [4]float64{0.50, 0.90, 0.95, 0.99} {
		ks[i] = min(max(int(math.Ceil(p*float64(n)))-1, 0), n-1)
	}
	return ks
}

func (a *seriesAcc) locate() {
	a.ks = wantedRanks(a.n)
	b, below := 0, 0
	for i, k := range a.ks {
		for below+int(a.counts[b]) <= k {
			below += int(a.counts[b])
			b++
		}
		a.bucket[i], a.within[i] = b, k-below
	}
}

func (a *seriesAcc) latency(got [4]int64) *Latency {
	const ms = 1e6
	return &Latency{
		Min: float64(a.lo) / ms, Avg: a.sum / float64(a.n) / ms,
		P50: float64(got[0]) / ms, P90: float64(got[1]) / ms, P95: float64(got[2]) / ms, P99: float64(got[3]) / ms,
		Max: float64(a.hi) / ms,
	}
}

// latencies is partsLatencyOver of each series (its chunks) and of all of
// them together, the latter's values in the series' order.
func latencies(series [][][]int64, over int64) (each []*Latency, eachAbove []int64, all *Latency, allAbove int64) {
	each, eachAbove = make([]*Latency, len(series)), make([]int64, len(series))
	accs := make([]seriesAcc, len(series))
	tot := seriesAcc{lo: math.MaxInt64, hi: math.MinInt64, counts: make([]int32, logBuckets)}
	negative := false
	var totSum uint64 // the series' sums while each is exact (below 2^53)
	inexact := false
	for i, parts := range series {
		a := &accs[i]
		a.lo, a.hi = math.MaxInt64, math.MinInt64
		for _, p := range parts {
			a.n += len(p)
		}
		if a.n == 0 {
			continue
		}
		a.counts = make([]int32, logBuckets)
		// The sum in whole numbers: while it stays under 2^53 it is the
		// float64 sum of the values in any order, without a float
		// addition per value that waits for the one before.
		var isum, carry uint64
		for _, p := range parts {
			for _, v := range p {
				isum, carry = bits.Add64(isum, uint64(v), carry)
				a.lo, a.hi = min(a.lo, v), max(a.hi, v)
				if v > over {
					a.above++
				}
				a.counts[logBucket(uint64(v))]++ // a negative value lands in a high bucket, caught below
			}
		}
		if a.lo >= 0 && carry == 0 && isum < 1<<53 {
			a.sum = float64(isum)
			totSum += isum
		} else {
			a.sum = floatSum(parts)
			inexact = true
		}
		negative = negative || a.lo < 0 || a.n > math.MaxInt32
		tot.n += a.n
		tot.lo, tot.hi, tot.above = min(tot.lo, a.lo), max(tot.hi, a.hi), tot.above+a.above
	}
	tot.sum = float64(totSum)
	if inexact || totSum >= 1<<53 {
		// Past 2^53 a float64 sum depends on the order: the values' own.
		tot.sum = 0
		for _, parts := range series {
			for _, p := range parts {
				for _, v := range p {
					tot.sum += float64(v)
				}
			}
		}
	}
	if negative {
		// Not latencies: each selected on its own.
		var flat [][]int64
		for i, parts := range series {
			each[i], eachAbove[i] = partsLatencyOver(parts, over)
			flat = append(flat, parts...)
		}
		all, allAbove = partsLatencyOver(flat, over)
		return each, eachAbove, all, allAbove
	}
	if tot.n == 0 {
		return each, eachAbove, nil, 0
	}
	for i := range accs {
		if accs[i].n > 0 {
			for b, c := range accs[i].counts {
				tot.counts[b] += c
			}
			accs[i].locate()
		}
	}
	tot.locate()
	// Copy out the wanted buckets: mark says whose they are (bit 1 the
	// operation's, bit 2 the all row's), slot where each goes.
	mark := make([]uint8, logBuckets)
	var allSlot [logBuckets]int8
	allSubs := make([][]int64, 0, 4)
	for _, b := range tot.bucket {
		if mark[b]&2 == 0 {
			mark[b] |= 2
			allSlot[b] = int8(len(allSubs))
			allSubs = append(allSubs, make([]int64, 0, tot.counts[b]))
		}
	}
	var opSlot [logBuckets]int8
	for i, parts := range series {
		a := &accs[i]
		if a.n == 0 {
			continue
		}
		subs := make([][]int64, 0, 4)
		for _, b := range a.bucket {
			if mark[b]&1 == 0 {
				mark[b] |= 1
				opSlot[b] = int8(len(subs))
				subs = append(subs, make([]int64, 0, a.counts[b]))
			}
		}
		for _, p := range parts {
			for _, v := range p {
				b := logBucket(uint64(v))
				if m := mark[b]; m != 0 {
					if m&1 != 0 {
						subs[opSlot[b]] = append(subs[opSlot[b]], v)
					}
					if m&2 != 0 {
						allSubs[allSlot[b]] = append(allSubs[allSlot[b]], v)
					}
				}
			}
		}
		for _, b := range a.bucket {
			mark[b] &^= 1
		}
		each[i], eachAbove[i] = a.latency(a.pick(subs, &opSlot)), a.above
	}
	return each, eachAbove, tot.latency(tot.pick(allSubs, &allSlot)), tot.above
}

// floatSum is the float64 sum of the parts' values in their order.
func floatSum(parts [][]int64) float64 {
	var sum float64
	for _, p := range parts {
		for _, v := range p {
			sum += float64(v)
		}
	}
	return sum
}

// pick selects the wanted ranks within the copied-out buckets, those of
// one bucket together (the ranks ascend, so they are neighbours).
func (a *seriesAcc) pick(subs [][]int64, slot *[logBuckets]int8) (got [4]int64) {
	for i := 0; i < len(a.bucket); {
		b, j := a.bucket[i], i+1
		for j < len(a.bucket) && a.bucket[j] == b {
			j++
		}
		lo, hi := logRange(b)
		sub := subs[slot[b]]
		selectRanks([][]int64{sub}, len(sub), a.within[i:j], max(lo, a.lo), min(hi, a.hi), got[i:j])
		i = j
	}
	return got
}
