package analyze

import (
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
	for _, n := range []int{50_000, 10_000, 70_000, 4096} {
		var parts [][]int64
		var want []int64
		for left := n; left > 0; {
			p := make([]int64, min(left, 1+rng.IntN(9000)))
			for j := range p {
				p[j] = rng.Int64N(1 << 34)
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
