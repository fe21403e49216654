package replay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

var (
	acceptSSE = []captures.Header{{Name: "Accept", Value: "text/event-stream"}}
	sessionH  = []captures.Header{{Name: "Mcp-Session-Id", Value: "s1"}}
)

// TestPoolLeavesOutFailed: exchanges that failed when recorded are out of
// the default pool and counted by why; include_failed keeps them; an MCP
// client's standalone GET stream answered 405, or ended by its client, is
// no failure, nor is an MCP request its client left after the answer.
func TestPoolLeavesOutFailed(t *testing.T) {
	t.Parallel()
	x := func(id, op string, status int32, mod func(*captures.Exchange)) captures.Exchange {
		e := captures.Exchange{ID: id, Service: "svc", Operation: op, Session: "a", Method: "POST", Path: "/v1/" + op, Status: status}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	xs := []captures.Exchange{
		x("ok1", "chat", 200, nil),
		x("ok2", "chat", 200, nil),
		x("nf1", "chat", 404, nil),
		x("nf2", "chat", 404, nil),
		x("boom", "chat", 503, nil),
		x("up", "embed", 0, func(e *captures.Exchange) { e.Error = "upstream: connection refused" }),
		x("mid", "embed", 200, func(e *captures.Exchange) { e.Error = "upstream: unexpected EOF" }),
		x("gone", "embed", 200, func(e *captures.Exchange) { e.ClientAborted = true }),
		x("cut", "embed", 200, func(e *captures.Exchange) { e.ReqTruncated = true }),
		x("init", "mcp.initialize", 200, func(e *captures.Exchange) { e.RPCMethod, e.Path = "initialize", "/mcp" }),
		x("probe", "mcp.server/discover", 400, func(e *captures.Exchange) { e.RPCMethod, e.Path = "server/discover", "/mcp" }),
		x("s405", "GET /mcp", 405, func(e *captures.Exchange) { e.Method, e.Path, e.ReqHeaders = "GET", "/mcp", acceptSSE }),
		x("s200", "GET /mcp", 200, func(e *captures.Exchange) {
			e.Method, e.Path, e.ReqHeaders, e.ClientAborted = "GET", "/mcp", append(acceptSSE, sessionH...), true
		}),
		// The client went away after its answer (the TypeScript SDK closes
		// its transport at once), and before any answer.
		x("answered", "mcp.tools.call/get-sum", 200, func(e *captures.Exchange) {
			e.RPCMethod, e.RPCID, e.Path, e.ClientAborted = "tools/call", "7", "/mcp", true
			e.RespBody = []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n")
		}),
		x("unanswered", "mcp.tools.call/get-sum", 200, func(e *captures.Exchange) {
			e.RPCMethod, e.RPCID, e.Path, e.ClientAborted = "tools/call", "8", "/mcp", true
			e.RespBody = []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n")
		}),
		x("plain", "GET /v1/other", 200, func(e *captures.Exchange) { e.Method, e.ReqHeaders, e.ClientAborted = "GET", acceptSSE, true }),
	}
	p := NewPool(xs)
	// ids in pool order: start time, then id.
	ids := func(sp *servicePool, op string) string {
		var s []string
		for _, e := range sp.ops[op] {
			s = append(s, e.ex.ID)
		}
		return strings.Join(s, ",")
	}
	def, all := p.service("svc", false), p.service("svc", true)
	for _, c := range []struct{ sp, op, want string }{
		{"default", "chat", "ok1,ok2"},
		{"default", "embed", ""},
		{"default", "GET /mcp", "s200,s405"},
		{"default", "GET /v1/other", ""},
		{"include_failed", "chat", "boom,nf1,nf2,ok1,ok2"},
		{"include_failed", "embed", "gone,mid,up"},
		{"include_failed", "mcp.server/discover", ""},
		{"default", "mcp.tools.call/get-sum", "answered"},
	} {
		sp := def
		if c.sp == "include_failed" {
			sp = all
		}
		if got := ids(sp, c.op); got != c.want {
			t.Errorf("%s pool %s: %q, want %q", c.sp, c.op, got, c.want)
		}
	}
	for _, e := range def.ops["GET /mcp"] {
		if !e.stream {
			t.Errorf("%s: not taken for a standalone stream", e.ex.ID)
		}
	}
	if e := all.ops["GET /v1/other"][0]; e.stream {
		t.Error("a GET off the MCP endpoint was taken for its stream")
	}
	got := fmt.Sprint(p.LeftOut("svc"))
	want := fmt.Sprint([]LeftOut{
		{Service: "svc", Operation: "chat", Reason: "HTTP 404", Count: 2},
		{Service: "svc", Operation: "embed", Reason: "upstream error", Count: 2},
		{Service: "svc", Operation: "GET /v1/other", Reason: "client aborted", Count: 1},
		{Service: "svc", Operation: "chat", Reason: "HTTP 503", Count: 1},
		{Service: "svc", Operation: "embed", Reason: "client aborted", Count: 1},
		{Service: "svc", Operation: "embed", Reason: "truncated request body", Count: 1},
		{Service: "svc", Operation: "mcp.server/discover", Reason: "refused before any session", Count: 1},
		{Service: "svc", Operation: "mcp.tools.call/get-sum", Reason: "client aborted", Count: 1},
	})
	if got != want {
		t.Errorf("left out\n%s\nwant\n%s", got, want)
	}
	prof := &Profile{Scenarios: map[string]*Scenario{"a": {Service: "svc"}, "b": {Service: "svc", IncludeFailed: true}}}
	lines := FailedLines(p.LeftOutFor(prof, []string{"a", "b"}))
	wantLine := "scenario a: left out 8 exchanges that failed when recorded: 2 × HTTP 404 chat, 2 × upstream error embed, 1 × client aborted GET /v1/other, 1 × HTTP 503 chat, 1 × client aborted embed"
	if len(lines) != 1 || !strings.HasPrefix(lines[0], wantLine) {
		t.Errorf("start lines %q, want one for scenario a starting %q", lines, wantLine)
	}
}

// TestSplitStatelessSessions: the client runs that a stateless server's
// capture holds as one session (keyed by the client's address) become one
// session each, split at each initialize; a session the server issued an
// id to stays whole.
func TestSplitStatelessSessions(t *testing.T) {
	t.Parallel()
	var xs []captures.Exchange
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	add := func(session string, hdr []captures.Header, methods ...string) {
		for _, m := range methods {
			n := int64(len(xs))
			xs = append(xs, captures.Exchange{ID: fmt.Sprint("x", n), Service: "mcp", Session: session, Seq: n, StartNS: t0 + n*int64(time.Second),
				DurationNS: int64(100 * time.Millisecond), Operation: "mcp." + m, RPCMethod: m, Method: "POST", Path: "/mcp", Status: 200, ReqHeaders: hdr})
		}
	}
	add("client:127.0.0.1", nil, "initialize", "notifications/initialized", "tools/list", "initialize", "tools/call", "initialize", "tools/list", "tools/call")
	add("s1", sessionH, "initialize", "tools/list", "initialize", "tools/list")
	sp := NewPool(xs).services["mcp"]
	var got []string
	for _, sess := range sp.sessions {
		var ms []string
		for _, e := range sess {
			ms = append(ms, e.ex.RPCMethod)
		}
		got = append(got, strings.Join(ms, " "))
	}
	want := []string{
		"initialize notifications/initialized tools/list",
		"initialize tools/call",
		"initialize tools/list tools/call",
		"initialize tools/list initialize tools/list",
	}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("sessions\n%q\nwant\n%q", got, want)
	}
	// The pause after a split session's last exchange is not the gap to the
	// next client run: it is the service's median pause (900 ms here).
	if last := sp.sessions[0][2]; last.thinkAfter != 900*time.Millisecond {
		t.Errorf("pause after the first run's last exchange %v, want the median 900ms", last.thinkAfter)
	}
}

