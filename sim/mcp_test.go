package sim

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func connectMCP(t *testing.T, s *Suite, version string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "sim-test", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: s.URLs()["mcp"] + MCPPath, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect (%s): %v", version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%v): protocol error %v", name, args, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

// TestMCPOfficialClientEveryTool drives the service with the official Go SDK
// client under both protocol versions current clients speak.
func TestMCPOfficialClientEveryTool(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	for _, version := range []string{"2025-06-18", "2025-03-26"} {
		cs := connectMCP(t, s, version)
		if got := cs.InitializeResult().ProtocolVersion; got != version {
			t.Errorf("negotiated %s, want %s", got, version)
		}
		if cs.ID() == "" {
			t.Errorf("%s: no Mcp-Session-Id: the service must keep sessions", version)
		}
		tools, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range tools.Tools {
			names = append(names, tl.Name)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "fetch_url,git_log,git_status,list_dir,read_file,write_file" {
			t.Errorf("tools %v", names)
		}
		steps := []struct {
			tool string
			args map[string]any
			want string
		}{
			{"read_file", map[string]any{"file_path": "./services/rag/app.py"}, "FastAPI"},
			{"write_file", map[string]any{"path": "notes/" + version + ".md", "content": "hello " + version}, "wrote"},
			{"read_file", map[string]any{"path": "notes/" + version + ".md"}, "hello " + version},
			{"list_dir", map[string]any{"path": "services"}, "rag/"},
			{"git_status", map[string]any{}, "## main"},
			{"git_status", map[string]any{}, "?? notes/"},
			{"git_log", map[string]any{"max_count": 2}, "loadtape sim: Add"},
			{"fetch_url", map[string]any{"url": "http://sim.local/pages/python-decorators"}, "<h1>Python decorators</h1>"},
			{"fetch_url", map[string]any{"url": s.URLs()["mcp"] + "/pages/qdrant"}, "Vector search"},
			{"read_file", map[string]any{"path": "links/readme.md"}, "# AI suite"}, // a symlink that stays inside
		}
		for _, st := range steps {
			text, isErr := callText(t, cs, st.tool, st.args)
			if isErr || !strings.Contains(text, st.want) {
				t.Errorf("%s %s(%v) = %q (isError %v), want it to contain %q", version, st.tool, st.args, text, isErr, st.want)
			}
		}
		if text, _ := callText(t, cs, "git_log", map[string]any{"max_count": 2}); strings.Count(text, "\n") != 1 {
			t.Errorf("git_log max_count 2 gave %q", text)
		}
	}
}

func TestMCPFetchRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	cs := connectMCP(t, s, ProtocolVersion)
	for _, u := range []string{"http://example.com/", "https://sim.local/pages/qdrant", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "http://sim.local.evil.com/pages/qdrant", "http://sim.local/../etc"} {
		if text, isErr := callText(t, cs, "fetch_url", map[string]any{"url": u}); !isErr {
			t.Errorf("fetch_url(%s) = %q, want an error result", u, text)
		}
	}
	if got := s.MCPStats().FetchRefusals; got < 2 {
		t.Errorf("fetch refusals %d, want the other hosts counted", got)
	}
}

// TestMCPSandboxEscapes: every form of escape is refused with an error
// result and counted; none reads /etc/passwd or the file beside the root.
func TestMCPSandboxEscapes(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	cs := connectMCP(t, s, ProtocolVersion)
	cases := []struct {
		tool, path, why string
	}{
		{"read_file", "../outside-secret.txt", "parent directory"},
		{"read_file", "../../../../../../etc/passwd", "deep climb"},
		{"read_file", "/etc/passwd", "absolute path"},
		{"read_file", "//etc/passwd", "double-slash absolute path"},
		{"read_file", "services/../../outside-secret.txt", "climb after a real directory"},
		{"list_dir", "./a/../../", "./a/../../ form"},
		{"list_dir", "..", "bare parent"},
		{"read_file", "links/secret.txt", "symlink to a file outside"},
		{"read_file", "links/etc/passwd", "through a symlinked directory outside"},
		{"list_dir", "links/etc", "list a symlinked directory outside"},
		{"read_file", "links/up/outside-secret.txt", "symlink to the parent"},
		{"write_file", "links/up/planted.txt", "write through a symlink to the parent"},
		{"write_file", "../planted.txt", "write outside"},
		{"read_file", "%2e%2e/outside-secret.txt", "URL-encoded dots"},
		{"read_file", "..%2foutside-secret.txt", "URL-encoded slash"},
		{"read_file", "%252e%252e%252foutside-secret.txt", "double-encoded"},
		{"read_file", "..\\outside-secret.txt", "backslash"},
		{"read_file", "C:\\Windows\\win.ini", "Windows path"},
		{"read_file", "README.md\x00../../etc/passwd", "null byte"},
		{"read_file", "\uff0e\uff0e/outside-secret.txt", "fullwidth dots"},
		{"read_file", "\u2025/outside-secret.txt", "two-dot leader"},
		{"read_file", "..\u2215outside-secret.txt", "division slash"},
		{"read_file", "~/.ssh/id_rsa", "home directory"},
		{"read_file", "file:///etc/passwd", "file URL"},
		{"read_file", "services/\n../../etc/passwd", "control character"},
		{"read_file", "\xc0\xae\xc0\xae/etc/passwd", "overlong UTF-8"},
	}
	if len(cases) < 15 {
		t.Fatal("the table must hold at least 15 escape forms")
	}
	before := s.MCPStats().SandboxRefusals
	for _, c := range cases {
		args := map[string]any{"path": c.path}
		if c.tool == "write_file" {
			args["content"] = "planted"
		}
		text, isErr := callText(t, cs, c.tool, args)
		if !isErr || !strings.Contains(text, "sandbox violation") {
			t.Errorf("%s: %s(%q) = %q (isError %v), want a refused error result", c.why, c.tool, c.path, text, isErr)
		}
		if strings.Contains(text, "root:") || strings.Contains(text, "not for tools") {
			t.Errorf("%s: leaked outside content: %q", c.why, text)
		}
	}
	st := s.MCPStats()
	if got := st.SandboxRefusals - before; got != int64(len(cases)) {
		t.Errorf("refusals counted %d, want %d (by reason %v)", got, len(cases), st.RefusalsByReason)
	}
	_, m := getBody(t, s.URLs()["mcp"]+"/metrics")
	if !strings.Contains(string(m), "mcp_sandbox_refusals_total ") {
		t.Errorf("no refusal counter in /metrics:\n%s", m)
	}
	// Paths that stay inside are not refusals.
	for _, p := range []string{"services/../README.md", "./docs/plan.md", "links/readme.md"} {
		if text, isErr := callText(t, cs, "read_file", map[string]any{"path": p}); isErr {
			t.Errorf("read_file(%q) refused: %s", p, text)
		}
	}
	if got := s.MCPStats().SandboxRefusals - before; got != int64(len(cases)) {
		t.Errorf("inside paths were counted as refusals: %d", got)
	}
}

// runConcurrentCalls makes n simultaneous 100 ms read_file calls and
// returns how long they took together.
func runConcurrentCalls(t *testing.T, limit, n int) time.Duration {
	cfg := DefaultConfig()
	cfg.MCP.ExecutorConcurrency = limit
	cfg.MCP.ToolTime.ReadFile = 100 * time.Millisecond
	s := startSuite(t, cfg)
	sessions := make([]*mcp.ClientSession, n)
	for i := range sessions {
		sessions[i] = connectMCP(t, s, ProtocolVersion)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if text, isErr := callText(t, cs, "read_file", map[string]any{"path": "README.md"}); isErr {
				t.Errorf("read_file: %s", text)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func TestMCPExecutorSerializes(t *testing.T) {
	t.Parallel()
	if el := runConcurrentCalls(t, 1, 4); el < 400*time.Millisecond {
		t.Errorf("4 concurrent 100 ms calls on a 1-wide executor took %v, want ≥ 400 ms", el)
	}
}

func TestMCPExecutorParallel(t *testing.T) {
	t.Parallel()
	if el := runConcurrentCalls(t, 4, 4); el >= 400*time.Millisecond {
		t.Errorf("4 concurrent 100 ms calls on a 4-wide executor took %v, want < 400 ms", el)
	}
}

// TestMCPMalformedRequests: broken JSON-RPC gets a JSON-RPC error or an
// HTTP 4xx from the SDK, never a crash, and the service keeps serving.
func TestMCPMalformedRequests(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	url := s.URLs()["mcp"] + MCPPath
	post := func(body, session string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", ProtocolVersion)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil || strings.Contains(b.String(), `"id"`) {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	cases := []struct{ name, body, session string }{
		{"not JSON", `{"jsonrpc": "2.0", "id": 1, "method":`, ""},
		{"not JSON-RPC", `{"hello": "world"}`, ""},
		{"array of numbers", `[1, 2, 3]`, ""},
		{"tools/call without a session", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"README.md"}}}`, ""},
		{"unknown session", `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, "no-such-session"},
	}
	for _, c := range cases {
		status, body := post(c.body, c.session)
		if status < 400 && !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want an HTTP error or a JSON-RPC error", c.name, status, body)
		}
	}
	// Unknown tool and bad arguments inside a session: JSON-RPC or tool errors.
	cs := connectMCP(t, s, ProtocolVersion)
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "rm_rf", Arguments: map[string]any{}}); err == nil {
		t.Error("unknown tool: no error")
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": 42}})
	if err == nil && !res.IsError {
		t.Error("path 42: neither a protocol error nor an error result")
	}
	if text, isErr := callText(t, cs, "read_file", map[string]any{}); !isErr || !strings.Contains(text, "required") {
		t.Errorf("no path: %q", text)
	}
	if status, _ := getBody(t, s.URLs()["mcp"]+"/health"); status != 200 {
		t.Errorf("health after malformed requests: %d", status)
	}
}
