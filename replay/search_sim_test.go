package replay

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/proxy"
	"github.com/loadtape/loadtape/runspec"
	"github.com/loadtape/loadtape/sim"
)

// The capacity search against the sim's default gateway (20 batch slots,
// each decode step slower the fuller the batch, so a chat's p95 grows with
// users) lands within one bisection step of the most users a fixed sweep
// finds under the same p95 bound. The bound is taken from the sweep's own
// curve, halfway between two of its middle points, so that a slow machine
// moves the bound with the curve rather than past it.
func TestSearchOnSimMatchesAFixedSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("records the sim and replays it twice (about 35 s)")
	}
	const scale = 0.1 // the sim's and replay's: 20 s stages last 2 s
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cfg := sim.DefaultConfig()
	cfg.TimeScale = scale
	capDir, gateway := recordGateway(t, ctx, cfg)

	const head = `scenarios:
  gateway:
    service: gateway
    mode: closed
    think: {constant: 100ms}
    mix: {chat.completions: 1}
`
	run := func(y string) (*runspec.Run, []captures.Result) {
		t.Helper()
		out := t.TempDir()
		_, rows := runAndRead(t, ctx, Options{Captures: []string{capDir}, Profile: mustProfile(t, y), Targets: map[string]string{"gateway": gateway},
			Out: out, TimeScale: scale, Seed: 5, AllowMissingCredentials: true})
		rf, err := runspec.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		return rf, rows
	}

	// (1) The fixed sweep, spacing users apart.
	const spacing = 6
	sweepUsers := []int{6, 12, 18, 24, 30, 36}
	var stages []string
	for _, u := range sweepUsers {
		stages = append(stages, fmt.Sprintf("{users: %d, duration: 20s}", u))
	}
	srf, rows := run(head + "    stages: [" + strings.Join(stages, ", ") + "]\n")
	p95 := stagePercentile(srf, rows, 0.95)
	for _, u := range sweepUsers {
		if p95[u] == 0 {
			t.Fatalf("sweep: no successful chats at %d users: %v", u, p95)
		}
	}
	// The bound lies halfway between the p95 at 18 and at 24 users, past the
	// 20 slots: the sweep's answer is then 18 users when the curve rises.
	lo, hi := p95[18], p95[24]
	if hi < 1.1*lo || p95[36] < 1.2*p95[6] {
		t.Fatalf("sweep: p95 does not grow with users (ms by users: %v)", p95)
	}
	bound := (lo + hi) / 2 // ms, as measured (scaled time)
	capacity := 0          // most users of the sweep that met the bound, every fewer count met it too
	for _, u := range sweepUsers {
		if p95[u] > bound {
			break
		}
		capacity = u
	}

	// (2) The search, same target and stage duration. The profile's bound
	// is in recorded time: replay scales it by the time scale.
	searchY := head + "    stages: [{duration: 20s}]\n    search: {target: 1, users: {from: 3, max: 96}}\n" +
		fmt.Sprintf("targets:\n  - {scenario: gateway, metric: p95, max: %.1fms}\n", bound/scale)
	rf, _ := run(searchY)
	if len(rf.Search) != 1 {
		t.Fatalf("run.json has %d searches, want 1", len(rf.Search))
	}
	s := rf.Search[0]
	var tried []string
	for _, st := range s.Steps {
		v := 0.0
		if st.Value != nil {
			v = *st.Value
		}
		tried = append(tried, fmt.Sprintf("%d:%.0fms:%v", st.Users, v, st.Met))
	}
	// One bisection step is the search's final gap (failed − met) or the
	// sweep's spacing, whichever is larger: the sweep places the capacity
	// between two of its user counts, the search between met and failed,
	// and neither knows it closer than that.
	step := max(s.Failed-s.Met, spacing)
	t.Logf("sweep p95 ms by users %v, bound %.1f ms → capacity %d; search %s → met %d, failed %d, done %v; one step %d",
		p95, bound, capacity, strings.Join(tried, " "), s.Met, s.Failed, s.Done, step)
	if !s.Done || s.Failed == 0 {
		t.Fatalf("the search did not finish between a met and a failed count: %+v", s)
	}
	if d := s.Met - capacity; d < -step || d > step {
		t.Errorf("search met %d users, sweep %d: more than one step (%d) apart", s.Met, capacity, step)
	}
}

// recordGateway starts the sim's gateway alone with cfg and records its
// scripted client (4 users, 20 ms think, 3 s) through the proxy: the
// capture's directory and the gateway's URL, which serves until the test
// ends.
func recordGateway(t *testing.T, ctx context.Context, cfg sim.Config) (string, string) {
	t.Helper()
	suite, err := sim.Start(ctx, cfg, sim.Addrs{Gateway: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { suite.Close() })
	gateway := suite.URLs()["gateway"]
	up, _ := url.Parse(gateway)
	capDir := t.TempDir()
	rec, err := proxy.New(proxy.Options{Routes: []proxy.Route{{Name: "gateway", Listen: "127.0.0.1:0", Upstream: up}}, Out: capDir, LiveEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	cl := &sim.Client{Targets: map[string]string{"gateway": "http://" + rec.Addrs()["gateway"]}, Users: 4, Seed: 3, Think: 20 * time.Millisecond}
	if _, err := cl.Run(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return capDir, gateway
}