// TestIncludeFailed replays a capture whose GET /v1/gone was answered 404
// when recorded. Without include_failed a mix that names it is refused
// before anything is sent, saying why; with it, the 404 is expected (no
// error) while the target still answers 404, and a status_mismatch naming
// both statuses once the target answers 200.
func TestIncludeFailed(t *testing.T) {
	t.Parallel()
	var revived atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/gone" && !revived.Load() {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"gone"}`)
			return
		}
		fmt.Fprint(w, `{"data":[]}`)
	}))
	defer srv.Close()
	var xs []captures.Exchange
	for i := range 3 {
		xs = append(xs,
			captures.Exchange{ID: fmt.Sprint("m", i), Service: "gw", Operation: "models.list", Session: fmt.Sprint("s", i), Method: "GET", Path: "/v1/models", Status: 200},
			captures.Exchange{ID: fmt.Sprint("g", i), Service: "gw", Operation: "GET /v1/gone", Session: fmt.Sprint("s", i), Seq: 1, Method: "GET", Path: "/v1/gone", Status: 404})
	}
	const yaml = `
scenarios:
  gw:
    stages: [{users: 2, duration: 400ms}]
    think: {constant: 20ms}
    mix: {models.list: 1, GET /v1/gone: 1}
`
	_, err := Run(context.Background(), Options{Exchanges: xs, Profile: mustProfile(t, yaml), Targets: map[string]string{"gw": srv.URL}, Out: t.TempDir()})
	if !IsBadInput(err) || !strings.Contains(err.Error(), "3 × HTTP 404 GET /v1/gone") || !strings.Contains(err.Error(), "include_failed") {
		t.Fatalf("err %v, want bad input naming the 3 recorded 404s and include_failed", err)
	}
	kept := mustProfile(t, yaml+"    include_failed: true\n")
	for _, live := range []int32{404, 200} {
		revived.Store(live == 200)
		_, rows := runAndRead(t, context.Background(), Options{Exchanges: xs, Profile: kept, Targets: map[string]string{"gw": srv.URL}, Out: t.TempDir()})
		gone := 0
		for _, r := range rows {
			if r.ErrorKind == runspec.ErrCutOff {
				continue
			}
			want := ""
			if r.Operation == "GET /v1/gone" {
				gone++
				if r.Status != live {
					t.Errorf("GET /v1/gone status %d, want %d", r.Status, live)
				}
				if live == 200 {
					want = runspec.ErrStatusMismatch
				}
			}
			if r.ErrorKind != want || (want != "" && !strings.Contains(r.Error, "HTTP 200 where the recording had 404")) {
				t.Errorf("target answering %d: %s got %q %q, want kind %q", live, r.Operation, r.ErrorKind, r.Error, want)
			}
		}
		if gone == 0 {
			t.Errorf("target answering %d: GET /v1/gone was never replayed", live)
		}
	}
}
