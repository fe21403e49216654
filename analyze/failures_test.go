package analyze

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/loadtape/loadtape/captures"

	"github.com/loadtape/loadtape/runspec"
)

func TestNormaliseMessage(t *testing.T) {
	t.Parallel()
	cases := []struct{ a, b string }{
		{"timed out after 30.2s", "timed out after 31.07s"},
		{"HTTP 500: CUDA out of memory. Tried to allocate 64.00 MiB", "HTTP 500: CUDA out of memory. Tried to allocate 128.50 MiB"},
		{`HTTP 404: {"error":"no session 3f2c9a1e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"}`, `HTTP 404: {"error":"no session 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}`},
		{"request req_8f3a91c2d4 failed", "request req_1b2c3d4e5f failed"},
		{"trace 0xdeadbeef01 at offset 123456", "trace 0xfeedface02 at offset 654321"},
	}
	for _, tc := range cases {
		if na, nb := normaliseMessage(tc.a), normaliseMessage(tc.b); na != nb {
			t.Errorf("%q and %q normalise to %q and %q, want one message", tc.a, tc.b, na, nb)
		}
	}
	// What tells failures apart stays apart.
	for _, pair := range [][2]string{{"HTTP 404: not found", "HTTP 503: not found"}, {"connection refused", "connection reset"}} {
		if normaliseMessage(pair[0]) == normaliseMessage(pair[1]) {
			t.Errorf("%q and %q normalise to one message", pair[0], pair[1])
		}
	}
}

// Failures by message against the rows themselves: counts, shares, first
// and last seen, an example; varying numbers in the text make one group.
func TestFailuresByMessage(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(pool, 11)
	type key struct{ scenario, op, kind string }
	want := map[key]int64{}
	requests := map[[2]string]int64{}
	first, last := map[key]int64{}, map[key]int64{}
	for i := range rows {
		r := &rows[i]
		if r.ErrorKind == runspec.ErrCutOff {
			continue
		}
		requests[[2]string{r.Scenario, r.Operation}]++
		if r.ErrorKind == "" {
			continue
		}
		r.Error = fmt.Sprintf("HTTP 504: pool timed out after %.2f s", 1+float64(i%97)/100)
		k := key{r.Scenario, r.Operation, r.ErrorKind}
		want[k]++
		if first[k] == 0 || r.StartNS < first[k] {
			first[k] = r.StartNS
		}
		last[k] = max(last[k], r.StartNS)
	}
	if len(want) == 0 {
		t.Fatal("the pool model made no errors")
	}
	s, err := Summarize(info, rows, nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Failures) != len(want) {
		t.Fatalf("%d failure groups, want %d (one per kind: the messages differ only in numbers): %+v", len(s.Failures), len(want), s.Failures)
	}
	for i, f := range s.Failures {
		k := key{f.Scenario, f.Operation, f.ErrorKind}
		if f.Count != want[k] {
			t.Errorf("%v: count %d, want %d", k, f.Count, want[k])
		}
		if share := float64(want[k]) / float64(requests[[2]string{k.scenario, k.op}]); math.Abs(f.Share-share) > 1e-6 {
			t.Errorf("%v: share %v, want %v", k, f.Share, share)
		}
		if f.Message != "HTTP 504: pool timed out after <n> s" {
			t.Errorf("%v: message %q", k, f.Message)
		}
		if f.Example == "" || f.Example == f.Message {
			t.Errorf("%v: example %q, want a message as it came", k, f.Example)
		}
		if f.FirstS > f.LastS || f.First == "" {
			t.Errorf("%v: first %v s after last %v s", k, f.FirstS, f.LastS)
		}
		if i > 0 && f.Count > s.Failures[i-1].Count {
			t.Error("failures not sorted by count")
		}
	}
}

// The per-second series add up to the rows, per scenario and for all.
func TestSeriesAgainstRows(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(pool, 12)
	s, err := Summarize(info, rows, nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	perSec := map[string]map[int64]int64{}
	var n int64
	for _, r := range rows {
		if r.ErrorKind == runspec.ErrCutOff {
			continue
		}
		n++
		if perSec[r.Scenario] == nil {
			perSec[r.Scenario] = map[int64]int64{}
		}
		ts := r.StartNS
		if ts == 0 {
			ts = r.IntendedNS
		}
		perSec[r.Scenario][(ts-s.Series.seriesStart(t))/1e9]++
	}
	all := s.Series.Series[AllOps]
	if len(all) == 0 {
		t.Fatal("no series for all scenarios")
	}
	if got := all[len(all)-1].TotalRequests; got != n {
		t.Errorf("all: total requests %d, want %d rows", got, n)
	}
	for name, secs := range perSec {
		for _, p := range s.Series.Series[name] {
			if p.Requests != secs[int64(p.T)] {
				t.Errorf("%s second %v: %d requests, want %d", name, p.T, p.Requests, secs[int64(p.T)])
			}
			if p.Requests == p.Failures {
				continue
			}
			last := 0.0
			for _, q := range SeriesPercentiles {
				if v := p.Percentiles[q]; v < last || v <= 0 {
					t.Errorf("%s second %v: percentile %v is %v after %v: want positive and rising to the maximum", name, p.T, q, v, last)
				} else {
					last = v
				}
			}
		}
	}
}

func (rs *RunSeries) seriesStart(t *testing.T) int64 {
	t.Helper()
	ts, err := parseTime(rs.Start)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixNano()
}

func TestRoundSig(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]float64{{3.2449e-12, 3.24e-12}, {0.0123456, 0.0123}, {1, 1}, {0, 0}, {123456, 123000}, {1e-320, 1e-320}, {5e-324, 5e-324}, {math.SmallestNonzeroFloat64 * 3, 1.5e-323}} {
		if got := roundSig(c[0], 3); math.IsNaN(got) || math.Abs(got-c[1]) > 1e-9*math.Abs(c[1]) {
			t.Errorf("roundSig(%v, 3) = %v, want %v", c[0], got, c[1])
		}
	}
}

// Read from several result files by several collectors and merged, the
// failures and the series are those of the rows in memory.
func TestFailuresAndSeriesFromFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	info, rows, _ := simulate(pool, 13)
	for i := range rows {
		if rows[i].ErrorKind != "" {
			rows[i].Error = fmt.Sprintf("pool timeout %d: no connection within %d ms", i%3, 3000+i%7)
		}
	}
	third := len(rows) / 3
	writeRun(t, dir, info, rows[:third], nil)
	for _, part := range [][]captures.Result{rows[third : 2*third], rows[2*third:]} {
		w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(part...); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	files, err := resultFiles([]string{dir})
	if err != nil || len(files) < 2 {
		t.Fatalf("%d result files (%v), want several so that collectors merge", len(files), err)
	}
	got, err := Analyze(Options{Runs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Summarize(info, rows, nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Failures) != 3*countKinds(want) {
		t.Errorf("%d failure groups, want 3 messages per kind (the ms vary, the digit before the colon does not)", len(want.Failures))
	}
	for name, pair := range map[string][2]any{"failures": {got.Failures, want.Failures}, "series": {got.Series, want.Series}} {
		gj, _ := json.Marshal(pair[0])
		wj, _ := json.Marshal(pair[1])
		if string(gj) != string(wj) {
			t.Errorf("%s from %d files differ from the rows in memory:\n got %.400s\nwant %.400s", name, len(files), gj, wj)
		}
	}
}

func countKinds(s *Summary) int {
	kinds := map[[3]string]bool{}
	for _, f := range s.Failures {
		kinds[[3]string{f.Scenario, f.Operation, f.ErrorKind}] = true
	}
	return len(kinds)
}
