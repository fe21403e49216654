package analyze

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A leak shows as latency, or errors, that grow with time inside a stage
// at constant load; a stationary stage with noise, whatever the seed and
// the queueing, raises nothing.
func TestDegradationOverTime(t *testing.T) {
	t.Parallel()
	long := func(m model) model { // one long stress stage after a short ramp
		m.Users = []int{1, 5, 10}
		m.StageLen = 60 * time.Second
		return m
	}
	leak := long(healthy)
	leak.Drift = func(since time.Duration, users int) (float64, float64) {
		if users < 10 {
			return 1, 0
		}
		return 1 + since.Minutes()*1.5, 0 // 2.5× slower by the stage's end
	}
	failing := long(healthy)
	failing.Drift = func(since time.Duration, users int) (float64, float64) {
		if users < 10 {
			return 1, 0
		}
		return 1, 0.2 * since.Minutes() // 0 → 20 % errors over the minute
	}
	slight := long(healthy) // 5 % slower by the end: real, but not worth a finding
	slight.Drift = func(since time.Duration, _ int) (float64, float64) { return 1 + 0.05*since.Minutes(), 0 }
	noisy := long(healthy) // heavy-tailed noise, no trend
	noisy.Service = func(r *rand.Rand, _, _ int) time.Duration {
		return time.Duration(float64(40*time.Millisecond) * math.Exp(r.NormFloat64()))
	}
	for _, tc := range []struct {
		name   string
		m      model
		metric string // "" for no finding
	}{
		{"latency growing 150 % per minute", leak, "mean_latency_ms"},
		{"errors growing to 20 %", failing, "error_rate_pct"},
		{"a 5 % drift", slight, ""},
		{"stationary, lognormal noise", noisy, ""},
		{"stationary wide server", long(healthy), ""},
		{"stationary single worker (queueing)", long(serialized), ""},
		{"stationary GPU batch server", long(gpuBound), ""},
		{"stationary pool with timeouts", long(pool), ""},
	} {
		for seed := uint64(1); seed <= 4; seed++ {
			info, rows, samples := simulate(tc.m, seed)
			s, err := Summarize(info, rows, samples, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got *Finding
			for i, f := range s.Findings {
				if f.Kind == KindDegradation {
					got = &s.Findings[i]
				}
			}
			if (got != nil) != (tc.metric != "") {
				t.Errorf("%s seed %d: degradation %v, want %v\n%s", tc.name, seed, got != nil, tc.metric != "", describe(s))
				continue
			}
			if got == nil {
				continue
			}
			ev := got.Evidence.(*DegradationEvidence)
			if p, ok := got.EvidenceMap()["p_value"].(pValue); !ok || p <= 0 {
				t.Errorf("%s seed %d: p_value %v in summary.json, want the p-value, not rounded to 0", tc.name, seed, got.EvidenceMap()["p_value"])
			}
			if ev.Metric != tc.metric || ev.Users != 10 || !slices.Equal(ev.StagesAffected, []int{10}) || ev.SlopePerMinute <= 0 || ev.PValue >= degradeP {
				t.Errorf("%s seed %d: evidence %+v, want %s rising in the 10-user stage only", tc.name, seed, ev, tc.metric)
			}
		}
	}
}

// The test statistic against cases worked by hand.
func TestMannKendall(t *testing.T) {
	t.Parallel()
	// 1..10 rising: S = 45, Var = 10·9·25/18 = 125, Z = 44/√125.
	up := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if z, p := mannKendall(up); math.Abs(z-44/math.Sqrt(125)) > 1e-12 || p > 1e-4 {
		t.Errorf("rising: z %v p %v, want z %v", z, p, 44/math.Sqrt(125))
	}
	if _, p := mannKendall([]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}); p < 0.99 {
		t.Errorf("falling: p %v, want near 1 (one-sided for a rise)", p)
	}
	// All tied: no information, no trend.
	if z, p := mannKendall([]float64{0, 0, 0, 0, 0}); z != 0 || p != 1 {
		t.Errorf("all tied: z %v p %v, want 0 and 1", z, p)
	}
	if got := theilSen([]float64{0, 1, 2, 3, 4}, []float64{0, 2, 4, 100, 8}); got != 2 {
		t.Errorf("Theil-Sen slope %v, want 2 whatever the outlier", got)
	}
}

// A rise that levels off while the next stage holds the same load is a
// stage settling, not degradation; a rise that goes on through the next
// stage is.
func TestDegradationSettlingIsNot(t *testing.T) {
	t.Parallel()
	// Drift's since restarts at each stage: count the 10-user stages by it.
	twoStages := func(first, second func(since time.Duration) float64) model {
		m := healthy
		m.Users = []int{1, 5, 10, 10}
		m.StageLen = 60 * time.Second
		stage, last := 0, time.Duration(-1)
		m.Drift = func(since time.Duration, users int) (float64, float64) {
			if users < 10 {
				return 1, 0
			}
			if since < last || last < 0 {
				stage++
			}
			last = since
			if stage == 1 {
				return first(since), 0
			}
			return second(since), 0
		}
		return m
	}
	settling := func() model {
		return twoStages(func(s time.Duration) float64 { return 1 + 1.5*min(s.Seconds(), 40)/60 }, func(time.Duration) float64 { return 2 })
	}
	leaking := func() model {
		return twoStages(func(s time.Duration) float64 { return 1 + 1.5*s.Minutes() }, func(s time.Duration) float64 { return 2.5 + 1.5*s.Minutes() })
	}
	for _, tc := range []struct {
		name  string
		model func() model // a fresh one per run: its Drift counts stages
		want  []int        // users of the stages named, nil for no finding
	}{
		{"settles, then holds", settling, nil},
		{"goes on rising", leaking, []int{10, 10}},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			m := tc.model()
			info, rows, samples := simulate(m, seed)
			s, err := Summarize(info, rows, samples, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, f := range s.Findings {
				if f.Kind == KindDegradation {
					got = f.Evidence.(*DegradationEvidence).StagesAffected
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s seed %d: degradation in stages of %v users, want %v\n%s", tc.name, seed, got, tc.want, describe(s))
			}
		}
	}
}

// A stationary series whose neighbours move together, as a queue near
// saturation makes them, is not a trend: with the serial correction an
// AR(1) series of 30 slices at φ = 0.8 passes p < 0.001 in under 5 % of
// seeds (the plain test: about 10 %), and a real rise of 3 standard
// deviations over the 30 slices is still found in most of them.
func TestMannKendallSerialCorrelation(t *testing.T) {
	t.Parallel()
	const runs = 1000
	r := rand.New(rand.NewPCG(7, 7))
	called, found := 0, 0
	for range runs {
		y, trend := make([]float64, 30), make([]float64, 30)
		x := 0.0
		for i := range y {
			x = 0.8*x + r.NormFloat64()
			y[i] = x
			trend[i] = 0.1*float64(i) + r.NormFloat64()
		}
		if _, p := mannKendall(y); p < degradeP {
			called++
		}
		if _, p := mannKendall(trend); p < degradeP {
			found++
		}
	}
	if called > runs/20 {
		t.Errorf("AR(1) at φ = 0.8: %d of %d stationary series called a trend, want under 5 %%", called, runs)
	}
	if found < runs*3/4 {
		t.Errorf("a rise of 3 σ over 30 slices found in %d of %d series, want at least 75 %%", found, runs)
	}
}
