package sim

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPlanScenarios runs the built-in profile's scenarios at time scale 0.05 with
// sim.Client (the profile's think times, scaled) against DefaultConfig and
// HealthyConfig, and checks that the planted bottlenecks appear with the
// first and not with the second. It takes about a minute and two busy cores,
// so it runs only with LOADTAPE_SIM_PLAN=1; docs/sim.md quotes its output.
func TestPlanScenarios(t *testing.T) {
	if os.Getenv("LOADTAPE_SIM_PLAN") == "" {
		t.Skip("set LOADTAPE_SIM_PLAN=1 to run the built-in profile's scenarios (about a minute)")
	}
	const scale = 0.05
	stage := 6 * time.Second
	for _, healthy := range []bool{false, true} {
		name := "default"
		cfg := DefaultConfig()
		if healthy {
			name, cfg = "healthy", HealthyConfig()
		}
		cfg.TimeScale = scale
		t.Run(name, func(t *testing.T) {
			s := startSuite(t, cfg)
			// Gateway: 50 then 100 users, think 2–5 s (mean 3.5 s).
			var gw [2]ClientStats
			var peak [2]float64
			for i, users := range []int{50, 100} {
				gw[i], peak[i] = runWithPeak(t, s, "gateway", users, scaledDur(3500*time.Millisecond, scale), stage)
				chat := gw[i].Operations["chat.completions"]
				t.Logf("gateway %3d users: chat n=%d errors=%d mean=%v (unscaled %v); peak FB used %.0f MiB of %.0f",
					users, chat.Count, chat.Errors, chat.Mean(), unscale(chat.Mean(), scale), peak[i], cfg.Gateway.GPUMemoryMiB)
			}
			oom := gw[1].Operations["chat.completions"].Errors
			pressure := peak[1] >= 0.95*cfg.Gateway.GPUMemoryMiB
			if !healthy && (!pressure || oom == 0) {
				t.Errorf("default at 100 users: peak memory %.0f MiB, %d OOM errors; want ≥ 95 %% and some", peak[1], oom)
			}
			if healthy && (peak[1] >= 0.95*cfg.Gateway.GPUMemoryMiB || gw[0].Errors+gw[1].Errors > 0) {
				t.Errorf("healthy gateway: peak %.0f MiB, %d errors", peak[1], gw[0].Errors+gw[1].Errors)
			}

			// RAG: 25 then 50 users, think 3–8 s (mean 5.5 s).
			var ragStats [2]ClientStats
			for i, users := range []int{25, 50} {
				ragStats[i], _ = runWithPeak(t, s, "rag", users, scaledDur(5500*time.Millisecond, scale), stage)
				q := ragStats[i].Operations["rag.query"]
				t.Logf("rag %2d users: query n=%d errors=%d mean=%v (unscaled %v)", users, q.Count, q.Errors, q.Mean(), unscale(q.Mean(), scale))
			}
			rs := s.rag.stats()
			t.Logf("rag totals: %d vector timeouts (504), %d too-many-connections, collection %d vectors, mean search %.1f ms (unscaled %.0f ms)",
				rs.VectorTimeouts, rs.DBRefused, rs.Collections["default"], rs.MeanSearchMilli, rs.MeanSearchMilli/scale)
			if !healthy && (rs.VectorTimeouts == 0 || rs.DBRefused == 0) {
				t.Errorf("default RAG: %d vector timeouts and %d database refusals, want both", rs.VectorTimeouts, rs.DBRefused)
			}
			if healthy && ragStats[0].Errors+ragStats[1].Errors > 0 {
				t.Errorf("healthy RAG: %d errors", ragStats[0].Errors+ragStats[1].Errors)
			}

			// MCP: 5 then 20 users, think 2–6 s (mean 4 s).
			var lat [2]time.Duration
			var rate [2]float64
			for i, users := range []int{5, 20} {
				st, _ := runWithPeak(t, s, "mcp", users, scaledDur(4*time.Second, scale), stage)
				var n int64
				var total time.Duration
				for op, o := range st.Operations {
					if strings.HasPrefix(op, "mcp.tools.call/") {
						n += o.Count
						total += o.Total
					}
				}
				lat[i], rate[i] = total/time.Duration(max(n, 1)), float64(n)/stage.Seconds()
				t.Logf("mcp %2d users: %d tool calls, %.1f/s (unscaled %.2f/s), mean %v (unscaled %v)", users, n, rate[i], rate[i]*scale, lat[i], unscale(lat[i], scale))
			}
			if !healthy && (lat[1] < 3*lat[0] || rate[1] > 1.3*rate[0]) {
				t.Errorf("default MCP: latency %v → %v, throughput %.1f → %.1f/s; want latency ×4-ish with flat throughput", lat[0], lat[1], rate[0], rate[1])
			}
			if healthy && (lat[1] > 2*lat[0] || rate[1] < 2.5*rate[0]) {
				t.Errorf("healthy MCP: latency %v → %v, throughput %.1f → %.1f/s; want flat latency, growing throughput", lat[0], lat[1], rate[0], rate[1])
			}
		})
	}
}

func scaledDur(d time.Duration, scale float64) time.Duration {
	return time.Duration(float64(d) * scale)
}

func unscale(d time.Duration, scale float64) time.Duration {
	return time.Duration(float64(d) / scale).Round(time.Millisecond)
}

// runWithPeak runs users of one service for d and samples the gateway's
// memory in use meanwhile, returning the client's stats and the peak.
func runWithPeak(t *testing.T, s *Suite, service string, users int, think, d time.Duration) (ClientStats, float64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var peak float64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends with cancel
		defer wg.Done()
		for sleepCtx(ctx, 20*time.Millisecond) {
			if used, _ := s.gateway.gpu.memory(); used > peak {
				peak = used
			}
		}
	}()
	c := &Client{Targets: map[string]string{service: s.URLs()[service]}, Users: users, Seed: int64(users), Think: think, Ramp: think}
	st, err := c.Run(context.Background(), d)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests == 0 {
		t.Fatal(fmt.Sprintf("no %s requests", service))
	}
	return st, peak
}
