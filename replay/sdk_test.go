package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/nodefixture"
	"github.com/loadtape/loadtape/internal/syncbuf"
	"github.com/loadtape/loadtape/proxy"
	"github.com/loadtape/loadtape/runspec"
	"github.com/loadtape/loadtape/sim"
)

// startStatelessMCP serves echo and get-sum with the official Go SDK's
// stateless Streamable HTTP handler: no Mcp-Session-Id, no standalone GET
// stream (GET and DELETE answer 405).
func startStatelessMCP(t testing.TB) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "stateless-test", Version: "1"}, nil)
	type echoIn struct {
		Message string `json:"message"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes the message"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "Echo: " + in.Message}}}, nil, nil
	})
	type sumIn struct {
		A float64 `json:"a"`
		B float64 `json:"b"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "get-sum", Description: "adds two numbers"}, func(_ context.Context, _ *mcp.CallToolRequest, in sumIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("The sum of %v and %v is %v.", in.A, in.B, in.A+in.B)}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL
}

// recording is a recording proxy in front of one upstream, for the
// clients of a test (or the replayer) to talk through.
type recording struct {
	t   *testing.T
	rec *proxy.Recorder
	dir string
	url string // the proxy's base URL
}

func startRecording(t *testing.T, service, upstream string) *recording {
	t.Helper()
	up, _ := url.Parse(upstream)
	dir := t.TempDir()
	rec, err := proxy.New(proxy.Options{Routes: []proxy.Route{{Name: service, Listen: "127.0.0.1:0", Upstream: up}}, Out: dir, LiveEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	return &recording{t: t, rec: rec, dir: dir, url: "http://" + rec.Addrs()[service]}
}

// stop ends the recording and returns its exchanges.
func (r *recording) stop() []captures.Exchange {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.rec.Shutdown(ctx); err != nil {
		r.t.Fatal(err)
	}
	return readExchanges(r.t, r.dir)
}

// runNode runs a script of testdata/node with a time limit and returns
// what it printed.
func runNode(t *testing.T, pkg, script string, args ...string) []byte {
	t.Helper()
	dir, node := nodefixture.Dir(t, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s%s", script, err, out, stderr.String())
	}
	return out
}

func readExchanges(t testing.TB, dir string) []captures.Exchange {
	t.Helper()
	r, err := captures.NewReader[captures.Exchange]([]string{dir}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var xs []captures.Exchange
	for r.Next() {
		xs = append(xs, r.Batch()...)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return xs
}

// TestReplaySDKSessions records the official TypeScript MCP SDK client
// through the proxy, against a stateful server (server-everything: session
// ids, a standalone GET stream, DELETE at the end) and against the Go
// SDK's stateless server (no session id, GET answered 405), then replays
// the capture in sessions mode with 10 users through a second recording
// proxy. No row may carry an error of any kind but a cut-off at the stage's
// end; every request after initialize carries its user's live session id
// (none for the stateless server) and the negotiated protocol version;
// every tool result has the shape of its recording.
func TestReplaySDKSessions(t *testing.T) {
	// Not parallel: load on a shared 2-core machine.
	cases := []struct {
		name      string
		server    func(testing.TB) string
		runs      int
		stateless bool
	}{
		{"stateful server-everything", func(t testing.TB) string { return nodefixture.StartEverything(t) }, 2, false},
		{"stateless go-sdk", startStatelessMCP, 3, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			server := c.server(t)
			rec := startRecording(t, "mcp", server)
			var printed []struct {
				Session *string `json:"session"`
			}
			out := runNode(t, "@modelcontextprotocol/sdk", "mcp-sdk-client.mjs", rec.url+"/mcp", fmt.Sprint(c.runs))
			if err := json.Unmarshal(out, &printed); err != nil || len(printed) != c.runs {
				t.Fatalf("client printed %q: %v", out, err)
			}
			if got := printed[0].Session != nil; got == c.stateless {
				t.Fatalf("client session id %v, want one only from the stateful server", printed[0].Session)
			}
			recorded := rec.stop()

			pool := NewPool(recorded)
			if n := len(pool.services["mcp"].sessions); n != c.runs {
				// What the recording held, to tell a left-out initialize
				// from exchanges keyed to the wrong session.
				for _, x := range recorded {
					t.Logf("recorded %s seq %d %s status %d aborted %v error %q", x.Session, x.Seq, x.Operation, x.Status, x.ClientAborted, x.Error)
				}
				t.Fatalf("%d sessions in the pool, want one per client run (%d); left out %+v", n, c.runs, pool.LeftOut("mcp"))
			}
			if lo := pool.LeftOut("mcp"); len(lo) != 0 {
				t.Errorf("left out %+v, want nothing: the client's GET stream is no failure", lo)
			}

			prof := mustProfile(t, `
scenarios:
  mcp:
    service: mcp
    mode: sessions
    stages: [{users: 10, duration: 3s}]
    think: {constant: 10ms}  # the recorded pauses are a few ms: keep a shared machine responsive
`)
			// Twice at most, and only when the first try's sole failures are
			// connections broken mid-response: two CI runs under -race beside
			// the other packages saw one (`status 200 connection: unexpected
			// EOF`) that 20 tries by hand under load never reproduced. The
			// first try's failures are logged, never dropped silently.
			var info *RunInfo
			var rows []captures.Result
			var replayed []captures.Exchange
			for try := 1; ; try++ {
				live := startRecording(t, "mcp", server)
				info, rows = runAndRead(t, context.Background(), Options{Exchanges: recorded, Profile: prof,
					Targets: map[string]string{"mcp": live.url}, Out: t.TempDir(), Seed: 3, RequestTimeout: 10 * time.Second})
				replayed = live.stop()
				broken := onlyBrokenConnections(rows)
				if try == 2 || len(broken) == 0 {
					break
				}
				t.Logf("try %d: %d requests broken off mid-response, trying once more: %v", try, len(broken), broken)
			}

			ops := map[string]int{}
			cut := map[int32]int{}
			bad := 0
			for _, r := range rows {
				ops[r.Operation]++
				if r.ErrorKind == runspec.ErrCutOff {
					cut[r.VU]++
					continue
				}
				if r.ErrorKind != "" {
					if bad++; bad <= 10 {
						t.Errorf("vu %d %s: status %d %s: %s", r.VU, r.Operation, r.Status, r.ErrorKind, r.Error)
					}
				}
			}
			t.Logf("%d rows, %d errors (cut-offs included): %v", info.Requests, info.Errors, ops)
			if bad > 10 {
				t.Errorf("... %d errors in all", bad)
			}
			for vu, n := range cut {
				if n > 1 {
					t.Errorf("vu %d: %d requests cut off, want at most the one in flight at the end", vu, n)
				}
			}
			if ops["mcp.tools.call/echo"] < 10 || ops["mcp.tools.call/get-sum"] < 10 || ops["GET /mcp"] < 10 {
				t.Errorf("too little replayed: %v", ops)
			}
			if !c.stateless && ops["DELETE /mcp"] < 10 {
				t.Errorf("sessions were not ended with DELETE: %v", ops)
			}
			checkLiveSessions(t, recorded, replayed, c.stateless)
			checkToolShapes(t, recorded, replayed)
		})
	}
}

// onlyBrokenConnections lists the failed rows (cut-offs aside) when every
// one of them is a connection broken after its status arrived; otherwise
// none, so that any other failure is reported by the test's own checks.
func onlyBrokenConnections(rows []captures.Result) []string {
	var out []string
	for _, r := range rows {
		switch {
		case r.ErrorKind == "" || r.ErrorKind == runspec.ErrCutOff:
		case r.ErrorKind == runspec.ErrConnection && r.Status > 0:
			out = append(out, fmt.Sprintf("vu %d %s: %s", r.VU, r.Operation, r.Error))
		default:
			return nil
		}
	}
	return out
}

// checkLiveSessions: every replayed request but initialize carries a live
// session id the server issued (never a recorded one) and the negotiated
// protocol version; against a stateless server none carries a session id.
// The standalone GET stream was opened (200) or refused (405) as recorded.
func checkLiveSessions(t *testing.T, recorded, replayed []captures.Exchange, stateless bool) {
	t.Helper()
	recordedIDs := map[string]bool{}
	for _, x := range recorded {
		if v := header(x.ReqHeaders, "Mcp-Session-Id"); v != "" {
			recordedIDs[v] = true
		}
	}
	issued := map[string]bool{}
	for _, x := range replayed {
		if x.RPCMethod == "initialize" {
			if v := header(x.RespHeaders, "Mcp-Session-Id"); v != "" {
				issued[v] = true
			}
		}
	}
	if stateless != (len(issued) == 0) {
		t.Fatalf("the server issued %d session ids to the replay", len(issued))
	}
	streams := map[int32]int{}
	for _, x := range replayed {
		if x.RPCMethod == "initialize" {
			continue
		}
		id, version := header(x.ReqHeaders, "Mcp-Session-Id"), header(x.ReqHeaders, "Mcp-Protocol-Version")
		switch {
		case stateless && id != "":
			t.Errorf("%s %s carried session id %q to a stateless server", x.Method, x.Operation, id)
		case !stateless && (!issued[id] || recordedIDs[id]):
			t.Errorf("%s %s carried session id %q, want a live one", x.Method, x.Operation, id)
		case version == "":
			t.Errorf("%s %s carried no Mcp-Protocol-Version", x.Method, x.Operation)
		}
		if x.Method == http.MethodGet && !(x.Status == 0 && x.ClientAborted) { // not cut off at the end
			streams[x.Status]++
		}
	}
	want := int32(http.StatusOK)
	if stateless {
		want = http.StatusMethodNotAllowed
	}
	if len(streams) != 1 || streams[want] == 0 {
		t.Errorf("standalone GET streams by status %v, want all %d", streams, want)
	}
}

func header(hs []captures.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// checkToolShapes: the result of every replayed tools/call has the shape
// (keys and value types, recursively) of a recorded result of that tool.
func checkToolShapes(t *testing.T, recorded, replayed []captures.Exchange) {
	t.Helper()
	want := map[string]map[string]bool{}
	for _, x := range recorded {
		if x.RPCMethod == "tools/call" {
			if want[x.Tool] == nil {
				want[x.Tool] = map[string]bool{}
			}
			want[x.Tool][resultShape(t, x)] = true
		}
	}
	n := 0
	for _, x := range replayed {
		if x.RPCMethod != "tools/call" || x.ClientAborted || x.Error != "" {
			continue // a call cut off at the stage's end has no result
		}
		n++
		if got := resultShape(t, x); !want[x.Tool][got] {
			t.Errorf("tool %s: result shape %s, recorded %v", x.Tool, got, want[x.Tool])
		}
	}
	if n == 0 {
		t.Error("no tools/call was replayed")
	}
}

// resultShape is the shape of the JSON-RPC result in a response body, JSON
// or an SSE stream.
func resultShape(t *testing.T, x captures.Exchange) string {
	t.Helper()
	var docs [][]byte
	if b := bytes.TrimSpace(x.RespBody); len(b) > 0 && b[0] == '{' {
		docs = append(docs, b)
	} else {
		for _, line := range strings.Split(string(x.RespBody), "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				docs = append(docs, []byte(strings.TrimSpace(d)))
			}
		}
	}
	for _, d := range docs {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Result any             `json:"result"`
		}
		if json.Unmarshal(d, &m) == nil && m.Result != nil {
			return shape(m.Result)
		}
	}
	t.Errorf("%s %s: no JSON-RPC result in %q", x.ID, x.Operation, x.RespBody)
	return ""
}

func shape(v any) string {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + shape(v[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = shape(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// TestReplayOpenAIClientFailure records the official OpenAI npm client
// against the sim's gateway with one deliberate failure (a chat naming a
// model the gateway does not serve: 404). The failure is left out of the
// pool and named at the start of the replay and in run.json, and the
// replay against the sim has no error.
func TestReplayOpenAIClientFailure(t *testing.T) {
	// Not parallel: load on a shared 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := sim.HealthyConfig()
	cfg.TimeScale = 0.02
	suite, err := sim.Start(ctx, cfg, sim.Addrs{Gateway: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer suite.Close()
	gateway := suite.URLs()["gateway"]
	rec := startRecording(t, "gateway", gateway)
	for range 2 {
		runNode(t, "openai", "openai-with-failure.mjs", rec.url+"/v1", "qwen2.5-14b-instruct")
	}
	recorded := rec.stop()
	failed := 0
	for _, x := range recorded {
		if x.Status == http.StatusNotFound {
			failed++
		}
	}
	if failed != 2 || len(recorded) != 8 {
		t.Fatalf("recorded %d exchanges, %d of them 404, want 8 and 2", len(recorded), failed)
	}

	prof := mustProfile(t, `
scenarios:
  gateway:
    mode: sessions
    stages: [{users: 3, duration: 2s}]
    think: {constant: 20ms}
`)
	var progress syncbuf.Buffer
	runDir := t.TempDir()
	info, rows := runAndRead(t, ctx, Options{Exchanges: recorded, Profile: prof, Targets: map[string]string{"gateway": gateway},
		Headers: http.Header{"Authorization": {"Bearer sk-test-openai-key"}}, Out: runDir, Seed: 1, Progress: &progress})
	ops := map[string]int{}
	for _, r := range rows {
		ops[r.Operation]++
		if r.ErrorKind != "" && r.ErrorKind != runspec.ErrCutOff {
			t.Errorf("%s: status %d %s: %s", r.Operation, r.Status, r.ErrorKind, r.Error)
		}
		if strings.Contains(string(sourceBody(recorded, r.SourceID)), "gpt-nonexistent") {
			t.Errorf("the recorded failure %s was replayed", r.SourceID)
		}
	}
	t.Logf("%d rows: %v", info.Requests, ops)
	if ops["chat.completions"] < 6 || ops["models.list"] < 3 {
		t.Errorf("too little replayed: %v", ops)
	}
	const line = "scenario gateway: left out 2 exchanges that failed when recorded: 2 × HTTP 404 chat.completions"
	if !strings.Contains(progress.String(), line) {
		t.Errorf("replay did not say %q; it said:\n%s", line, progress.String())
	}
	b, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rj struct {
		LeftOut []LeftOut `json:"left_out"`
	}
	if err := json.Unmarshal(b, &rj); err != nil {
		t.Fatal(err)
	}
	wantLeft := []LeftOut{{Scenario: "gateway", Service: "gateway", Operation: "chat.completions", Reason: "HTTP 404", Count: 2}}
	if fmt.Sprint(rj.LeftOut) != fmt.Sprint(wantLeft) {
		t.Errorf("run.json left_out %+v, want %+v", rj.LeftOut, wantLeft)
	}
}

func sourceBody(xs []captures.Exchange, id string) []byte {
	for i := range xs {
		if xs[i].ID == id {
			return xs[i].ReqBody
		}
	}
	return nil
}
