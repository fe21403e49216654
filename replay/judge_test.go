package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// TestErrorKinds sends one request per case to a server that misbehaves in
// the named way and checks the error kind replay gives it.
func TestErrorKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		op     string
		rpc    bool
		handle func(w http.ResponseWriter, r *http.Request)
		kind   string
		errHas string
	}{
		{"ok json", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"choices":[]}`)
		}, "", ""},
		{"bad json", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"choices":[`)
		}, runspec.ErrValidation, "not valid JSON"},
		{"out of memory in a stream after 200", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"CUDA out of memory\"}}\n\n")
		}, runspec.ErrOutOfMemory, "out of memory"},
		{"other sse error after 200", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"model overloaded\"}}\n\n")
		}, runspec.ErrValidation, "overloaded"},
		{"out of memory as a 5xx", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"CUDA out of memory. Tried to allocate 2.00 GiB"}}`, 500)
		}, runspec.ErrOutOfMemory, "out of memory"},
		{"5xx keeps the body", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, runspec.ErrHTTP5xx, "boom"},
		{"4xx", "models.list", false, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", 404) }, runspec.ErrHTTP4xx, "HTTP 404"},
		{"qdrant timeout through rag", "rag.query", false, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"status":{"error":"Timeout error: Operation 'search' timed out"}}`, 500)
		}, runspec.ErrVectorTimeout, "Timeout"},
		{"a database pool timeout through rag is not a vector timeout", "rag.index", false, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"detail":"Database error: (sqlalchemy.exc.TimeoutError) QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00"}`, 500)
		}, runspec.ErrHTTP5xx, "QueuePool"},
		{"rag 408", "rag.query", false, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "timeout", 408) }, runspec.ErrVectorTimeout, "408"},
		{"gateway 504 is not a vector timeout", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Gateway Timeout", 504)
		}, runspec.ErrHTTP5xx, ""},
		{"classify rule", "rag.index", false, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `FATAL: sorry, Too Many Connections already`, 500)
		}, "db_connection", "Too Many"},
		{"request timeout", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, runspec.ErrTimeout, "timeout"},
		{"connection dropped", "chat.completions", false, func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}, runspec.ErrConnection, ""},
		{"check fails", "health", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"degraded"}`)
		}, runspec.ErrAssertion, "status"},
		{"json-rpc error", "mcp.tools.list", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}`)
		}, runspec.ErrValidation, "-32601"},
	}
	rules := []ClassifyRule{{Body: "too many connections", Kind: "db_connection"}}
	for i := range rules {
		if err := rules[i].compile(); err != nil {
			t.Fatal(err)
		}
	}
	checks := []Check{{Operation: "health", JSON: &JSONMatch{Path: "status", Equals: "ok"}}}
	if err := checks[0].compile(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: newTransport()}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(c.handle))
			defer srv.Close()
			r := captures.Result{Operation: c.op}
			o := &outgoing{method: "POST", url: srv.URL, header: http.Header{}, body: []byte(`{}`)}
			if c.rpc {
				o.rpcID = "1"
			}
			resp := send(context.Background(), client, 300*time.Millisecond, o, &r)
			judge(&r, resp, 0, checks, rules, false)
			if r.ErrorKind != c.kind || !strings.Contains(r.Error, c.errHas) {
				t.Errorf("kind %q error %q, want %q containing %q", r.ErrorKind, r.Error, c.kind, c.errHas)
			}
		})
	}
}

func TestStreamTiming(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n")
		f.Flush()
		time.Sleep(30 * time.Millisecond)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		f.Flush()
		time.Sleep(30 * time.Millisecond)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	var r captures.Result
	resp := send(context.Background(), &http.Client{Transport: newTransport()}, time.Second, &outgoing{method: "POST", url: srv.URL, header: http.Header{}}, &r)
	judge(&r, resp, 0, nil, nil, false)
	if r.ErrorKind != "" || len(r.ChunkOffsetsNS) != 5 {
		t.Fatalf("kind %q offsets %v, want 5 events", r.ErrorKind, r.ChunkOffsetsNS)
	}
	// TTFT is the first event with content, not the role-only one.
	if r.TTFTNS < int64(25*time.Millisecond) || r.TTFTNS > r.DurationNS || r.TTFBNS > r.TTFTNS {
		t.Errorf("ttfb %v ttft %v duration %v", time.Duration(r.TTFBNS), time.Duration(r.TTFTNS), time.Duration(r.DurationNS))
	}
	if r.PromptTokens != 7 || r.CompletionTokens != 2 || r.BytesIn == 0 {
		t.Errorf("tokens %d/%d bytes %d", r.PromptTokens, r.CompletionTokens, r.BytesIn)
	}
}

func TestRewriteHeadersAndSecrets(t *testing.T) {
	t.Parallel()
	x := &captures.Exchange{Path: "/v1/x", Query: "key=redacted:abcd1234&q=1",
		ReqHeaders: []captures.Header{{Name: "Authorization", Value: "Bearer redacted:1a2b3c4d"}, {Name: "x-api-key", Value: "redacted:99"},
			{Name: "Content-Length", Value: "999"}, {Name: "Host", Value: "recorded.example"}, {Name: "Mcp-Session-Id", Value: "old"}, {Name: "X-Keep", Value: "yes"}}}
	h := headers(x, http.Header{"X-Keep": {"over"}})
	if h.Get("Authorization") != "" || h.Get("X-Api-Key") != "" || h.Get("Content-Length") != "" || h.Get("Host") != "" || h.Get("Mcp-Session-Id") != "" {
		t.Errorf("headers %v kept something replay must not send", h)
	}
	if h.Get("X-Keep") != "over" {
		t.Errorf("--header did not replace: %v", h)
	}
	tg, err := parseTarget("gateway", "http://127.0.0.1:9/base/")
	if err != nil {
		t.Fatal(err)
	}
	if got := tg.url(x); got != "http://127.0.0.1:9/base/v1/x?q=1" {
		t.Errorf("url %q", got)
	}
	h2 := headers(x, http.Header{"Authorization": {"Bearer fresh"}})
	if h2.Get("Authorization") != "Bearer fresh" {
		t.Errorf("fresh Authorization not set: %v", h2)
	}
}

func TestMCPRewriteIDs(t *testing.T) {
	t.Parallel()
	m := &mcpState{nextID: 10}
	b, id := m.rewrite([]byte(`{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"rec"}}}`))
	if id != "11" || !strings.Contains(string(b), `"id":11`) || strings.Contains(string(b), `"rec"`) {
		t.Errorf("rewrite: %s id %s", b, id)
	}
	b, id = m.rewrite([]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"abc"}}`))
	if id != "" || !strings.Contains(string(b), `"requestId":11`) {
		t.Errorf("cancel rewrite: %s id %q", b, id)
	}
}

