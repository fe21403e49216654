package analyze

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// TestLatenciesAreEachAndAll: the figures latencies selects from several
// unsorted series at once equal latencyPtr of each series sorted and of
// their concatenation, for latency-like values, ties, values one bucket
// apart, huge and negative ones (the fallback).
func TestLatenciesAreEachAndAll(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	gens := []func() int64{
		func() int64 { return int64(math.Exp(rng.NormFloat64()*0.6) * 4e7) },
		func() int64 { return rng.Int64N(300) },               // exact small buckets
		func() int64 { return 5e6 + rng.Int64N(3)*1e3 },       // heavy ties
		func() int64 { return rng.Int64N(1 << 62) },           // huge
		func() int64 { return rng.Int64N(2000) - 1000 },       // negative: the fallback
		func() int64 { return 1<<40 + rng.Int64N(1<<20) },     // one bucket wide
		func() int64 { return int64(rng.ExpFloat64() * 1e9) }, // a long tail
	}
	for trial := range 300 {
		gen := gens[trial%len(gens)]
		series := make([][][]int64, 1+rng.IntN(4))
		var flat []int64
		for i := range series {
			for range rng.IntN(4) {
				n := rng.IntN(3000)
				if rng.IntN(5) == 0 {
					n = rng.IntN(40000)
				}
				p := make([]int64, n)
				for j := range p {
					p[j] = gen()
				}
				series[i] = append(series[i], p)
				flat = append(flat, p...)
			}
		}
		over := int64(4e7)
		each, eachAbove, all, allAbove := latencies(series, over)
		check := func(what string, got *Latency, gotAbove int64, vals []int64) {
			t.Helper()
			want := latencyPtr(slices.Clone(vals))
			var wantAbove int64
			for _, v := range vals {
				if v > over {
					wantAbove++
				}
			}
			if (got == nil) != (want == nil) || gotAbove != wantAbove {
				t.Fatalf("trial %d %s: got %+v (%d above), want %+v (%d above)", trial, what, got, gotAbove, want, wantAbove)
			}
			if got == nil {
				return
			}
			// Sums of up to 2^53 are exact in any order: within it, equal.
			g, w := *got, *want
			if math.Abs(g.Avg-w.Avg) > 1e-9*math.Abs(w.Avg) {
				t.Fatalf("trial %d %s: avg %v, want %v", trial, what, g.Avg, w.Avg)
			}
			g.Avg, w.Avg = 0, 0
			if g != w {
				t.Fatalf("trial %d %s: got %+v, want %+v", trial, what, g, w)
			}
		}
		for i, parts := range series {
			var vals []int64
			for _, p := range parts {
				vals = append(vals, p...)
			}
			check("series", each[i], eachAbove[i], vals)
		}
		check("all", all, allAbove, flat)
	}
}

// logBucket is monotone and logRange is its inverse.
func TestLogBucketIsMonotone(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	for range 100000 {
		v := rng.Uint64() >> rng.IntN(64)
		b := logBucket(v)
		lo, hi := logRange(b)
		if b < 0 || b >= logBuckets || uint64(lo) > v || v > uint64(hi) {
			t.Fatalf("value %d: bucket %d [%d, %d]", v, b, lo, hi)
		}
		if b > 0 {
			if _, phi := logRange(b - 1); uint64(phi)+1 != uint64(lo) {
				t.Fatalf("bucket %d starts at %d, the one before ends at %d", b, lo, phi)
			}
		}
	}
}

// TestLatenciesMeanIsOrderedSum: latencies' means are the float64 sums
// of the values in their order (each series', and all series' one after
// another), divided by the count, to the last bit: below 2^53 from whole
// numbers, above it (huge values, sums that pass 2^53 only together)
// added as floats.
func TestLatenciesMeanIsOrderedSum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	gens := []func() int64{
		func() int64 { return int64(rng.ExpFloat64() * 1e9) },
		func() int64 { return rng.Int64N(1 << 62) },
		func() int64 { return 1<<40 + rng.Int64N(1<<38) }, // 2^53 passed by ~4,000 values
		func() int64 { return 1<<63 - 1 - rng.Int64N(9) }, // every sum wraps
	}
	for trial := range 200 {
		gen := gens[trial%len(gens)]
		series := make([][][]int64, 1+rng.IntN(3))
		for i := range series {
			for range 1 + rng.IntN(3) {
				p := make([]int64, rng.IntN(5000))
				for j := range p {
					p[j] = gen()
				}
				series[i] = append(series[i], p)
			}
		}
		each, _, all, _ := latencies(series, math.MaxInt64)
		var totSum float64
		n := 0
		for i, parts := range series {
			var sum float64
			m := 0
			for _, p := range parts {
				for _, v := range p {
					sum += float64(v)
					totSum += float64(v)
				}
				m += len(p)
			}
			n += m
			if m > 0 && each[i].Avg != sum/float64(m)/1e6 {
				t.Fatalf("trial %d series %d: avg %v, want %v", trial, i, each[i].Avg, sum/float64(m)/1e6)
			}
		}
		if n > 0 && all.Avg != totSum/float64(n)/1e6 {
			t.Fatalf("trial %d: all avg %v, want %v", trial, all.Avg, totSum/float64(n)/1e6)
		}
	}
}

