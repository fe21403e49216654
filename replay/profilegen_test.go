package replay

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// recordedGateway is a capture of sessions of a gateway whose clients paused
// by draw() seconds between exchanges, with operations in the given shares.
func recordedGateway(sessions, perSession int, shares map[string]float64, draw func(*rand.Rand) float64) []captures.Exchange {
	rng := rand.New(rand.NewPCG(42, 7))
	ops := slices.Sorted(func(yield func(string) bool) {
		for k := range shares {
			if !yield(k) {
				return
			}
		}
	})
	var xs []captures.Exchange
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for s := 0; s < sessions; s++ {
		at := t0 + int64(s)*int64(time.Second)
		for q := 0; q < perSession; q++ {
			u := rng.Float64() * 100
			op := ops[len(ops)-1]
			for _, o := range ops {
				if u < shares[o] {
					op = o
					break
				}
				u -= shares[o]
			}
			x := captures.Exchange{
				ID: fmt.Sprintf("s%d-%d", s, q), Service: "gateway", Session: fmt.Sprintf("auth:%d", s), Seq: int64(q),
				StartNS: at, DurationNS: int64(20 * time.Millisecond), Scheme: "http", Host: "recorded.invalid:9",
				Status: 200, Operation: op,
			}
			switch op {
			case "chat.completions":
				x.Method, x.Path = "POST", "/v1/chat/completions"
				x.ReqBody = []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
			case "models.list":
				x.Method, x.Path = "GET", "/v1/models"
			default:
				x.Method, x.Path = "GET", "/health"
			}
			xs = append(xs, x)
			at += x.DurationNS + int64(draw(rng)*1e9)
		}
	}
	return xs
}

func TestFitThinkPicksTheDistribution(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	sample := func(n int, f func() float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f()
		}
		slices.Sort(out)
		return out
	}
	cases := []struct {
		name   string
		gaps   []float64
		kind   string
		a, b   float64 // expected parameters, ±10 %
		assert bool
	}{
		{"exponential pauses (a chat user reading)", sample(2000, func() float64 { return rng.ExpFloat64() * 1.5 }), "exponential", 1.5, 0, true},
		{"uniform pauses (a script's random sleep)", sample(2000, func() float64 { return 2 + 3*rng.Float64() }), "uniform", 2, 5, true},
		{"near-constant pauses (a poller)", sample(500, func() float64 { return 1 + 0.02*rng.Float64() }), "constant", 1.01, 0, true},
		{"back to back: no pause", sample(100, func() float64 { return 0.0001 * rng.Float64() }), "", 0, 0, true},
		{"one pause is too few", []float64{3}, "", 0, 0, true},
	}
	for _, c := range cases {
		f := fitThink(c.gaps)
		if f.kind != c.kind {
			t.Errorf("%s: fitted %q (%s), want %q", c.name, f.kind, f.comment(), c.kind)
			continue
		}
		near := func(got, want float64) bool { return math.Abs(got-want) <= 0.1*math.Max(want, 0.01) }
		if !near(f.a, c.a) || (c.b != 0 && !near(f.b, c.b)) {
			t.Errorf("%s: parameters %v, %v, want %v, %v", c.name, f.a, f.b, c.a, c.b)
		}
		if f.kind == "exponential" || f.kind == "uniform" {
			if f.p < 0.01 {
				t.Errorf("%s: KS p = %v for data drawn from the fitted family", c.name, f.p)
			}
		}
	}
}

func TestKSPValue(t *testing.T) {
	t.Parallel()
	// Critical values of the Kolmogorov distribution: Q(1.358) = 0.05,
	// Q(1.628) = 0.01, Q(1.224) = 0.10. A huge n makes the correction vanish.
	n := 1e12
	for _, c := range []struct{ lambda, want float64 }{{1.358, 0.05}, {1.628, 0.01}, {1.224, 0.10}, {0.1, 1}} {
		if got := ksPValue(c.lambda/math.Sqrt(n), n); math.Abs(got-c.want) > 0.002 {
			t.Errorf("Q(%v) = %v, want %v", c.lambda, got, c.want)
		}
	}
	if d := ksTwo([]float64{1, 2, 3}, []float64{1, 2, 3}); d != 0 {
		t.Errorf("identical samples: D = %v, want 0", d)
	}
	if d := ksTwo([]float64{1, 2}, []float64{3, 4}); d != 1 {
		t.Errorf("disjoint samples: D = %v, want 1", d)
	}
	if d := ksTwo([]float64{1, 2, 3, 4}, []float64{2, 4}); math.Abs(d-0.25) > 1e-12 {
		t.Errorf("D = %v, want 0.25", d)
	}
}

