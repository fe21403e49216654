package replay

import (
	"context"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// ksUniform and ksExp are the Kolmogorov–Smirnov statistics of xs against
// uniform[lo,hi] and exponential(mean).
func ksStat(xs []float64, cdf func(float64) float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := float64(len(s))
	d := 0.0
	for i, x := range s {
		f := cdf(x)
		d = math.Max(d, math.Max(math.Abs(float64(i+1)/n-f), math.Abs(f-float64(i)/n)))
	}
	return d
}

// thinks recovers each user's pauses from its rows: the next intended send
// minus the previous request's end.
func thinks(rows []captures.Result, scenario string) []float64 {
	byVU := map[int32][]captures.Result{}
	for _, r := range rows {
		if r.Scenario == scenario {
			byVU[r.VU] = append(byVU[r.VU], r)
		}
	}
	var out []float64
	for _, rs := range byVU {
		sort.Slice(rs, func(i, j int) bool { return rs[i].StartNS < rs[j].StartNS })
		for i := 1; i < len(rs); i++ {
			if rs[i].Stage != rs[i-1].Stage || rs[i-1].ErrorKind != "" {
				continue // a stage boundary or a cut-off request has no clean pause
			}
			out = append(out, float64(rs[i].IntendedNS-(rs[i-1].StartNS+rs[i-1].DurationNS))/1e6)
		}
	}
	return out
}

func TestClosedModeFidelity(t *testing.T) {
	// Not parallel: timing-sensitive load on a 2-core machine.
	up := newUpstream(t, 0)
	prof := mustProfile(t, `
scenarios:
  uni:
    service: gateway
    stages:
      - {users: 10, duration: 1500ms}
      - {users: 40, duration: 2s}
      - {users: 5, duration: 700ms}
    spawn_rate: 200
    think: {uniform: [2ms, 10ms]}
    mix: {chat.completions: 70, models.list: 20, health: 10}
  exp:
    service: gateway
    stages: [{users: 30, duration: 4s}]
    think: {exponential: 6ms}
    mix: {chat.completions: 50, models.list: 50}
`)
	_, rows := runAndRead(t, context.Background(), Options{
		Exchanges: gatewayCapture(6, 9), Profile: prof, Targets: map[string]string{"gateway": up.URL},
		Out: t.TempDir(), Seed: 7,
	})
	{
		per := map[string]int{}
		var dur, lag int64
		for _, r := range rows {
			per[r.Scenario]++
			dur += r.DurationNS
			lag += r.StartNS - r.IntendedNS
		}
		t.Logf("per scenario %v mean dur %v mean lag %v", per, time.Duration(dur/int64(len(rows))), time.Duration(lag/int64(len(rows))))
	}
	if len(rows) < 2000 {
		t.Fatalf("%d results, want at least 2000", len(rows))
	}
	count := map[string]map[string]int{}
	total := map[string]int{}
	for _, r := range rows {
		if r.ErrorKind != "" && r.ErrorKind != runspec.ErrCutOff {
			t.Fatalf("unexpected failure: %+v", r)
		}
		if count[r.Scenario] == nil {
			count[r.Scenario] = map[string]int{}
		}
		count[r.Scenario][r.Operation]++
		total[r.Scenario]++
	}
	for name, mix := range map[string]map[string]float64{
		"uni": {"chat.completions": 70, "models.list": 20, "health": 10},
		"exp": {"chat.completions": 50, "models.list": 50},
	} {
		for op, w := range mix {
			// ±2 points, or 3 standard errors where a busy machine sent
			// too few requests for 2 points to be more than noise.
			got := 100 * float64(count[name][op]) / float64(total[name])
			tol := shareTolerance(w, total[name], 2)
			if math.Abs(got-w) > tol {
				t.Errorf("%s: %s share %.2f%%, want %v%% ± %.1f pp (n=%d)", name, op, got, w, tol, total[name])
			}
		}
	}
	// Think times follow the configured distributions (KS at 1 %).
	uni := thinks(rows, "uni")
	if d, crit := ksStat(uni, func(x float64) float64 { return math.Min(1, math.Max(0, (x-2)/8)) }), 1.63/math.Sqrt(float64(len(uni))); d > crit {
		t.Errorf("uniform think: KS D=%.4f > %.4f over %d pauses", d, crit, len(uni))
	}
	ex := thinks(rows, "exp")
	if d, crit := ksStat(ex, func(x float64) float64 { return 1 - math.Exp(-math.Max(x, 0)/6) }), 1.63/math.Sqrt(float64(len(ex))); d > crit {
		t.Errorf("exponential think: KS D=%.4f > %.4f over %d pauses", d, crit, len(ex))
	}
	// A closed stage never has more requests in flight than its users.
	for stage, users := range map[int32]int{1: 10, 2: 40, 3: 5} {
		var edges [][2]int64
		for _, r := range rows {
			if r.Scenario != "uni" || r.Stage != stage {
				continue
			}
			if r.ActiveUsers < 1 || r.ActiveUsers > 40 {
				t.Fatalf("stage %d row with active_users %d, want 1..40", stage, r.ActiveUsers)
			}
			if int(r.VU) >= users || int(r.StageUsers) != users {
				t.Fatalf("stage %d row from vu %d stage_users %d, want vu < %d", stage, r.VU, r.StageUsers, users)
			}
			edges = append(edges, [2]int64{r.StartNS, 1}, [2]int64{r.StartNS + r.DurationNS, -1})
		}
		sort.Slice(edges, func(i, j int) bool {
			if edges[i][0] != edges[j][0] {
				return edges[i][0] < edges[j][0]
			}
			return edges[i][1] < edges[j][1]
		})
		cur, peak := int64(0), int64(0)
		for _, e := range edges {
			cur += e[1]
			peak = max(peak, cur)
		}
		if peak > int64(users) || peak == 0 {
			t.Errorf("stage %d: %d requests in flight at once, want 1..%d", stage, peak, users)
		}
	}
}
