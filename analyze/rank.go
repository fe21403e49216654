package analyze

import (
	"cmp"
	"math"
	"slices"
)

// spearman is Spearman's ρ of x and y with tied values given their mean
// rank (the Pearson correlation of the ranks), and 0 when either side is
// constant. Stage values tie often (a TTFT of 30, 30, 30 ms at the first
// levels, a throughput held at a limit): ranking ties by their position
// would read a flat series as a perfect rise.
func spearman(x, y []float64) float64 {
	rx, ry := midRanks(x), midRanks(y)
	var mx, my float64
	for i := range rx {
		mx, my = mx+rx[i], my+ry[i]
	}
	mx, my = mx/float64(len(rx)), my/float64(len(ry))
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy, sxx, syy = sxy+dx*dy, sxx+dx*dx, syy+dy*dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// midRanks ranks v from 1, equal values sharing their mean rank.
func midRanks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(v[a], v[b]) })
	r := make([]float64, len(v))
	for lo := 0; lo < len(idx); {
		hi := lo
		for hi < len(idx) && v[idx[hi]] == v[idx[lo]] {
			hi++
		}
		for _, i := range idx[lo:hi] {
			r[i] = float64(lo+hi+1) / 2
		}
		lo = hi
	}
	return r
}
