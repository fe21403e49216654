package replay

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/sim"
)

// TestLLMFindingsAgainstSim records the sim's gateway through the proxy,
// replays it at the built-in profile's gateway user counts (time scale
// 0.1, 6 s stages) and analyses the run: the default gateway's batch
// slots and batch slowdown are named queueing and decode_slowdown, the
// healthy gateway raises neither. About a minute of two busy cores, so it
// runs only with LOADTAPE_SIM_LLM=1; docs/sim.md quotes its numbers.
func TestLLMFindingsAgainstSim(t *testing.T) {
	if os.Getenv("LOADTAPE_SIM_LLM") == "" {
		t.Skip("set LOADTAPE_SIM_LLM=1 to replay the sim's gateway at 1–100 users (about a minute)")
	}
	for _, healthy := range []bool{false, true} {
		name, cfg := "default", sim.DefaultConfig()
		if healthy {
			name, cfg = "healthy", sim.HealthyConfig()
		}
		cfg.TimeScale = 0.1
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			capDir, gateway := recordGateway(t, ctx, cfg)
			prof := mustProfile(t, `
scenarios:
  gateway:
    service: gateway
    mode: closed
    stages: [{users: 1, duration: 60s}, {users: 10, duration: 60s}, {users: 50, duration: 60s}, {users: 100, duration: 60s}]
    spawn_rate: 100
    think: {uniform: [2s, 5s]}
    mix: {chat.completions: 70, models.list: 20, health: 10}
`)
			out := t.TempDir()
			if _, err := Run(ctx, Options{Captures: []string{capDir}, Profile: prof, Targets: map[string]string{"gateway": gateway}, Out: out,
				TimeScale: 0.1, Seed: 5, AllowMissingCredentials: true}); err != nil {
				t.Fatal(err)
			}
			s, err := analyze.Analyze(analyze.Options{Runs: []string{out}})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, f := range s.Findings {
				kinds = append(kinds, string(f.Kind))
				t.Logf("%s %s: %s", f.Kind, f.Operation, f.Summary)
			}
			for _, st := range s.Stages {
				if o := st.Operations["chat.completions"]; o != nil && o.TTFTMS != nil && o.TPOTMS != nil && o.Tokens != nil {
					t.Logf("%3d users: chats %d, errors %v, TTFT p50 %.1f ms, TPOT p50 %.3f ms, output %.0f tok/s (%s), trustworthy %v",
						st.Users, o.Count, o.Errors, o.TTFTMS.P50, o.TPOTMS.P50, o.Tokens.OutputPerS, o.Tokens.Counting, st.Trustworthy)
				}
			}
			llm := slices.Contains(kinds, string(analyze.KindQueueing)) || slices.Contains(kinds, string(analyze.KindDecodeSlowdown))
			switch {
			case healthy && llm:
				t.Errorf("healthy gateway: LLM findings among %v", kinds)
			case !healthy && (!slices.Contains(kinds, string(analyze.KindQueueing)) || !slices.Contains(kinds, string(analyze.KindDecodeSlowdown))):
				t.Errorf("default gateway: findings %v, want queueing and decode_slowdown", kinds)
			}
		})
	}
}