// TestGenerateProfileFromMixedCapture: one scenario per service, the
// recorded shares of what succeeded, sessions mode for MCP, the health path
// seen, and YAML that ParseProfile accepts.
func TestGenerateProfileFromMixedCapture(t *testing.T) {
	t.Parallel()
	xs := recordedGateway(20, 10, map[string]float64{"chat.completions": 50, "models.list": 30, "health": 20},
		func(r *rand.Rand) float64 { return 1 + r.Float64() })
	for i := range xs {
		if xs[i].Operation == "health" {
			xs[i].Path = "/healthz"
		}
	}
	// Failures when recorded: a chat naming an unknown model, an upstream
	// that went away. Neither counts in the mix.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	xs = append(xs,
		captures.Exchange{ID: "f1", Service: "gateway", Operation: "chat.completions", Session: "auth:f", StartNS: t0, Status: 404, Method: "POST", Path: "/v1/chat/completions"},
		captures.Exchange{ID: "f2", Service: "gateway", Operation: "GET /v1/files/{id}", Session: "auth:f", Seq: 1, StartNS: t0 + int64(1500*time.Millisecond), Error: "upstream: EOF", Method: "GET", Path: "/v1/files/file-1234567890"},
		captures.Exchange{ID: "o1", Service: "127.0.0.1", Operation: "GET /v1/files/{id}", Session: "client:127.0.0.1", StartNS: t0, Status: 200, Method: "GET", Path: "/v1/files/file-1234567890"},
	)
	for s := 0; s < 3; s++ {
		sid := []captures.Header{{Name: "Mcp-Session-Id", Value: fmt.Sprint("sess-", s)}}
		for q, m := range []string{"initialize", "notifications/initialized", "tools/call"} {
			xs = append(xs, captures.Exchange{ID: fmt.Sprintf("m%d-%d", s, q), Service: "mcp", Session: fmt.Sprint("sess-", s), Seq: int64(q),
				StartNS: t0 + int64(q)*int64(500*time.Millisecond), DurationNS: int64(time.Millisecond),
				Operation: rpcName(m), RPCMethod: m, ReqHeaders: sid, Status: 200, Method: "POST", Path: "/mcp"})
		}
	}
	y, err := GenerateProfile(xs, GenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProfile(y, "generated.yaml")
	if err != nil {
		t.Fatalf("generated profile refused: %v\n%s", err, y)
	}
	if got := p.ScenarioNames(); !slices.Equal(got, []string{"127.0.0.1", "gateway", "mcp"}) {
		t.Fatalf("scenarios %v, want one per service", got)
	}
	gw := p.Scenarios["gateway"]
	counts := map[string]int{}
	for _, x := range xs {
		if x.Service == "gateway" && x.Status == 200 {
			counts[x.Operation]++
		}
	}
	sum := 0.0
	for op, w := range gw.Mix {
		want := 100 * float64(counts[op]) / 200
		if math.Abs(w-want) > 0.01 {
			t.Errorf("gateway mix %s = %v, want the recorded share %.2f", op, w, want)
		}
		sum += w
	}
	if len(gw.Mix) != 3 || math.Abs(sum-100) > 0.05 {
		t.Errorf("gateway mix %v, want the three operations that succeeded, summing to 100", gw.Mix)
	}
	if gw.Mode != ModeClosed || gw.Health != "/healthz" || len(gw.Think.Uniform) != 2 {
		t.Errorf("gateway: mode %s, health %q, think %+v; want closed, /healthz, uniform", gw.Mode, gw.Health, gw.Think)
	}
	if !strings.Contains(string(y), "2 failed when recorded (HTTP 404 x1, upstream error x1)") {
		t.Errorf("the profile does not say which recorded failures it left out:\n%s", y)
	}
	if m := p.Scenarios["mcp"]; m.Mode != ModeSessions || m.Think.Constant.D() != 499*time.Millisecond {
		t.Errorf("mcp: mode %s think %+v, want sessions with the recorded 499ms constant pause", m.Mode, m.Think)
	}
	if len(p.Scenarios["gateway"].Stages) == 0 || len(p.Targets) == 0 {
		t.Errorf("no default stages or targets:\n%s", y)
	}

	y, err = GenerateProfile(xs, GenOptions{Think: ThinkAsRecorded})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = ParseProfile(y, "generated.yaml"); err != nil || !p.Scenarios["gateway"].Think.AsRecorded {
		t.Errorf("--think as_recorded: %v, think %+v", err, p.Scenarios["gateway"].Think)
	}
	if _, err := GenerateProfile(xs, GenOptions{Think: "gaussian"}); !IsBadInput(err) {
		t.Errorf("unknown think choice: %v, want bad input", err)
	}
	failed := []captures.Exchange{{ID: "x", Service: "gateway", Operation: "chat.completions", Status: 503}}
	if _, err := GenerateProfile(failed, GenOptions{}); !IsBadInput(err) {
		t.Errorf("only failures: %v, want bad input", err)
	}
}

func rpcName(m string) string {
	if m == "tools/call" {
		return "mcp.tools.call/echo"
	}
	return "mcp." + m
}

