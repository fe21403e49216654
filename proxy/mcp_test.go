package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/loadtape/loadtape/internal/nodefixture"
)

// TestMCPServerEverything drives the reference MCP server through the proxy
// with the official Go SDK client and checks what the capture holds.
func TestMCPServerEverything(t *testing.T) {
	t.Parallel()
	up := nodefixture.StartEverything(t)
	_, base, stop := recorder(t, up, Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := mcp.NewClient(&mcp.Implementation{Name: "loadtape-test", Version: "1"}, nil)
	sess, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := sess.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools.Tools) == 0 {
		t.Fatal("no tools listed")
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "through the proxy"}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call echo: %v %+v", err, res)
	}
	id := sess.ID()
	sess.Close()
	rows := stop()

	// The SDK may probe with server/discover before initialize; such a probe
	// has no session yet and belongs to the client address.
	for len(rows) > 0 && rows[0].Operation != "mcp.initialize" {
		if rows[0].RPCMethod == "" || rows[0].Session != "client:127.0.0.1" {
			t.Errorf("before initialize: %s in session %q", rows[0].Operation, rows[0].Session)
		}
		rows = rows[1:]
	}
	var ops []string
	for _, e := range rows {
		ops = append(ops, e.Operation)
		if e.Service != "svc" || e.Session != id {
			t.Errorf("%s: service %q session %q, want svc and the MCP session %q", e.Operation, e.Service, e.Session, id)
		}
	}
	want := []struct{ op, method, tool string }{
		{"mcp.initialize", "initialize", ""},
		{"mcp.notifications/initialized", "notifications/initialized", ""},
		{"mcp.tools.list", "tools/list", ""},
		{"mcp.tools.call/echo", "tools/call", "echo"},
		{"DELETE /mcp", "", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("recorded %v, want %d exchanges", ops, len(want))
	}
	for i, w := range want {
		e := rows[i]
		if e.Operation != w.op || e.RPCMethod != w.method || e.Tool != w.tool || e.Seq != int64(i) {
			t.Errorf("exchange %d: %s method %q tool %q seq %d, want %s %q %q seq %d", i, e.Operation, e.RPCMethod, e.Tool, e.Seq, w.op, w.method, w.tool, i)
		}
		if w.method != "" && w.method != "notifications/initialized" && e.RPCID == "" {
			t.Errorf("exchange %d (%s): no JSON-RPC id recorded", i, e.Operation)
		}
	}
	if rows[0].Status != 200 || header(rows[0].RespHeaders, "Mcp-Session-Id") != id {
		t.Errorf("initialize: status %d session header %q", rows[0].Status, header(rows[0].RespHeaders, "Mcp-Session-Id"))
	}
}
