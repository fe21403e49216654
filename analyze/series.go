package analyze

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// RunSeries is the run second by second, per scenario and for all scenarios
// together ("all"): what a Locust stats_history.csv holds, and tokens.
// Every row of the run counts, warm-up included, at the second it started
// (was meant to start, for a dropped one); cut-off requests are left out.
// Percentiles come from a histogram of bins 2^(1/4) wide (the bin's upper
// edge, so at most 19 % high); the stage tables' percentiles are exact.
type RunSeries struct {
	BucketS float64                  `json:"bucket_s"` // 1, wider only for runs over a day
	Start   string                   `json:"start"`    // RFC 3339, second 0
	Series  map[string][]SeriesPoint `json:"scenarios"`
}

// SeriesPoint is one second (bucket) of one scenario, or of all.
type SeriesPoint struct {
	T          float64 `json:"t"`     // seconds from Start, the bucket's start
	Users      int     `json:"users"` // most users active at a send (open mode: requests in flight)
	Requests   int64   `json:"requests"`
	Failures   int64   `json:"failures"`
	RPS        float64 `json:"rps"`
	FailuresPS float64 `json:"failures_per_s"`
	TokensPS   float64 `json:"tokens_per_s"` // completion tokens of the requests that ended well
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`

	// For stats_history.csv: the other percentiles of the bucket and the
	// totals from the run's start to the bucket's end.
	Percentiles      map[float64]float64 `json:"-"`
	TotalRequests    int64               `json:"-"`
	TotalFailures    int64               `json:"-"`
	TotalMedianMS    float64             `json:"-"`
	TotalAvgMS       float64             `json:"-"`
	TotalMinMS       float64             `json:"-"`
	TotalMaxMS       float64             `json:"-"`
	TotalAvgBytes    float64             `json:"-"`
	StartUnixSeconds int64               `json:"-"`
}

// SeriesPercentiles are the percentiles each point has (Locust's list).
var SeriesPercentiles = []float64{0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0}

// maxSeriesPoints bounds each series; a longer run is cut in wider buckets.
const maxSeriesPoints = 86400

type secondAcc struct {
	requests, failures int64
	users              int32
	tokens             int64
	bytes              int64
	sumNS              float64
	minNS, maxNS       int64
	ok                 int64
	hist               [histBins]uint32
}

// denseSeconds is one scenario's seconds 0, 1, … in a slice by number,
// until flushSeconds moves them into collector.seconds.
type denseSeconds struct{ v []*secondAcc }

// maxDenseSeconds bounds the seconds kept by number (a day); later or
// earlier ones go straight to the map.
const maxDenseSeconds = 86400

// addSecond is the collector's hook for the per-second series.
func (c *collector) addSecond(r *captures.Result, t int64, d *denseSeconds) {
	if r.ErrorKind == runspec.ErrCutOff || c.runStart == 0 {
		return
	}
	sec := (t - c.runStart) / int64(time.Second)
	var a *secondAcc
	if sec >= 0 && sec < maxDenseSeconds && d != nil {
		if int(sec) >= len(d.v) {
			d.v = append(d.v, make([]*secondAcc, int(sec)+1-len(d.v))...)
			d.v = d.v[:cap(d.v)]
		}
		a = d.v[sec]
		if a == nil {
			a = &secondAcc{minNS: math.MaxInt64}
			d.v[sec] = a
		}
	} else {
		a = c.secondOf(r.Scenario, sec)
	}
	a.requests++
	a.users = max(a.users, r.ActiveUsers)
	if r.ErrorKind != "" {
		a.failures++
		return
	}
	a.ok++
	a.tokens += r.CompletionTokens
	a.bytes += r.BytesIn
	a.sumNS += float64(r.DurationNS)
	a.minNS, a.maxNS = min(a.minNS, r.DurationNS), max(a.maxNS, r.DurationNS)
	a.hist[histBin(r.DurationNS)]++
}

// secondOf is the accumulator of a scenario's second in the map.
func (c *collector) secondOf(scenario string, sec int64) *secondAcc {
	if c.seconds == nil {
		c.seconds = map[string]map[int64]*secondAcc{}
	}
	m := c.seconds[scenario]
	if m == nil {
		m = map[int64]*secondAcc{}
		c.seconds[scenario] = m
	}
	a := m[sec]
	if a == nil {
		a = &secondAcc{minNS: math.MaxInt64}
		m[sec] = a
	}
	return a
}

// flushSeconds moves the dense seconds into the map.
func (c *collector) flushSeconds() {
	for name, d := range c.dense {
		for sec, b := range d.v {
			if b != nil {
				c.secondOf(name, int64(sec)).add(b)
			}
		}
		d.v = nil
	}
}

func (a *secondAcc) add(o *secondAcc) {
	a.requests += o.requests
	a.failures += o.failures
	a.users = max(a.users, o.users)
	a.tokens += o.tokens
	a.bytes += o.bytes
	a.sumNS += o.sumNS
	a.ok += o.ok
	a.minNS, a.maxNS = min(a.minNS, o.minNS), max(a.maxNS, o.maxNS)
	for i, v := range o.hist {
		a.hist[i] += v
	}
}

// mergeSeconds is merge's hook.
func (c *collector) mergeSeconds(o *collector) {
	for name, om := range o.seconds {
		if c.seconds == nil {
			c.seconds = map[string]map[int64]*secondAcc{}
		}
		m := c.seconds[name]
		if m == nil {
			c.seconds[name] = om
			continue
		}
		for sec, b := range om {
			if a := m[sec]; a != nil {
				a.add(b)
			} else {
				m[sec] = b
			}
		}
	}
}

// seriesOf turns the seconds into series, every scenario's and all's.
func (c *collector) seriesOf() *RunSeries {
	rs := &RunSeries{BucketS: 1, Series: map[string][]SeriesPoint{}}
	if c.runStart == 0 {
		return rs
	}
	rs.Start = time.Unix(0, c.runStart).UTC().Format(time.RFC3339Nano)
	var last int64
	for _, m := range c.seconds {
		for sec := range m {
			last = max(last, sec)
		}
	}
	width := int64(1)
	if last+1 > maxSeriesPoints {
		width = (last + maxSeriesPoints) / maxSeriesPoints
	}
	rs.BucketS = float64(width)
	all := map[int64]*secondAcc{}
	allUsers := map[int64]int32{} // users add up over scenarios
	for name, m := range c.seconds {
		merged := map[int64]*secondAcc{}
		for sec, b := range m {
			k := sec / width
			if merged[k] == nil {
				merged[k] = &secondAcc{minNS: math.MaxInt64}
			}
			merged[k].add(b)
		}
		for k, b := range merged {
			if all[k] == nil {
				all[k] = &secondAcc{minNS: math.MaxInt64}
			}
			all[k].add(b)
			allUsers[k] += b.users
		}
		rs.Series[name] = c.points(merged, rs.BucketS, nil)
	}
	if len(c.seconds) > 0 {
		rs.Series[AllOps] = c.points(all, rs.BucketS, allUsers)
	}
	return rs
}

// points walks the buckets in time order, keeping the running totals.
func (c *collector) points(m map[int64]*secondAcc, width float64, users map[int64]int32) []SeriesPoint {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	total := &secondAcc{minNS: math.MaxInt64}
	out := make([]SeriesPoint, 0, len(keys))
	ms := func(v float64) float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0
		}
		return round(v, 3)
	}
	for _, k := range keys {
		b := m[k]
		total.add(b)
		t := float64(k) * width
		p := SeriesPoint{T: t, Users: int(b.users), Requests: b.requests, Failures: b.failures,
			RPS: round(float64(b.requests)/width, 3), FailuresPS: round(float64(b.failures)/width, 3),
			TokensPS: round(float64(b.tokens)/width, 3), Percentiles: map[float64]float64{},
			TotalRequests: total.requests, TotalFailures: total.failures,
			StartUnixSeconds: (c.runStart + int64(t*1e9)) / 1e9}
		if users != nil {
			p.Users = int(users[k])
		}
		if b.ok > 0 {
			for _, q := range SeriesPercentiles {
				// A bin's upper edge, but never past the exact extremes
				// (100 % is the exact maximum).
				v := math.Min(math.Max(histQuantile(&b.hist, q), float64(b.minNS)/1e6), float64(b.maxNS)/1e6)
				p.Percentiles[q] = ms(v)
			}
			p.P50MS, p.P95MS, p.P99MS = p.Percentiles[0.5], p.Percentiles[0.95], p.Percentiles[0.99]
		}
		if total.ok > 0 {
			p.TotalMedianMS = ms(math.Min(math.Max(histQuantile(&total.hist, 0.5), float64(total.minNS)/1e6), float64(total.maxNS)/1e6))
			p.TotalAvgMS = ms(total.sumNS / float64(total.ok) / 1e6)
			p.TotalMinMS, p.TotalMaxMS = ms(float64(total.minNS)/1e6), ms(float64(total.maxNS)/1e6)
			p.TotalAvgBytes = round(float64(total.bytes)/float64(total.ok), 3)
		}
		out = append(out, p)
	}
	return out
}

// roundSig rounds to n significant digits: a p-value of 3.2e-12 stays
// 3.2e-12 where rounding to decimals would make it 0.
func roundSig(v float64, n int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	// Through the decimal text: scaling by 10^d overflows for the tiny
	// p-values of a large run (1e-320 × 1e323 is +Inf, and Inf/Inf NaN).
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', n, 64), 64)
	if err != nil {
		return v
	}
	return r
}