// TestGeneratedProfileFidelity replays a capture with the profile generated
// from it and compares what the replay did with what was recorded: each
// operation's share within ±2 points and the pauses by a two-sample KS test.
// Not parallel: 200 users against a local upstream.
func TestGeneratedProfileFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("replays for 5 s")
	}
	shares := map[string]float64{"chat.completions": 60, "models.list": 30, "health": 10}
	for _, c := range []struct {
		name  string
		think string
		draw  func(*rand.Rand) float64
	}{
		{"exponential pauses, fitted", ThinkFit, func(r *rand.Rand) float64 { return 0.2 * r.ExpFloat64() }},
		{"uniform pauses, fitted", ThinkFit, func(r *rand.Rand) float64 { return 0.1 + 0.3*r.Float64() }},
		{"lognormal pauses, as recorded", ThinkAsRecorded, func(r *rand.Rand) float64 { return 0.15 * math.Exp(0.8*r.NormFloat64()) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			xs := recordedGateway(50, 60, shares, c.draw)
			y, err := GenerateProfile(xs, GenOptions{Think: c.think, Stages: []Stage{{Users: 200, Duration: Duration(5 * time.Second)}}})
			if err != nil {
				t.Fatal(err)
			}
			prof, err := ParseProfile(y, "generated.yaml")
			if err != nil {
				t.Fatalf("%v\n%s", err, y)
			}
			up := newUpstream(t, 0)
			_, rows := runAndRead(t, context.Background(), Options{
				Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), Seed: 3,
			})
			recorded, replayed := map[string]int{}, map[string]int{}
			for _, x := range xs {
				recorded[x.Operation]++
			}
			for _, r := range rows {
				replayed[r.Operation]++
			}
			// About 4,000 on an idle machine; a busy one sends fewer, and
			// the share's bound widens with the sampling error of fewer.
			if len(rows) < 1000 {
				t.Fatalf("%d requests replayed, want at least 1000", len(rows))
			}
			for op, n := range recorded {
				want := 100 * float64(n) / float64(len(xs))
				got := 100 * float64(replayed[op]) / float64(len(rows))
				tol := shareTolerance(want, len(rows), 2)
				if math.Abs(got-want) > tol {
					t.Errorf("%s: replayed share %.2f %%, recorded %.2f %% (±%.1f points)", op, got, want, tol)
				}
			}
			var s serviceStats
			s.sessions = map[string][]*captures.Exchange{}
			for i := range xs {
				s.sessions[xs[i].Session] = append(s.sessions[xs[i].Session], &xs[i])
			}
			rec := s.gaps()
			rep := thinks(rows, "gateway")
			for i := range rep {
				rep[i] /= 1e3 // ms → s
			}
			slices.Sort(rep)
			d := ksTwo(rec, rep)
			ne := float64(len(rec)) * float64(len(rep)) / float64(len(rec)+len(rep))
			p := ksPValue(d, ne)
			t.Logf("%d requests; pauses: %d recorded, %d replayed, KS D %.4f p %.3f; think %+v", len(rows), len(rec), len(rep), d, p, prof.Scenarios["gateway"].Think)
			if p < 0.01 {
				t.Errorf("replayed pauses differ from the recorded ones: KS D %.4f, p %.2g", d, p)
			}
			// The test can tell distributions apart: the same pauses drawn
			// from a constant of their mean are refused.
			mean := 0.0
			for _, g := range rec {
				mean += g
			}
			mean /= float64(len(rec))
			flat := make([]float64, len(rep))
			for i := range flat {
				flat[i] = mean
			}
			if p := ksPValue(ksTwo(rec, flat), ne); p > 0.01 {
				t.Errorf("KS test accepts a constant %v against the recorded pauses (p %.2g): it could not fail", mean, p)
			}
		})
	}
}

// TestGeneratedProfileWarnsOfSharedSessions: clients that ran at once under
// one session key (the client address) make pauses that mix them; the
// profile says so. Stage-bound targets go when the stages are not the
// default ones.
func TestGeneratedProfileWarnsOfSharedSessions(t *testing.T) {
	t.Parallel()
	var xs []captures.Exchange
	for i := 0; i < 40; i++ {
		xs = append(xs, captures.Exchange{ID: fmt.Sprint(i), Service: "gateway", Operation: "models.list", Session: "client:127.0.0.1",
			Seq: int64(i), StartNS: int64(i) * 1e8, DurationNS: 3e8, Status: 200, Method: "GET", Path: "/v1/models"})
	}
	y, err := GenerateProfile(xs, GenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "39 of 39 exchanges started before the previous one of their session ended") {
		t.Errorf("no warning about the shared session:\n%s", y)
	}
	if !strings.Contains(string(y), "metric: rps, users: 100") {
		t.Errorf("the default stages' rps target at 100 users is missing:\n%s", y)
	}
	y, err = GenerateProfile(xs, GenOptions{Stages: []Stage{{Users: 3, Duration: Duration(time.Second)}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), "metric: rps, users: 100") {
		t.Errorf("a target on 100 users with stages of 3:\n%s", y)
	}
	if _, err := ParseProfile(y, "g.yaml"); err != nil {
		t.Error(err)
	}
}
