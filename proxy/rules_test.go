package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/syncbuf"
)

// TestRulesApplied: a rule's service, operation and session header reach
// the capture; exchanges no rule matches keep the built-in names.
func TestRulesApplied(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer up.Close()
	rules, err := ParseRules("inline", []byte(`
rules:
  - match: {method: POST, path: /v1/chat/*, json: {model: "gpt-4*"}}
    service: premium
    operation: chat.premium
    session_header: X-User
`))
	if err != nil {
		t.Fatal(err)
	}
	_, base, stop := recorder(t, up.URL, Options{Rules: rules})
	c := client()
	for _, model := range []string{"gpt-4o", "small", "gpt-4o"} {
		req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`"}`))
		req.Header.Set("X-User", "alice")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	rows := stop()
	if len(rows) != 3 {
		t.Fatalf("recorded %d, want 3", len(rows))
	}
	want := []struct {
		svc, op, session string
		seq              int64
	}{
		{"premium", "chat.premium", "alice", 0},
		{"svc", "chat.completions", "client:127.0.0.1", 0},
		{"premium", "chat.premium", "alice", 1},
	}
	for i, w := range want {
		e := rows[i]
		if e.Service != w.svc || e.Operation != w.op || e.Session != w.session || e.Seq != w.seq {
			t.Errorf("exchange %d: %s %s %s #%d, want %s %s %s #%d", i, e.Service, e.Operation, e.Session, e.Seq, w.svc, w.op, w.session, w.seq)
		}
	}
}

// TestLiveLineAndStartWarning: an upstream down at start is a warning, and
// the live line reports the counts.
func TestLiveLineAndStartWarning(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	var log syncbuf.Buffer
	_, base, stop := recorder(t, dead, Options{Log: &log, LiveEvery: 50 * time.Millisecond})
	resp, err := client().Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	time.Sleep(150 * time.Millisecond)
	stop()
	out := log.String()
	for _, want := range []string{"warning: route svc: upstream " + dead + " is not reachable", "1 exchanges", "1 written, 0 dropped", "done: 1 exchanges"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
