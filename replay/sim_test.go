package replay

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/proxy"
	"github.com/loadtape/loadtape/runspec"
	"github.com/loadtape/loadtape/sim"
)

// TestSeedPlanAgainstSim is the pipeline in small: the sim suite, its
// scripted client recorded through the proxy, then the built-in profile
// replayed at a tiny time scale against the sim, all three scenarios at
// once, with the gateway's /metrics scraped by the monitor.
func TestSeedPlanAgainstSim(t *testing.T) {
	// Not parallel: timing-sensitive load on a 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	capDir, urls := recordSim(t, ctx, 9, 2, 5*time.Millisecond)

	prof, err := ParseProfile(BuiltinProfile(), "built-in profile")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	info, rows := runAndRead(t, ctx, Options{Captures: []string{capDir}, Profile: prof, Targets: urls, Out: out,
		TimeScale: 0.002, Seed: 4, Monitor: []string{"host", "prom=" + urls["gateway"] + "/metrics"}, MonitorEvery: 200 * time.Millisecond})
	if info.Interrupted {
		t.Fatal("run interrupted")
	}
	per := map[string]map[string]int{}
	for _, r := range rows {
		if per[r.Scenario] == nil {
			per[r.Scenario] = map[string]int{}
		}
		per[r.Scenario][r.ErrorKind]++
	}
	t.Logf("results by scenario and error kind: %v", per)
	for _, sc := range []string{"gateway", "rag", "mcp"} {
		var lags []int64
		for _, r := range rows {
			if r.Scenario == sc && r.ErrorKind == "" {
				lags = append(lags, r.StartNS-r.IntendedNS)
			}
		}
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		if len(lags) > 0 {
			t.Logf("%s send lag p50 %v p99 %v max %v", sc, time.Duration(lags[len(lags)/2]), time.Duration(lags[len(lags)*99/100]), time.Duration(lags[len(lags)-1]))
		}
	}
	for _, sc := range []string{"gateway", "rag", "mcp"} {
		ok := per[sc][""]
		bad := 0
		for k, n := range per[sc] {
			if k != "" && k != runspec.ErrCutOff {
				bad += n
			}
		}
		if ok < 10 || bad*20 > ok {
			t.Errorf("%s: %d successes, %d failures against a healthy sim", sc, ok, bad)
		}
	}
	if per["mcp"][runspec.ErrSandboxViolation] != 0 {
		t.Errorf("the sim's sandbox let a probe through")
	}
	var rj struct {
		Stages []struct {
			Scenario string `json:"scenario"`
			Users    int    `json:"users"`
		} `json:"stages"`
		Monitor []struct {
			Source, URL, Service string
		} `json:"monitor"`
		TimeScale float64 `json:"time_scale"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "run.json"))
	if err := json.Unmarshal(b, &rj); err != nil {
		t.Fatal(err)
	}
	if len(rj.Stages) != 5+4+3 || rj.TimeScale != 0.002 {
		t.Errorf("run.json stages %d time_scale %v, want 12 and 0.002", len(rj.Stages), rj.TimeScale)
	}
	if len(rj.Monitor) != 2 || rj.Monitor[1].Source != "prom" || rj.Monitor[1].Service != "gateway" {
		t.Errorf("run.json monitor %+v, want the prom scrape tied to the gateway", rj.Monitor)
	}
	r, err := captures.NewReader[captures.Sample]([]string{out}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	metrics := map[string]bool{}
	for r.Next() {
		for _, s := range r.Batch() {
			metrics[s.Source+" "+s.Metric] = true
		}
	}
	if !metrics["host cpu_util"] || len(metrics) < 5 {
		t.Errorf("samples: %v", metrics)
	}
}

// recordSim starts the healthy sim at time scale 0.02 and records its
// scripted client (users, seed, think) through the proxy for 3 s: the
// capture's directory and the sim's URLs, which serve until the test ends.
func recordSim(t *testing.T, ctx context.Context, users int, seed int64, think time.Duration) (string, map[string]string) {
	t.Helper()
	cfg := sim.HealthyConfig()
	cfg.TimeScale = 0.02
	suite, err := sim.Start(ctx, cfg, sim.Addrs{Gateway: "127.0.0.1:0", RAG: "127.0.0.1:0", MCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { suite.Close() })
	urls := suite.URLs()
	capDir := t.TempDir()
	var routes []proxy.Route
	for _, name := range []string{"gateway", "rag", "mcp"} {
		u, _ := url.Parse(urls[name])
		routes = append(routes, proxy.Route{Name: name, Listen: "127.0.0.1:0", Upstream: u})
	}
	rec, err := proxy.New(proxy.Options{Routes: routes, Out: capDir, LiveEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	via := map[string]string{}
	for name, addr := range rec.Addrs() {
		via[name] = "http://" + addr
	}
	cl := &sim.Client{Targets: via, Users: users, Seed: seed, Think: think}
	if _, err := cl.Run(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return capDir, urls
}