// fakeMCP is a Streamable HTTP MCP endpoint with a read_file tool whose
// sandbox can be switched off, for the sandbox probe.
func fakeMCP(t *testing.T, leaky bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.WriteHeader(200)
			return
		}
		var buf [4096]byte
		n, _ := r.Body.Read(buf[:])
		body := string(buf[:n])
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(body, `"initialize"`):
			w.Header().Set("Mcp-Session-Id", "live-1")
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":`+idOf(body)+`,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}`)
		case strings.Contains(body, "notifications/"):
			w.WriteHeader(202)
		case r.Header.Get("Mcp-Session-Id") != "live-1" || r.Header.Get("Mcp-Protocol-Version") != "2025-06-18":
			http.Error(w, "bad session", 400)
		case strings.Contains(body, "..") || strings.Contains(body, "/etc") || strings.Contains(body, "~") || strings.Contains(body, "/proc") || strings.Contains(body, "%2"):
			if leaky {
				fmt.Fprint(w, `{"jsonrpc":"2.0","id":`+idOf(body)+`,"result":{"content":[{"type":"text","text":"root:x:0:0"}]}}`)
			} else {
				fmt.Fprint(w, `{"jsonrpc":"2.0","id":`+idOf(body)+`,"result":{"isError":true,"content":[{"type":"text","text":"path outside sandbox"}]}}`)
			}
		default:
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":`+idOf(body)+`,"result":{"content":[{"type":"text","text":"ok"}]}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func idOf(body string) string {
	i := strings.Index(body, `"id":`)
	if i < 0 {
		return "null"
	}
	rest := body[i+5:]
	j := strings.IndexAny(rest, ",}")
	return rest[:j]
}

