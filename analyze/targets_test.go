package analyze

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// timeScaled is the run m would have given at time scale s against a
// service whose times scale with it: every offset from the run's start and
// every duration multiplied by s, and run.json saying so.
func timeScaled(t *testing.T, m model, seed uint64, s float64) (*RunInfo, []captures.Result) {
	t.Helper()
	info, rows, _ := simulate(m, seed)
	t0, err := parseTime(info.Started)
	if err != nil {
		t.Fatal(err)
	}
	at := func(ns int64) int64 { return t0.UnixNano() + int64(float64(ns-t0.UnixNano())*s) }
	dur := func(ns int64) int64 { return int64(float64(ns) * s) }
	for i := range info.Stages {
		st := &info.Stages[i]
		for _, f := range []*string{&st.Start, &st.End} {
			tt, err := parseTime(*f)
			if err != nil {
				t.Fatal(err)
			}
			*f = time.Unix(0, at(tt.UnixNano())).UTC().Format(time.RFC3339Nano)
		}
	}
	for i := range rows {
		r := &rows[i]
		r.StartNS, r.DurationNS, r.TTFBNS, r.TTFTNS = at(r.StartNS), dur(r.DurationNS), dur(r.TTFBNS), dur(r.TTFTNS)
		for j := range r.ChunkOffsetsNS {
			r.ChunkOffsetsNS[j] = dur(r.ChunkOffsetsNS[j])
		}
	}
	info.TimeScale = s
	return info, rows
}

// The same targets judge a run at time scale 1 and the same run compressed
// to 0.1 alike: latency bounds are multiplied by the scale and rate bounds
// divided by it, for every run (not only the demo's).
func TestTargetsScaleWithTime(t *testing.T) {
	t.Parallel()
	m := pool // latency grows with load, so bounds can sit on either side
	full, fullRows := timeScaled(t, m, 7, 1)
	fast, fastRows := timeScaled(t, m, 7, 0.1)
	base, err := Summarize(full, fullRows, nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Bounds around what the full-length run measured: pass, acceptable
	// and fail for a latency and a throughput.
	var p95, rps float64
	var top int
	for _, st := range base.Stages {
		all := st.Operations[AllOps]
		p95 = math.Max(p95, all.LatencyMS.P95)
		if st.Users > top {
			top, rps = st.Users, all.RPS
		}
	}
	ms := func(f float64) runspec.Limit {
		return runspec.Limit(time.Duration(f * float64(time.Millisecond)).String())
	}
	num := func(f float64) runspec.Limit { return runspec.Limit(strconv.FormatFloat(f, 'f', 3, 64)) }
	specs := []TargetSpec{
		{Scenario: m.Name, Metric: "p95", Max: ms(1.2 * p95)},
		{Scenario: m.Name, Metric: "p95", Max: ms(0.9 * p95)},
		{Scenario: m.Name, Metric: "p95", Max: ms(0.5 * p95)},
		{Scenario: m.Name, Metric: "rps", Users: top, Min: num(0.8 * rps)},
		{Scenario: m.Name, Metric: "rps", Users: top, Min: num(1.1 * rps)},
		{Scenario: m.Name, Metric: "rps", Users: top, Min: num(2 * rps)},
		{Scenario: m.Name, Metric: "error_rate", Max: "1%"},
		{Scenario: m.Name, Metric: "count", ErrorKind: m.ErrKind, Max: "0"},
	}
	a, err := Summarize(full, fullRows, nil, specs, 0.8, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Summarize(fast, fastRows, nil, specs, 0.8, nil)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[Verdict]int{}
	for i := range specs {
		ta, tb := a.Targets[i], b.Targets[i]
		verdicts[ta.Verdict]++
		if ta.Verdict != tb.Verdict {
			t.Errorf("%s: verdict %s at scale 1 (value %v, bound %v), %s at 0.1 (value %v, bound %v)",
				ta.Name(), ta.Verdict, deref(ta.Value), ta.Bound, tb.Verdict, deref(tb.Value), tb.Bound)
		}
		if ta.TimeScale != 0 {
			t.Errorf("%s: time_scale %v at scale 1, want it left out", ta.Name(), ta.TimeScale)
		}
		wantScale := 0.1
		if ta.Unit == "%" || ta.Unit == "requests" {
			wantScale = 0
		}
		if tb.TimeScale != wantScale {
			t.Errorf("%s: time_scale %v at 0.1, want %v", tb.Name(), tb.TimeScale, wantScale)
		}
	}
	if verdicts[Pass] == 0 || verdicts[Acceptable] == 0 || verdicts[Fail] == 0 {
		t.Errorf("verdicts %v: the bounds should give each verdict at least once", verdicts)
	}
}

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
