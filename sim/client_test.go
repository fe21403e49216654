package sim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestClientDrivesEveryOperation: a short run of the scripted population
// against a healthy suite makes every operation of the three services, and
// none fails.
func TestClientDrivesEveryOperation(t *testing.T) {
	t.Parallel()
	cfg := HealthyConfig()
	cfg.TimeScale = 0.005
	s := startSuite(t, cfg)
	c := &Client{Targets: s.URLs(), Users: 9, Seed: 7, Think: 2 * time.Millisecond, ProbeShare: 0.2}
	st, err := c.Run(context.Background(), 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"chat.completions", "models.list", "health", "rag.query", "rag.index", "mcp.initialize", "mcp.tools.list",
		"mcp.tools.call/read_file", "mcp.tools.call/write_file", "mcp.tools.call/list_dir", "mcp.tools.call/git_status",
		"mcp.tools.call/git_log", "mcp.tools.call/fetch_url", "mcp.sandbox_probe"}
	for _, op := range want {
		o := st.Operations[op]
		if o.Count == 0 {
			t.Errorf("no %s in %v", op, st.Operations)
		}
		if o.Errors != 0 {
			t.Errorf("%s: %d of %d failed against a healthy suite", op, o.Errors, o.Count)
		}
	}
	if st.Errors != 0 || st.Requests < int64(len(want)) {
		t.Errorf("stats %+v", st)
	}
	// A probe cut off by the end of the run is refused but not counted by the
	// client: at most one per MCP user (3 of the 9).
	if got, probes := s.MCPStats().SandboxRefusals, st.Operations["mcp.sandbox_probe"].Count; got < probes || got > probes+3 {
		t.Errorf("sandbox refused %d paths, the client probed %d times", got, probes)
	}
}

func TestClientNeedsATarget(t *testing.T) {
	t.Parallel()
	_, err := (&Client{Targets: map[string]string{"other": "http://x"}}).Run(context.Background(), time.Second)
	if !errors.Is(err, ErrNoTargets) {
		t.Errorf("err %v, want ErrNoTargets", err)
	}
}

func TestClientStopsWithContext(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	c := &Client{Targets: map[string]string{"gateway": s.URLs()["gateway"]}, Users: 2, Think: time.Millisecond}
	if _, err := c.Run(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Run returned %v after its context ended at 200 ms", el)
	}
	if !strings.HasPrefix(mcpEndpoint("http://127.0.0.1:1"), "http://127.0.0.1:1/mcp") || mcpEndpoint("http://h/custom") != "http://h/custom" {
		t.Error("mcpEndpoint")
	}
}
