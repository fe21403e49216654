package analyze

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMergeSortedIsSortedConcatenation: merging sorted parts (empty ones,
// ties, one to nine parts, a scratch buffer reused and too short in turn)
// gives the sorted concatenation, and leaves the parts as they were.
func TestMergeSortedIsSortedConcatenation(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	var scratch []int64
	for trial := range 500 {
		parts := make([][]int64, rng.IntN(10))
		var want []int64
		for i := range parts {
			p := make([]int64, rng.IntN(3)*rng.IntN(400))
			for j := range p {
				p[j] = rng.Int64N(int64(1 + trial%50*trial))
			}
			slices.Sort(p)
			parts[i] = p
			want = append(want, p...)
		}
		slices.Sort(want)
		before := make([][]int64, len(parts))
		for i, p := range parts {
			before[i] = slices.Clone(p)
		}
		if trial%7 == 0 {
			scratch = nil
		}
		got := mergeSortedBuf(slices.Clone(parts), &scratch)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: %d parts: merged %v, want %v", trial, len(parts), got, want)
		}
		for i := range parts {
			if !slices.Equal(parts[i], before[i]) {
				t.Fatalf("trial %d: part %d changed: %v, was %v", trial, i, parts[i], before[i])
			}
		}
	}
}

// TestSortedOfBufReusesScratch: sorting with a scratch buffer kept from
// an earlier, larger sort gives the same order as slices.Sort.
func TestSortedOfBufReusesScratch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	var scratch []int64
	gens := []func() int64{
		func() int64 { return rng.Int64N(1 << 34) },
		func() int64 { return rng.Int64N(1<<30) &^ 1023 },                 // the low bits shared
		func() int64 { return rng.Int64N(16) | rng.Int64N(16)<<40 },       // two aligned digits beat four narrow ones
		func() int64 { return 1<<62 + rng.Int64N(5)<<20 + rng.Int64N(3) }, // a few bits far apart
		func() int64 { return rng.Int64N(1 << 62) },
	}
	for i, n := range []int{50_000, 10_000, 70_000, 4096, 30_000, 20_000, 9000} {
		gen := gens[i%len(gens)]
		var parts [][]int64
		var want []int64
		for left := n; left > 0; {
			p := make([]int64, min(left, 1+rng.IntN(9000)))
			for j := range p {
				p[j] = gen()
			}
			parts = append(parts, p)
			want = append(want, p...)
			left -= len(p)
		}
		slices.Sort(want)
		if got := sortedOfBuf(parts, &scratch); !slices.Equal(got, want) {
			t.Fatalf("n=%d: differs from slices.Sort", n)
		}
	}
}

func BenchmarkMergeSorted(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	parts := make([][]int64, 3)
	for i := range parts {
		p := make([]int64, 1<<20)
		for j := range p {
			p[j] = 1e6 + rng.Int64N(1e8)
		}
		slices.Sort(p)
		parts[i] = p
	}
	var scratch []int64
	b.ResetTimer()
	for range b.N {
		mergeSortedBuf(parts, &scratch)
	}
}

// TestSortPositiveFloats: rates sorted by their bits come out in
// slices.Sort's order (ties, subnormals, +Inf included), and a slice with
// a negative value or a NaN is sorted as slices.Sort sorts it.
func TestSortPositiveFloats(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 14))
	for trial := range 60 {
		v := make([]float64, rng.IntN(20_000))
		for i := range v {
			switch rng.IntN(10) {
			case 0:
				v[i] = 5e-324 * float64(1+rng.IntN(5)) // subnormal
			case 1:
				v[i] = math.Inf(1)
			case 2:
				if i > 0 {
					v[i] = v[i-1]
					continue
				}
				fallthrough
			default:
				v[i] = rng.ExpFloat64() * math.Pow(10, float64(rng.IntN(12)-3))
			}
		}
		if trial%5 == 4 && len(v) > 3 {
			v[2] = -v[2]
			if trial%10 == 9 {
				v[3] = math.NaN()
			}
		}
		want := slices.Clone(v)
		slices.Sort(want)
		sortPositiveFloats(v)
		for i := range v {
			if math.Float64bits(v[i]) != math.Float64bits(want[i]) && !(math.IsNaN(v[i]) && math.IsNaN(want[i])) {
				t.Fatalf("trial %d: at %d got %v, want %v", trial, i, v[i], want[i])
			}
		}
	}
}
