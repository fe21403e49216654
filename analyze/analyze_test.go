package analyze

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// writeRun writes a run directory as the replayer does: run.json beside
// rolled result and sample files.
func writeRun(t testing.TB, dir string, info *RunInfo, rows []captures.Result, samples []captures.Sample) {
	t.Helper()
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rw, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir, MaxRows: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Write(rows...); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if len(samples) > 0 {
		sw, err := captures.NewWriter[captures.Sample](captures.WriterOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Write(samples...); err != nil {
			t.Fatal(err)
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Reading the files gives what the rows in memory give.
func TestAnalyzeRunDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	info, rows, samples := simulate(gpuBound, 5)
	info.Profile.Targets = []TargetSpec{{Scenario: "gateway", Metric: "p95", Max: "150ms"}}
	writeRun(t, dir, info, rows, samples)
	got, err := Analyze(Options{Runs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Summarize(info, rows, samples, info.Profile.Targets, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("summary from files differs from the one from memory:\n got %s\nwant %s", gj, wj)
	}
	if k := kinds(got.Findings); !slices.Equal(k, []string{"gpu_saturation/gateway"}) {
		t.Errorf("findings %v", k)
	}
	if len(got.Targets) != 1 || got.Targets[0].Verdict != Fail {
		t.Errorf("p95 < 150ms at 64 users on an 8-slot server: want fail, got %+v", got.Targets)
	}
}

// Percentiles and the other statistics against a brute-force reference.
func TestStatisticsAgainstBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 2, 3, 10, 99, 100, 101, 1000, 4567} {
		vals := make([]int64, n)
		for i := range vals {
			vals[i] = int64(rng.ExpFloat64()*1e7) + int64(rng.IntN(3))*1e6 // ties too
		}
		sorted := slices.Clone(vals)
		l := latencyOf(sorted)
		for _, p := range []float64{0.5, 0.9, 0.95, 0.99} {
			// Reference: the smallest value v with at least p·n values ≤ v.
			var ref int64 = math.MaxInt64
			for _, v := range vals {
				le := 0
				for _, w := range vals {
					if w <= v {
						le++
					}
				}
				if float64(le) >= p*float64(n)-1e-9 && v < ref {
					ref = v
				}
			}
			got := map[float64]float64{0.5: l.P50, 0.9: l.P90, 0.95: l.P95, 0.99: l.P99}[p]
			if got != float64(ref)/1e6 {
				t.Errorf("n=%d p=%g: got %v ms, want %v ms", n, p, got, float64(ref)/1e6)
			}
		}
		var sum float64
		for _, v := range vals {
			sum += float64(v)
		}
		if math.Abs(l.Avg-sum/float64(n)/1e6) > 1e-9 || l.Min != float64(slices.Min(vals))/1e6 || l.Max != float64(slices.Max(vals))/1e6 {
			t.Errorf("n=%d: avg/min/max %v", n, l)
		}
	}
}

// Counts, RPS and error rates of a stage against the rows themselves.
func TestStageCountsAgainstRows(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(pool, 11)
	s, err := Summarize(info, rows, nil, nil, 0, &WarmUp{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Stages {
		var count, errs, cut int64
		for _, r := range rows {
			if r.Scenario != st.Scenario || int(r.Stage) != st.Stage {
				continue
			}
			switch r.ErrorKind {
			case runspec.ErrCutOff:
				cut++
			case "":
				count++
			default:
				count++
				errs++
			}
		}
		all := st.Operations[AllOps]
		if all.Count != count || all.CutOff != cut || math.Abs(all.ErrorRate-float64(errs)/float64(count)) > 1e-12 {
			t.Errorf("stage %d: count %d cut %d rate %v, want %d %d %v", st.Stage, all.Count, all.CutOff, all.ErrorRate, count, cut, float64(errs)/float64(count))
		}
		if want := float64(count) / 20; math.Abs(all.RPS-want) > 1e-9 {
			t.Errorf("stage %d: rps %v, want %v", st.Stage, all.RPS, want)
		}
	}
}

func TestWarmUpIsTrimmed(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(healthy, 2)
	s, err := Summarize(info, rows, nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stages[0]
	if st.WarmUpS != 2 || st.WindowS != 18 {
		t.Errorf("20 s stage: warm-up %v s, window %v s; want min(10 s, 10 %%) = 2 s and 18 s", st.WarmUpS, st.WindowS)
	}
	start, _ := parseTime(st.Start)
	var n int64
	for _, r := range rows {
		if r.Stage == 1 && r.ErrorKind == "" && r.StartNS >= start.UnixNano()+2e9 {
			n++
		}
	}
	if got := int64(len(st.Operations[AllOps].Durations)); got != n {
		t.Errorf("successes after warm-up %d, want %d", got, n)
	}
}

func TestTargetsVerdicts(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(serialized, 4)
	specs := []TargetSpec{
		{Scenario: "mcp", Metric: "p95", Max: "5s"},                                  // pass
		{Scenario: "mcp", Metric: "p95", Max: "600ms"},                               // worst stage ~800 ms: acceptable up to 750? no: fail
		{Scenario: "mcp", Metric: "avg", Users: 1, Max: "60ms"},                      // one user: ~50 ms
		{Scenario: "mcp", Metric: "rps", Users: 20, Min: "30"},                       // ~20/s: acceptable down to 24? fail
		{Scenario: "mcp", Metric: "rps", Users: 20, Min: "22"},                       // acceptable (≥ 17.6)
		{Scenario: "mcp", Metric: "count", ErrorKind: "sandbox_violation", Max: "0"}, // pass
		{Scenario: "mcp", Metric: "error_rate", Max: "1%"},                           // pass
		{Scenario: "mcp", Metric: "p95", Users: 999, Max: "1s"},                      // no stage at 999 users: fail
		{Scenario: "nope", Metric: "p95", Max: "1s"},                                 // in the profile, not run: left out
		{Scenario: "typo", Metric: "p95", Max: "1s"},                                 // in no profile: fail
	}
	info.Profile.Scenarios["nope"] = ScenarioInfo{Service: "nope"}
	s, err := Summarize(info, rows, nil, specs, 0.8, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Verdict{Pass, Fail, Pass, Fail, Acceptable, Pass, Pass, Fail, Fail}
	if len(s.Targets) != len(want) || !slices.Equal(s.Run.TargetsLeftOut, []string{"nope p95"}) {
		t.Fatalf("%d targets evaluated, left out %q; want %d and [nope p95]", len(s.Targets), s.Run.TargetsLeftOut, len(want))
	}
	for i, tr := range s.Targets {
		if tr.Verdict != want[i] {
			v := "<nil>"
			if tr.Value != nil {
				v = strings.TrimSpace(strings.Repeat(" ", 0) + jsonNum(*tr.Value))
			}
			t.Errorf("%s: verdict %s (value %s, bound %v, acceptable %v), want %s", tr.Name(), tr.Verdict, v, tr.Bound, tr.Acceptable, want[i])
		}
	}
	if s.Targets[0].Unit != "ms" || s.Targets[0].Bound != 5000 || s.Targets[0].Acceptable != 6250 {
		t.Errorf("p95 < 5s: want bound 5000 ms acceptable 6250, got %+v", s.Targets[0])
	}
}

func jsonNum(v float64) string { b, _ := json.Marshal(v); return string(b) }

// Bad input: exit code 2 in the command, ErrBadInput here, with a message
// naming the file.
func TestBadInput(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(healthy, 1)
	good := func(t *testing.T) string {
		dir := t.TempDir()
		writeRun(t, dir, info, rows[:200], nil)
		return dir
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) Options
		want  string
	}{
		{"no run.json", func(t *testing.T) Options { return Options{Runs: []string{t.TempDir()}} }, "run.json"},
		{"no result files", func(t *testing.T) Options {
			dir := t.TempDir()
			b, _ := json.Marshal(info)
			os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
			return Options{Runs: []string{dir}}
		}, "no result files"},
		{"a results file from a newer schema", func(t *testing.T) Options {
			dir := good(t)
			writeNewerSchema(t, filepath.Join(dir, "results-newer.parquet"))
			return Options{Runs: []string{dir}}
		}, "newer"},
		{"run.json of another run", func(t *testing.T) Options {
			dir := good(t)
			other := *info
			other.ID = "another"
			b, _ := json.Marshal(other)
			os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
			return Options{Runs: []string{dir}}
		}, "does not match"},
		{"run.json without the results' stage", func(t *testing.T) Options {
			dir := good(t)
			other := *info
			other.Stages = other.Stages[1:]
			b, _ := json.Marshal(other)
			os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
			return Options{Runs: []string{dir}}
		}, "does not match"},
		{"unknown target metric", func(t *testing.T) Options {
			dir := good(t)
			tf := filepath.Join(t.TempDir(), "targets.yaml")
			os.WriteFile(tf, []byte("acceptance: 0.8\ntargets:\n  - {scenario: gateway, metric: p95, max: 2s}\n  - scenario: gateway\n    metric: p96\n    max: 2s\n"), 0o644)
			return Options{Runs: []string{dir}, Targets: tf}
		}, "targets.yaml:5:5: unknown target metric \"p96\""},
		{"unknown metric in the profile", func(t *testing.T) Options {
			dir := t.TempDir()
			other := *info
			other.Profile.Targets = []TargetSpec{{Scenario: "gateway", Metric: "latency", Max: "2s"}}
			writeRun(t, dir, &other, rows[:100], nil)
			return Options{Runs: []string{dir}}
		}, "run.json: profile.targets[0]: unknown target metric"},
		{"a misspelt target key", func(t *testing.T) Options {
			dir := good(t)
			tf := filepath.Join(t.TempDir(), "targets.yaml")
			os.WriteFile(tf, []byte("targets:\n  - {scenario: gateway, metric: p95, op: health, max: 2s}\n"), 0o644)
			return Options{Runs: []string{dir}, Targets: tf}
		}, `targets.yaml:2:38: unknown field "op"`},
		{"a bad bound", func(t *testing.T) Options {
			dir := good(t)
			tf := filepath.Join(t.TempDir(), "targets.yaml")
			os.WriteFile(tf, []byte("targets:\n  - {scenario: gateway, metric: p95, max: fast}\n"), 0o644)
			return Options{Runs: []string{dir}, Targets: tf}
		}, "duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Analyze(tc.setup(t))
			if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (bad input: %v), want a bad-input error containing %q", err, errors.Is(err, ErrBadInput), tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("want one line, got %q", err)
			}
		})
	}
}

func writeNewerSchema(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(captures.Schema[captures.Result](), f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	w.AppendKeyValueMetadata(captures.MetaSchema, "99")
	w.AppendKeyValueMetadata(captures.MetaKind, string(captures.KindResults))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Compare: the same model twice is no significant change; a server twice
// as slow is slower, and the findings that appear are listed.
func TestCompare(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	info, rows, _ := simulate(healthy, 1)
	writeRun(t, base, info, rows, nil)
	same := t.TempDir()
	info2, rows2, _ := simulate(healthy, 2)
	writeRun(t, same, info2, rows2, nil)
	slow := t.TempDir()
	sm := serialized
	sm.Name = "gateway"
	info3, rows3, _ := simulate(sm, 3)
	info3.ID = "run-gateway"
	for i := range rows3 {
		rows3[i].Run = info3.ID
	}
	writeRun(t, slow, info3, rows3, nil)

	s, err := Compare(Options{Runs: []string{base}}, Options{Runs: []string{same}})
	if err != nil {
		t.Fatal(err)
	}
	for _, oc := range s.Comparison.Operations {
		if oc.Verdict != "no significant change" {
			t.Errorf("same model, stage %d %s: %s (p=%v, p50 %+v)", oc.Stage, oc.Operation, oc.Verdict, oc.LatencyP, oc.P50)
		}
	}
	s, err = Compare(Options{Runs: []string{base}}, Options{Runs: []string{slow}})
	if err != nil {
		t.Fatal(err)
	}
	last := s.Comparison.Operations[len(s.Comparison.Operations)-1]
	if last.Verdict != "slower" || last.LatencyP > 1e-6 {
		t.Errorf("serialized at 20 users against a wide server: %+v", last)
	}
	if k := kinds(s.Comparison.Appeared); !slices.Equal(k, []string{"serialization/gateway"}) {
		t.Errorf("appeared %v, want serialization", k)
	}
}

func TestMannWhitneyAgainstBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	a := make([]int64, 40)
	b := make([]int64, 55)
	for i := range a {
		a[i] = int64(rng.IntN(20))
	}
	for i := range b {
		b[i] = int64(rng.IntN(20)) + 8
	}
	slices.Sort(a)
	slices.Sort(b)
	var u float64 // pairs where a > b, ties count half
	for _, x := range a {
		for _, y := range b {
			switch {
			case x > y:
				u++
			case x == y:
				u += 0.5
			}
		}
	}
	p, got, mean := MannWhitney(a, b)
	if got != u || mean != 40*55/2 {
		t.Errorf("U = %v, want %v (mean %v)", got, u, mean)
	}
	if p <= 0 || p >= 0.05 {
		t.Errorf("b shifted by 8 of 20: p = %v, want < 0.05", p)
	}
}

// An interrupted run's last stage has no end in run.json: its window ends
// at its last request, and the report says so.
func TestInterruptedStageWithoutEnd(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(healthy, 3)
	last := len(info.Stages) - 1
	info.Stages[last].End = ""
	info.Interrupted = true
	s, err := Summarize(info, rows, nil, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stages[last]
	if st.End == "" || len(st.Notes) == 0 || st.WindowS < 19 || st.WindowS > 20.01 {
		t.Errorf("stage without end: end %q window %v notes %v", st.End, st.WindowS, st.Notes)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Errorf("summary.json: %v", err)
	}
}

func TestRadixSortAgainstSlicesSort(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{0, 5, 4095, 4096, 10000, 100003} {
		for _, gen := range []func() int64{
			func() int64 { return rng.Int64N(1 << 40) },
			func() int64 { return 5e6 + rng.Int64N(1000) }, // digits shared by all
			func() int64 { return rng.Int64() },
		} {
			v := make([]int64, n)
			for i := range v {
				v[i] = gen()
			}
			if n > 10 {
				v[3] = -v[3] // a negative value falls back to slices.Sort
			}
			want := slices.Clone(v)
			slices.Sort(want)
			sortInt64(v)
			if !slices.Equal(v, want) {
				t.Fatalf("n=%d: radix sort differs from slices.Sort", n)
			}
			v = slices.DeleteFunc(v, func(x int64) bool { return x < 0 })
			want = slices.Clone(v)
			slices.Sort(want)
			rng.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
			sortInt64(v)
			if !slices.Equal(v, want) {
				t.Fatalf("n=%d: radix sort differs from slices.Sort", n)
			}
		}
	}
}
