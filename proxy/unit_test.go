package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	t.Parallel()
	good := []struct{ in, name, listen, up string }{
		{"gateway@127.0.0.1:18000=http://127.0.0.1:8000", "gateway", "127.0.0.1:18000", "http://127.0.0.1:8000"},
		{"rag@:0=https://rag.internal/base/", "rag", ":0", "https://rag.internal/base"}, // trailing slash of the base dropped
		{"mcp@[::1]:18020=http://[::1]:8020", "mcp", "[::1]:18020", "http://[::1]:8020"},
	}
	for _, c := range good {
		rt, err := ParseRoute(c.in)
		if err != nil {
			t.Errorf("ParseRoute(%q): %v", c.in, err)
			continue
		}
		if rt.Name != c.name || rt.Listen != c.listen || rt.Upstream.String() != c.up {
			t.Errorf("ParseRoute(%q) = %v, want %s@%s=%s", c.in, rt, c.name, c.listen, c.up)
		}
	}
	bad := map[string]string{
		"":                                "missing '@'",
		"gateway=http://x":                "missing '@'",
		"gateway@127.0.0.1:1":             "missing '='",
		"@127.0.0.1:1=http://x":           "name",
		"gate way@127.0.0.1:1=http://x":   "name",
		"g@127.0.0.1=http://x":            "host:port",
		"g@127.0.0.1:99999=http://x":      "port",
		"g@127.0.0.1:1=ftp://x":           "http://",
		"g@127.0.0.1:1=127.0.0.1:8000":    "http://",
		"g@127.0.0.1:1=http://x/?a=b":     "query",
		"g@127.0.0.1:1=http://user:pw@x/": "user info",
	}
	for in, want := range bad {
		_, err := ParseRoute(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRoute(%q) error = %v, want one mentioning %q", in, err, want)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	f.Add("gateway@127.0.0.1:18000=http://127.0.0.1:8000")
	f.Add("a@:0=https://x/y")
	f.Fuzz(func(t *testing.T, s string) {
		rt, err := ParseRoute(s)
		if err != nil {
			return
		}
		// What parses must print back to something that parses the same.
		again, err := ParseRoute(rt.String())
		if err != nil || again.String() != rt.String() {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

func TestOperations(t *testing.T) {
	t.Parallel()
	cases := []struct{ method, path, want string }{
		{"POST", "/v1/chat/completions", "chat.completions"},
		{"POST", "/openai/v1/chat/completions/", "chat.completions"}, // a prefix and a trailing slash
		{"GET", "/v1/models", "models.list"},
		{"GET", "/health", "health"},
		{"GET", "/v1/healthz", "health"},
		{"POST", "/query", "rag.query"},
		{"POST", "/v1/rag/index", "rag.index"},
		{"GET", "/v1/models/qwen2.5-14b-instruct", "GET /v1/models/qwen2.5-14b-instruct"}, // a name, not an id
		{"GET", "/v1/files/42", "GET /v1/files/{id}"},
		{"DELETE", "/v1/files/file-8f3a2c1d9e77", "DELETE /v1/files/{id}"},
		{"GET", "/sessions/3f2b8c1e-9d4a-4e6b-8a7c-1d2e3f4a5b6c/items", "GET /sessions/{id}/items"},
		{"GET", "", "GET /"},
	}
	for _, c := range cases {
		if got := builtinOperation(c.method, c.path); got != c.want {
			t.Errorf("builtinOperation(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
	rpc := []struct{ body, op, id, tool string }{
		{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, "mcp.initialize", "1", ""},
		{`{"jsonrpc":"2.0","id":"a7","method":"tools/list"}`, "mcp.tools.list", `"a7"`, ""},
		{`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{}}}`, "mcp.tools.call/read_file", "3", "read_file"},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, "mcp.notifications/initialized", "", ""},
		{`[{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri":"x"}}]`, "mcp.resources/read", "9", ""},
	}
	for _, c := range rpc {
		info, ok := parseRPC([]byte(c.body))
		if !ok {
			t.Errorf("parseRPC(%s): not JSON-RPC", c.body)
			continue
		}
		if op := rpcOperation(info); op != c.op || info.ID != c.id || info.Tool != c.tool {
			t.Errorf("parseRPC(%s) = %q id %q tool %q, want %q id %q tool %q", c.body, op, info.ID, info.Tool, c.op, c.id, c.tool)
		}
	}
	for _, body := range []string{``, `{}`, `{"jsonrpc":"2.0"}`, `{"jsonrpc":"1.0","method":"x"}`, `not json "jsonrpc"`} {
		if _, ok := parseRPC([]byte(body)); ok {
			t.Errorf("parseRPC(%q) accepted a body that is not a JSON-RPC request", body)
		}
	}
}

func FuzzParseRPC(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`))
	f.Add([]byte(`[{"jsonrpc":"2.0"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, ok := parseRPC(b)
		if ok && info.Method == "" {
			t.Fatal("accepted a request without a method")
		}
	})
}

func TestSessionKey(t *testing.T) {
	t.Parallel()
	rd := newRedactor(false, nil)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		name      string
		req, resp http.Header
		rule      string
		want      string
	}{
		{"mcp session wins", h("Mcp-Session-Id", "s1", "Authorization", "Bearer k", "X-User", "u"), nil, "X-User", "s1"},
		{"initialize joins the session it opened", h("Authorization", "Bearer k"), h("Mcp-Session-Id", "s2"), "", "s2"},
		{"rules header before credentials", h("Authorization", "Bearer k", "X-User", "u"), nil, "X-User", "u"},
		{"credentials hashed with the capture's key", h("Authorization", "Bearer k"), nil, "", "auth:" + rd.keyedHex("Bearer k")},
		{"client address last", h(), nil, "X-User", "client:10.0.0.1"},
	}
	for _, c := range cases {
		if got := sessionKey(c.req, c.resp, c.rule, "10.0.0.1", rd); got != c.want {
			t.Errorf("%s: sessionKey = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	good := map[string]int64{"1048576": 1 << 20, "1MiB": 1 << 20, "1M": 1 << 20, "512KiB": 512 << 10, "2kb": 2000, "0": 0, "1.5MiB": 3 << 19}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1XB", "1 2", "1e300", "99999999999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted bad input", in)
		}
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	rs, err := ParseRules("r.yaml", []byte(`
session_header: X-Session
redact: {headers: [X-Internal-Token], query: [api_key]}
rules:
  - match: {method: POST, path: /v1/chat/*, json: {model: "gpt-4*"}}
    operation: chat.premium
  - match: {host: "*.internal", header: {X-Tenant: acme}}
    service: acme
    session_header: X-User
`))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Tenant": {"acme"}}
	if r := rs.match("POST", "api", "/v1/chat/completions", nil, []byte(`{"model":"gpt-4o"}`)); r == nil || r.Operation != "chat.premium" {
		t.Errorf("json matcher: got %+v", r)
	}
	if r := rs.match("POST", "api", "/v1/chat/completions", nil, []byte(`{"model":"gpt-3.5"}`)); r != nil {
		t.Errorf("json matcher matched another model: %+v", r)
	}
	if r := rs.match("GET", "rag.internal", "/x", h, nil); r == nil || r.Service != "acme" || r.SessionHeader != "X-User" {
		t.Errorf("host+header matcher: got %+v", r)
	}
	if r := rs.match("GET", "rag.internal", "/x", http.Header{}, nil); r != nil {
		t.Errorf("header matcher matched without the header: %+v", r)
	}

	bad := map[string]string{
		"rules: [{match: {method: GET}, servce: x}]": "servce",                   // a typo is an error, with its position
		"rules: [{match: {}, service: x}]":           "match needs at least one", // a rule that matches everything by accident
		"rules: [{match: {path: /x}}]":               "sets nothing",
		"rules: [{match: {path: '[x'}, service: x}]": "bad pattern",
		"rules: {a: 1}":                              "r.yaml",
	}
	for in, want := range bad {
		if _, err := ParseRules("r.yaml", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRules(%q) error = %v, want one mentioning %q", in, err, want)
		}
	}
	if _, err := LoadRules("/nonexistent/rules.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent/rules.yaml") {
		t.Errorf("LoadRules of a missing file: %v", err)
	}
}

func TestFramingOf(t *testing.T) {
	t.Parallel()
	get, _ := http.NewRequest("GET", "http://x/", nil)
	head, _ := http.NewRequest("HEAD", "http://x/", nil)
	cases := []struct {
		ct   string
		cl   int64
		req  *http.Request
		want framing
		why  string
	}{
		{"text/event-stream; charset=utf-8", -1, get, frameSSE, "SSE by event"},
		{"text/event-stream", 100, get, frameSSE, "SSE even with a length"},
		{"application/x-ndjson", -1, get, frameLines, "NDJSON by line"},
		{"application/x-ndjson", 100, get, frameNone, "NDJSON with a length is one body"},
		{"application/octet-stream", -1, get, frameChunks, "unknown chunked stream by read"},
		{"application/json", -1, get, frameNone, "one JSON document sent chunked"},
		{"application/problem+json", -1, get, frameNone, "also JSON"},
		{"text/plain", 12, get, frameNone, "a body with a length"},
		{"text/plain", -1, head, frameNone, "HEAD has no body"},
	}
	for _, c := range cases {
		resp := &http.Response{Header: http.Header{"Content-Type": {c.ct}}, ContentLength: c.cl, Request: c.req}
		if got := framingOf(resp); got != c.want {
			t.Errorf("%s: framingOf(%s, %d) = %d, want %d", c.why, c.ct, c.cl, got, c.want)
		}
	}
}
