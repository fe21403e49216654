package replay

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// EndedAbort is RunInfo.EndedBy when a target with abort: true failed over
// a whole stage window and ended the run.
const EndedAbort = "abort"

// abortError is the cause the run's context ends with when a target stops
// it; its text is run.json's end_reason.
type abortError struct{ msg string }

func (e *abortError) Error() string { return e.msg }

// judgeGrace is how long after a stage's end its rows are judged: the
// requests it cut off return at once, and the sink hands rows on every
// sinkFlushEvery.
const judgeGrace = 2*sinkFlushEvery + 100*time.Millisecond

// Each stage's first min(10 s, 10 %) is left out of its statistics, as
// analyze leaves it out by default: users are still arriving then.
const (
	liveWarmUpMax      = 10 * time.Second
	liveWarmUpFraction = 0.1
)

// liveRow is what live judging keeps of one result row.
type liveRow struct {
	t    int64 // sent (or meant to be, when never sent), unix ns
	op   string
	kind string
	dur  int64
	ttfb int64
	ttft int64
	tpot int64 // 0 when not a token stream of two tokens or more
	lag  int64 // -1 when not known
}

type liveKey struct {
	scenario string
	stage    int32
}

// liveJudge judges targets while the run goes on, from the rows the sink
// hands on, by the definitions analyze judges them with afterwards: the
// stage window after its warm-up, nearest-rank percentiles of the
// successful requests, error rates and rates over the window, counts
// over the whole stage, bounds scaled by the time scale and read with the
// profile's acceptance.
type liveJudge struct {
	targets    []runspec.Target
	scenarios  map[string]bool
	acceptance float64
	scale      float64
	shards     int

	mu   sync.Mutex
	rows map[liveKey][]liveRow
}

// newLiveJudge judges the profile's targets that pick accepts; nil when
// it accepts none.
func newLiveJudge(p *Profile, scale float64, shards int, pick func(runspec.Target) bool) *liveJudge {
	j := &liveJudge{scenarios: map[string]bool{}, acceptance: p.Acceptance, scale: scale, shards: max(shards, 1), rows: map[liveKey][]liveRow{}}
	if j.acceptance <= 0 {
		j.acceptance = runspec.DefaultAcceptance
	}
	for _, t := range p.Targets {
		if pick(t) {
			j.targets = append(j.targets, t)
			j.scenarios[t.Scenario] = true
		}
	}
	for name, sc := range p.Scenarios {
		if sc.Search != nil {
			j.scenarios[name] = true
		}
	}
	if len(j.scenarios) == 0 {
		return nil
	}
	return j
}

// wrap hands every batch to the judge, then to next.
func (j *liveJudge) wrap(next func([]captures.Result)) func([]captures.Result) {
	if j == nil {
		return next
	}
	return func(rows []captures.Result) {
		j.observe(rows)
		next(rows)
	}
}

func (j *liveJudge) observe(rows []captures.Result) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range rows {
		r := &rows[i]
		if !j.scenarios[r.Scenario] {
			continue
		}
		lr := liveRow{t: r.StartNS, op: r.Operation, kind: r.ErrorKind, dur: r.DurationNS, ttfb: r.TTFBNS, ttft: r.TTFTNS, lag: -1}
		if lr.t == 0 {
			lr.t = r.IntendedNS
		}
		if r.ErrorKind != runspec.ErrDropped && r.StartNS > 0 && r.IntendedNS > 0 {
			lr.lag = max(0, r.StartNS-r.IntendedNS)
		}
		if n := len(r.ChunkOffsetsNS); n > 1 && r.CompletionTokens > 1 {
			first := r.ChunkOffsetsNS[0]
			if r.TTFTNS > 0 {
				first = r.TTFTNS
			}
			if last := r.ChunkOffsetsNS[n-1]; last > first {
				lr.tpot = (last - first) / (r.CompletionTokens - 1)
			}
		}
		k := liveKey{r.Scenario, r.Stage}
		j.rows[k] = append(j.rows[k], lr)
	}
}