// TestDerivedLagAndFromIntended: send lag and latency from the intended
// send, kept beside the durations and derived at the end, are those of
// the rows themselves when some successes have no start or intended time
// and failures have a lag of their own.
func TestDerivedLagAndFromIntended(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(healthy, 5)
	var lags, fromIntended []int64
	for i := range rows {
		r := &rows[i]
		switch i % 7 {
		case 1:
			r.IntendedNS = 0
		case 2:
			if r.ErrorKind == "" {
				r.ErrorKind, r.Error = runspec.ErrHTTP5xx, "HTTP 503"
			}
		case 3:
			r.IntendedNS = r.StartNS - int64(i%50)*int64(time.Millisecond)
		}
		if r.Stage != 2 || r.ErrorKind == runspec.ErrDropped || r.ErrorKind == runspec.ErrCutOff || r.StartNS <= 0 || r.IntendedNS <= 0 {
			continue
		}
		lag := max(0, r.StartNS-r.IntendedNS)
		lags = append(lags, lag)
		if r.ErrorKind == "" {
			fromIntended = append(fromIntended, lag+r.DurationNS)
		}
	}
	s, err := Summarize(info, rows, nil, nil, 0, &WarmUp{})
	if err != nil {
		t.Fatal(err)
	}
	var all *OpStats
	for _, st := range s.Stages {
		if st.Stage == 2 {
			all = st.Operations[AllOps]
		}
	}
	if all == nil || len(lags) == len(fromIntended) || len(fromIntended) == 0 {
		t.Fatalf("stage 2: %+v, %d lags, %d from intended: not the case this test is for", all, len(lags), len(fromIntended))
	}
	for _, c := range []struct {
		what string
		got  *Latency
		vals []int64
	}{{"send lag", all.SendLagMS, lags}, {"from intended", all.FromIntendedMS, fromIntended}} {
		want := latencyPtr(slices.Clone(c.vals))
		if c.got == nil || math.Abs(c.got.Avg-want.Avg) > 1e-9*want.Avg {
			t.Fatalf("%s: got %+v, want %+v", c.what, c.got, want)
		}
		g, w := *c.got, *want
		g.Avg, w.Avg = 0, 0
		if g != w {
			t.Fatalf("%s: got %+v, want %+v", c.what, c.got, want)
		}
	}
}

// TestCutterIsTheDivision: the part cutter remembers gives the division's
// answer for times in order, out of order, before and after the window,
// on its edges, and for windows of any length.
func TestCutterIsTheDivision(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 16))
	for trial := range 300 {
		ws := rng.Int64N(1 << 50)
		w := 1 + rng.Int64N(int64(1)<<(1+rng.IntN(44)))
		we := ws + w
		k := []int64{steadyBuckets, timeSlices, 1, 7}[trial%4]
		var c cutter
		tm := ws - w/10
		for range 2000 {
			switch rng.IntN(4) {
			case 0:
				tm = ws - 5 + rng.Int64N(w+10) // anywhere, edges near
			case 1:
				b := rng.Int64N(k + 1) // a part's first time, or the one before it
				tm = ws + ceilDiv(b*w, k) - rng.Int64N(2)
			default:
				tm += rng.Int64N(1 + w/500) // in order
			}
			want := int(min(max((tm-ws)*k/w, 0), k-1))
			if got := c.part(tm, ws, we, k); got != want {
				t.Fatalf("trial %d: window [%d, %d) in %d: t %d in part %d, want %d", trial, ws, we, k, tm, got, want)
			}
		}
	}
}
