package analyze

import (
	"math"
	"slices"
)

// maxTimelinePoints bounds each timeline series; longer runs are merged
// into wider buckets so that figures stay small.
const maxTimelinePoints = 600

// timelineOf turns the per-second series' buckets (series.go: every
// request at the second it started, cut-offs left out, a histogram of the
// successes) into series for the timeline figure.
func (c *collector) timelineOf(pts []point) *Timeline {
	tl := &Timeline{StartNS: c.runStart, Series: map[string]*Series{}, BucketS: 1}
	var last int64
	for _, m := range c.seconds {
		for sec := range m {
			last = max(last, sec)
		}
	}
	for _, p := range pts {
		if p.t > c.runStart {
			last = max(last, (p.t-c.runStart)/1e9)
		}
	}
	width := int64(1)
	if last+1 > maxTimelinePoints {
		width = (last + maxTimelinePoints) / maxTimelinePoints
	}
	tl.BucketS = float64(width)
	for name, m := range c.seconds {
		merged := map[int64]*secondAcc{}
		for sec, b := range m {
			k := sec / width
			mb := merged[k]
			if mb == nil {
				mb = &secondAcc{minNS: math.MaxInt64}
				merged[k] = mb
			}
			mb.add(b)
		}
		keys := make([]int64, 0, len(merged))
		for k := range merged {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s := &Series{}
		for _, k := range keys {
			b := merged[k]
			x := float64(k*width) + tl.BucketS/2
			s.RPS = append(s.RPS, XY{x, float64(b.requests) / tl.BucketS})
			s.Errors = append(s.Errors, XY{x, float64(b.failures) / tl.BucketS})
			if q := histQuantile(&b.hist, 0.95); !math.IsNaN(q) {
				s.P95MS = append(s.P95MS, XY{x, q})
			}
		}
		tl.Series[name] = s
	}
	tl.GPUUtil = resourceSeries(pts, ResGPUUtil, c.runStart, width)
	tl.CPUUtil = resourceSeries(pts, "cpu_util", c.runStart, width)
	return tl
}

// resourceSeries averages one resource per bucket, over every source.
func resourceSeries(pts []point, name string, start, width int64) []XY {
	type acc struct {
		sum float64
		n   int
	}
	m := map[int64]*acc{}
	for _, p := range pts {
		if p.name != name || p.t < start {
			continue
		}
		k := (p.t - start) / 1e9 / width
		a := m[k]
		if a == nil {
			a = &acc{}
			m[k] = a
		}
		a.sum += p.value
		a.n++
	}
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]XY, 0, len(keys))
	for _, k := range keys {
		out = append(out, XY{float64(k*width) + float64(width)/2, m[k].sum / float64(m[k].n)})
	}
	return out
}