// liveVerdict is one target judged over one stage.
type liveVerdict struct {
	Value      float64 // in the bound's unit
	Bound      float64 // scaled by the time scale (and ÷ shards for rates and counts)
	Acceptable float64
	Unit       string
	Max        bool
	Measured   bool // false: no row to judge (the verdict is not a failure)
	Failed     bool // beyond the acceptable band, as analyze's fail
}

// targetMatches reports whether t judges stage k of s.
func targetMatches(t runspec.Target, s *scenarioRun, k int) bool {
	return t.Scenario == s.name && (t.Users == 0 || s.stages[k].users == t.Users) && (t.Stage == 0 || t.Stage == k+1)
}

// judge judges t over stage k of s, which has ended.
func (j *liveJudge) judge(t runspec.Target, s *scenarioRun, k int) liveVerdict {
	b, _ := t.Bound() // checked when the profile was read
	b = b.Scaled(j.scale)
	if b.Unit == runspec.UnitPerSec || b.Unit == runspec.UnitPerMin || b.Unit == runspec.UnitRequests {
		b.Value /= float64(j.shards) // each shard sees its share of the load
	}
	v := liveVerdict{Bound: b.Value, Unit: b.Unit, Max: b.Max}
	if b.Max {
		v.Acceptable = b.Value / j.acceptance
	} else {
		v.Acceptable = b.Value * j.acceptance
	}
	op := t.Operation
	if op == "" {
		op = runspec.AllOps
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if t.Metric == "count" {
		// Counts add up over the stages judged so far, warm-up included.
		for i := 0; i <= k; i++ {
			if !targetMatches(t, s, i) {
				continue
			}
			for _, r := range j.rows[liveKey{s.name, int32(s.stages[i].idx + 1)}] {
				if (op == runspec.AllOps || r.op == op) && (t.ErrorKind == "" || r.kind == t.ErrorKind) {
					v.Value++
				}
			}
		}
		v.Measured = true
	} else {
		v.Value, v.Measured = j.metric(t, op, s, k)
	}
	if v.Measured {
		v.Failed = (b.Max && v.Value > v.Acceptable) || (!b.Max && v.Value < v.Acceptable)
	}
	return v
}

// metric reads t's metric from the measured window of stage k of s.
func (j *liveJudge) metric(t runspec.Target, op string, s *scenarioRun, k int) (float64, bool) {
	st := s.stages[k]
	length := st.end.Sub(st.start)
	ws := st.start.Add(max(0, min(time.Duration(float64(length)*liveWarmUpFraction), liveWarmUpMax))).UnixNano()
	we := st.end.UnixNano()
	var count, dropped, errs int64
	var vals []int64
	prefix, stat, phased := strings.Cut(t.Metric, "_")
	if !phased {
		stat = prefix
	} else if prefix == "send" {
		stat = strings.TrimPrefix(stat, "lag_")
	}
	for _, r := range j.rows[liveKey{s.name, int32(st.idx + 1)}] {
		if r.t < ws || r.t >= we || (op != runspec.AllOps && r.op != op) || r.kind == runspec.ErrCutOff {
			continue
		}
		count++
		switch {
		case r.kind == runspec.ErrDropped:
			dropped++
		case prefix == "send" && r.lag >= 0:
			vals = append(vals, r.lag)
		}
		if r.kind != "" {
			if t.ErrorKind == "" || r.kind == t.ErrorKind {
				errs++
			}
			continue
		}
		switch {
		case !phased:
			vals = append(vals, r.dur)
		case prefix == "ttfb" && r.ttfb > 0:
			vals = append(vals, r.ttfb)
		case prefix == "ttft" && r.ttft > 0:
			vals = append(vals, r.ttft)
		case prefix == "tpot" && r.tpot > 0:
			vals = append(vals, r.tpot)
		}
	}
	window := float64(we-ws) / 1e9
	switch t.Metric {
	case "error_rate":
		if count == 0 {
			return 0, false
		}
		return 100 * float64(errs) / float64(count), true
	case "rps", "rpm":
		if window <= 0 {
			return 0, false
		}
		rps := float64(count-dropped) / window
		if t.Metric == "rpm" {
			return rps * 60, true
		}
		return rps, true
	}
	if len(vals) == 0 {
		return 0, false
	}
	slices.Sort(vals)
	const ms = 1e6
	switch stat {
	case "min":
		return float64(vals[0]) / ms, true
	case "max":
		return float64(vals[len(vals)-1]) / ms, true
	case "avg":
		var sum float64
		for _, x := range vals {
			sum += float64(x)
		}
		return sum / float64(len(vals)) / ms, true
	}
	p, err := strconv.Atoi(strings.TrimPrefix(stat, "p"))
	if err != nil {
		return 0, false
	}
	return nearestRank(vals, float64(p)/100) / ms, true
}

// nearestRank is the exact nearest-rank percentile (R type 1) of sorted,
// the ⌈p·n⌉-th smallest value, as analyze reports percentiles.
func nearestRank(sorted []int64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	i := min(max(int(math.Ceil(p*float64(n)))-1, 0), n-1)
	return float64(sorted[i])
}

// text says the verdict in words: "100 % against max 5 % (acceptable up
// to 6.25 %)".
func (v liveVerdict) text() string {
	unit := " " + v.Unit
	if v.Unit == runspec.UnitPercent {
		unit = " %"
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) + unit }
	side, band := "max", "up to"
	if !v.Max {
		side, band = "min", "down to"
	}
	return fmt.Sprintf("%s against %s %s (acceptable %s %s)", f(v.Value), side, f(v.Bound), band, f(v.Acceptable))
}

