package replay

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/loadtape/loadtape/internal/nodefixture"
	"github.com/loadtape/loadtape/proxy"
	"github.com/loadtape/loadtape/runspec"
)

// recordMCP records two MCP sessions (initialize, tools/list, two
// tools/call, close) through the recording proxy with the official Go SDK
// client, and returns the capture directory.
func recordMCP(t *testing.T, server string) string {
	t.Helper()
	out := t.TempDir()
	up, _ := url.Parse(server)
	rec, err := proxy.New(proxy.Options{Routes: []proxy.Route{{Name: "mcp", Listen: "127.0.0.1:0", Upstream: up}}, Out: out, LiveEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + rec.Addrs()["mcp"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		cl := mcp.NewClient(&mcp.Implementation{Name: "loadtape-test", Version: "1"}, nil)
		sess, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", DisableStandaloneSSE: true, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sess.ListTools(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello " + strconv.Itoa(i)}}); err != nil || res.IsError {
			t.Fatalf("echo: %v %+v", err, res)
		}
		if res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": i, "b": 2}}); err != nil || res.IsError {
			t.Fatalf("get-sum: %v %+v", err, res)
		}
		sess.Close()
	}
	if _, err := rec.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplayMCPServerEverything records real MCP sessions through the
// proxy, then replays them with 5 virtual users against the live server,
// in sessions mode and in closed mode: every user initialises its own live
// session and every replayed call succeeds.
func TestReplayMCPServerEverything(t *testing.T) {
	// Not parallel: timing-sensitive load on a 2-core machine.
	server := nodefixture.StartEverything(t)
	capDir := recordMCP(t, server)

	prof := mustProfile(t, `
scenarios:
  sessions:
    service: mcp
    mode: sessions
    stages: [{users: 5, duration: 3s}]
    think: {constant: 10ms}
  closed:
    service: mcp
    stages: [{users: 5, duration: 2s}]
    think: {uniform: [10ms, 30ms]}
    mix: {mcp.tools.call/echo: 2, mcp.tools.call/get-sum: 1, mcp.tools.list: 1}
    checks:
      - {operation: mcp.tools.call/get-sum, json: {path: result.isError, exists: false}}
`)
	out := t.TempDir()
	_, rows := runAndRead(t, context.Background(), Options{Captures: []string{capDir}, Profile: prof,
		Targets: map[string]string{"mcp": server}, Out: out, Seed: 1})
	perScenario := map[string]map[string]int{}
	inits := map[string]map[int32]int{"sessions": {}, "closed": {}}
	for _, r := range rows {
		if perScenario[r.Scenario] == nil {
			perScenario[r.Scenario] = map[string]int{}
		}
		perScenario[r.Scenario][r.Operation]++
		if r.Operation == "mcp.initialize" {
			inits[r.Scenario][r.VU]++
		}
		if r.ErrorKind == runspec.ErrCutOff {
			continue // in flight when the stage ended
		}
		if r.ErrorKind != "" || r.Status/100 != 2 {
			t.Errorf("%s vu %d %s: status %d %s %s", r.Scenario, r.VU, r.Operation, r.Status, r.ErrorKind, r.Error)
		}
	}
	t.Logf("operations: %v", perScenario)
	for _, sc := range []string{"sessions", "closed"} {
		if len(inits[sc]) != 5 {
			t.Errorf("%s: %d users initialised, want 5 (%v)", sc, len(inits[sc]), inits[sc])
		}
		if perScenario[sc]["mcp.tools.call/echo"] < 5 || perScenario[sc]["mcp.tools.call/get-sum"] < 5 {
			t.Errorf("%s: too few tool calls: %v", sc, perScenario[sc])
		}
	}
	// Sessions mode re-initialises after each replayed session's DELETE.
	again := 0
	for _, n := range inits["sessions"] {
		if n >= 2 {
			again++
		}
	}
	if again == 0 || perScenario["sessions"]["DELETE /mcp"] == 0 {
		t.Errorf("no sessions-mode user ended its session and initialised again: %v", inits["sessions"])
	}
	if perScenario["sessions"]["mcp.server/discover"] != 0 {
		t.Errorf("the SDK's refused pre-initialize probe was replayed")
	}
	for vu, n := range inits["closed"] {
		if n != 1 {
			t.Errorf("closed vu %d initialised %d times, want once", vu, n)
		}
	}
}
