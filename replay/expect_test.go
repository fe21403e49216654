package replay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// TestJudgeAgainstRecording: a response is judged against the status its
// exchange had when recorded. The same class is as expected, a recorded
// failure failing again included; another class is a status_mismatch
// naming both statuses; a vector store's timeout keeps its kind; checks
// and classify rules still apply on top.
func TestJudgeAgainstRecording(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		op       string
		recorded int32
		live     int
		body     string
		checks   []Check
		kind     string
		errHas   string
	}{
		{"same status", "chat.completions", 200, 200, `{"choices":[]}`, nil, "", ""},
		{"same class", "chat.completions", 200, 201, `{"choices":[]}`, nil, "", ""},
		{"recorded success, live 404", "chat.completions", 200, 404, `{"error":"no such model"}`, nil, runspec.ErrStatusMismatch, "HTTP 404 where the recording had 200: {\"error\":\"no such model\"}"},
		{"recorded success, live 503", "chat.completions", 200, 503, `overloaded`, nil, runspec.ErrStatusMismatch, "HTTP 503 where the recording had 200"},
		{"recorded 404 fails the same way", "chat.completions", 404, 404, `{"error":"no such model"}`, nil, "", ""},
		{"recorded 404, live 410: the same class", "chat.completions", 404, 410, `gone`, nil, "", ""},
		{"recorded 404 succeeds live", "chat.completions", 404, 200, `{"choices":[]}`, nil, runspec.ErrStatusMismatch, "HTTP 200 where the recording had 404"},
		{"recorded 405 stream answered 405 again", "GET /mcp", 405, 405, `Method Not Allowed`, nil, "", ""},
		{"recorded 500, live 400", "rag.query", 500, 400, `bad`, nil, runspec.ErrStatusMismatch, "HTTP 400 where the recording had 500"},
		{"vector timeout keeps its kind", "rag.query", 200, 500, `{"status":{"error":"Timeout error: Operation 'search' timed out"}}`, nil, runspec.ErrVectorTimeout, "Timeout"},
		{"classify rules apply on top", "rag.index", 200, 500, `FATAL: sorry, too many connections already`, nil, "db_connection", "where the recording had 200"},
		{"checks apply to an expected failure", "chat.completions", 404, 404, `{"error":"x"}`, []Check{{Body: "model_not_found"}}, runspec.ErrAssertion, "body does not match"},
		{"checks apply to an expected success", "chat.completions", 200, 200, `{"choices":[]}`, []Check{{Status: 201}}, runspec.ErrAssertion, "status 200, want 201"},
		{"a recorded failure does not excuse a bad body of a success", "chat.completions", 200, 200, `{"choices":[`, nil, runspec.ErrValidation, "not valid JSON"},
	}
	rules := []ClassifyRule{{Body: "too many connections", Kind: "db_connection"}}
	if err := rules[0].compile(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: newTransport()}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.checks {
				if err := c.checks[i].compile(); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.live)
				fmt.Fprint(w, c.body)
			}))
			defer srv.Close()
			r := captures.Result{Operation: c.op}
			resp := send(context.Background(), client, 2*time.Second, &outgoing{method: "POST", url: srv.URL, header: http.Header{}}, &r)
			judge(&r, resp, c.recorded, c.checks, rules, false)
			if r.ErrorKind != c.kind || !strings.Contains(r.Error, c.errHas) {
				t.Errorf("kind %q error %q, want %q containing %q", r.ErrorKind, r.Error, c.kind, c.errHas)
			}
			if r.Status != int32(c.live) {
				t.Errorf("status %d in the row, want the live %d", r.Status, c.live)
			}
		})
	}
}