// watchAbort judges every abort target at the end of each stage it
// judges and ends the run through stop with the first that failed. Its
// goroutines end with the run's context. It hands the judge to the
// capacity searches, which judge their stages themselves.
func (j *liveJudge) watchAbort(ctx context.Context, runs []*scenarioRun, stop context.CancelCauseFunc, logf func(string, ...any)) {
	if j == nil {
		return
	}
	// The run's last stage ends it anyway: judging it would only race the
	// natural end.
	var last time.Time
	for _, s := range runs {
		if s.search != nil {
			s.search.judge, s.search.logf = j, logf
			continue
		}
		if e := s.stages[len(s.stages)-1].end; e.After(last) {
			last = e
		}
	}
	for _, s := range runs {
		if !j.scenarios[s.name] || s.search != nil {
			continue
		}
		go func() {
			for k := range s.stages {
				if !s.stages[k].end.Before(last) || !j.stageEnded(ctx, &s.stages[k]) {
					return
				}
				for _, t := range j.targets {
					if !targetMatches(t, s, k) {
						continue
					}
					v := j.judge(t, s, k)
					if !v.Failed {
						continue
					}
					msg := fmt.Sprintf("target %s failed at stage %d of %s (%s): %s", t.Label(), k+1, s.name, stageLoad(s.stages[k]), v.text())
					logf("abort: %s", msg)
					stop(&abortError{msg: msg})
					return
				}
				j.forget(s, k)
			}
		}()
	}
}

// forget drops the rows of stage k of s once it is judged, unless a count
// target of the scenario still adds them up.
func (j *liveJudge) forget(s *scenarioRun, k int) {
	for _, t := range j.targets {
		if t.Scenario == s.name && t.Metric == "count" {
			return
		}
	}
	j.mu.Lock()
	delete(j.rows, liveKey{s.name, int32(s.stages[k].idx + 1)})
	j.mu.Unlock()
}

// stageEnded waits for the stage's end and judgeGrace after it; false
// when the run ended first.
func (j *liveJudge) stageEnded(ctx context.Context, st *stageWindow) bool {
	select {
	case <-ctx.Done():
		return false
	case <-st.ctx.Done():
	}
	t := time.NewTimer(judgeGrace)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stageLoad names a stage's load: "8 users" or "20/s".
func stageLoad(st stageWindow) string {
	if st.users == 0 && st.rate > 0 {
		return strconv.FormatFloat(st.rate, 'g', -1, 64) + "/s"
	}
	return strconv.Itoa(st.users) + " users"
}