func mcpCapture() []captures.Exchange {
	h := []captures.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "Accept", Value: "application/json, text/event-stream"}}
	hs := append(append([]captures.Header(nil), h...), captures.Header{Name: "Mcp-Session-Id", Value: "recorded"})
	return []captures.Exchange{
		{ID: "i", Service: "mcp", Session: "recorded", Seq: 0, Operation: "mcp.initialize", RPCMethod: "initialize", Method: "POST", Path: "/mcp", ReqHeaders: h, Status: 200,
			ReqBody: []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`)},
		{ID: "r", Service: "mcp", Session: "recorded", Seq: 1, Operation: "mcp.tools.call/read_file", RPCMethod: "tools/call", Tool: "read_file", Method: "POST", Path: "/mcp", ReqHeaders: hs, Status: 200,
			ReqBody: []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"./services/rag/app.py"}}}`)},
	}
}

func TestSandboxProbe(t *testing.T) {
	t.Parallel()
	prof := `
scenarios:
  mcp:
    stages: [{users: 2, duration: 400ms}]
    think: {constant: 5ms}
    mix: {mcp.tools.call/read_file: 1, mcp.sandbox_probe: 1}
`
	for _, leaky := range []bool{false, true} {
		srv := fakeMCP(t, leaky)
		_, rows := runAndRead(t, context.Background(), Options{Exchanges: mcpCapture(), Profile: mustProfile(t, prof),
			Targets: map[string]string{"mcp": srv.URL}, Out: t.TempDir()})
		n := map[string]int{}
		probes := 0
		for _, r := range rows {
			n[r.ErrorKind]++
			if r.Operation == SandboxProbe && r.ErrorKind != runspec.ErrCutOff {
				probes++
			}
		}
		if probes == 0 {
			t.Fatalf("leaky=%v: no probes sent: %v", leaky, n)
		}
		if leaky && n[runspec.ErrSandboxViolation] != probes {
			t.Errorf("leaky server: %d violations of %d probes: %v", n[runspec.ErrSandboxViolation], probes, n)
		}
		if !leaky && n[""]+n[runspec.ErrCutOff] != len(rows) {
			t.Errorf("sandboxed server: %v, want every request to succeed", n)
		}
	}
}

// FuzzSSEParser feeds arbitrary streams in arbitrary pieces: the parser
// never panics, times at most one offset per event boundary, and splitting
// the same bytes differently finds the same events.
func FuzzSSEParser(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n"), 3)
	f.Add([]byte("event: error\ndata: boom\r\n\r\n: keep-alive\n\n"), 1)
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"), 7)
	f.Fuzz(func(t *testing.T, b []byte, step int) {
		if step <= 0 || step > len(b)+1 {
			step = len(b) + 1
		}
		run := func(step int) (int, string) {
			var r captures.Result
			out := &response{}
			p := &sseParser{rpcID: "1", r: &r, out: out}
			for i := 0; i < len(b); i += step {
				p.feed(b[i:min(i+step, len(b))], int64(i))
			}
			p.flush(int64(len(b)))
			return len(r.ChunkOffsetsNS), string(out.rpc)
		}
		n1, rpc1 := run(step)
		n2, rpc2 := run(len(b) + 1)
		if n1 != n2 || rpc1 != rpc2 {
			t.Fatalf("split by %d: %d events rpc %q; whole: %d events rpc %q", step, n1, rpc1, n2, rpc2)
		}
		if n1 > bytes.Count(b, []byte{'\n'})+1 {
			t.Fatalf("%d events from %d lines", n1, bytes.Count(b, []byte{'\n'}))
		}
	})
}

// The built-in profile's MCP check, json {path: result.isError, equals: false}, holds
// for a result that leaves isError out (the Go SDK's omitempty); a wanted
// true, or any other value, still needs the field.
func TestCheckAbsentFalse(t *testing.T) {
	t.Parallel()
	ok := &response{status: 200, rpc: json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}`)}
	bad := &response{status: 200, rpc: json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}`)}
	for _, tc := range []struct {
		resp   *response
		equals any
		fails  bool
	}{{ok, false, false}, {bad, false, true}, {ok, true, true}, {ok, "x", true}} {
		c := Check{JSON: &JSONMatch{Path: "result.isError", Equals: tc.equals}}
		if msg := c.fails(tc.resp); (msg != "") != tc.fails {
			t.Errorf("equals %v on %s: %q, want failing %v", tc.equals, tc.resp.rpc, msg, tc.fails)
		}
	}
}
