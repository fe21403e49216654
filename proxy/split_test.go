package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/replay"
)

// splitSecrets are token shapes planted split in two at every offset.
var splitSecrets = []string{
	"sk-proj-Split0123456789abcdefXYZ",
	"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzcGxpdCJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
}

// splitCase is one way a secret's two halves travel apart.
type splitCase struct {
	name   string
	stream bool // the halves are in two events' or lines' text: check the assembled text
}

var splitCases = []splitCase{
	{"sse-events", true},       // two SSE events' delta.content
	{"ndjson-lines", true},     // two NDJSON lines' message.content (Ollama)
	{"sse-reads", false},       // one SSE event whose bytes came in two reads
	{"chunked-reads", false},   // a chunked text body in two reads
	{"length-reads", false},    // a Content-Length body flushed halfway
	{"req-chunked", false},     // a chunked request body sent in two writes
	{"req-length", false},      // a Content-Length request body in two reads
	{"req-ndjson-lines", true}, // a request stream: two NDJSON lines' text
}

// flushWrite writes the two halves of a body with a flush between them,
// so they leave the upstream (and reach the proxy) as two reads.
func flushWrite(w http.ResponseWriter, a, b string) {
	io.WriteString(w, a)
	w.(http.Flusher).Flush()
	io.WriteString(w, b)
}

// pieces is a request body that returns its parts in separate reads.
type pieces struct{ parts []string }

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	if p.parts[0] = p.parts[0][n:]; p.parts[0] == "" {
		p.parts = p.parts[1:]
	}
	return n, nil
}

// splitBodies is what travels for a secret split at k: the two halves of the
// body on the wire (reads) for the case.
func splitBodies(c string, s string, k int) (a, b string) {
	x, y := s[:k], s[k:]
	switch c {
	case "sse-events":
		return `data: {"choices":[{"delta":{"content":"my key ` + x + `"}}]}` + "\n\n",
			`data: {"choices":[{"delta":{"content":"` + y + ` ok"}}]}` + "\n\ndata: [DONE]\n\n"
	case "ndjson-lines", "req-ndjson-lines":
		return `{"message":{"content":"my key ` + x + `"}}` + "\n", `{"message":{"content":"` + y + ` ok"}}` + "\n"
	case "sse-reads":
		return `data: {"choices":[{"delta":{"content":"my key ` + x, y + ` ok"}}]}` + "\n\n"
	case "req-chunked", "req-length":
		return `{"messages":[{"role":"user","content":"my key ` + x, y + ` ok"}]}`
	default:
		return "my key " + x, y + " ok\n"
	}
}

// assembled is the text a reader of a stream puts together: the content
// of every JSON line or SSE data line, in order.
func assembled(body string) string {
	var out strings.Builder
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimPrefix(line, "data: ")
		var doc struct {
			Choices []struct {
				Delta struct{ Content string }
			}
			Message struct{ Content string }
		}
		if json.Unmarshal([]byte(line), &doc) != nil {
			continue
		}
		for _, c := range doc.Choices {
			out.WriteString(c.Delta.Content)
		}
		out.WriteString(doc.Message.Content)
	}
	return out.String()
}

// TestSecretSplitAnywhere splits token-shaped secrets at every offset: across
// two SSE events or two NDJSON lines of a stream (the text a client
// assembles holds the secret), and across two reads of a chunked,
// Content-Length or SSE body, in both directions. None is in the capture's
// decoded values (our reader and DuckDB), the assembled text of a stream
// holds a placeholder where the secret was, the text around it stays, and
// the client receives every byte as the upstream sent it.
func TestSecretSplitAnywhere(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c := r.URL.Query().Get("case")
		if strings.HasPrefix(c, "req-") {
			io.WriteString(w, "ok")
			return
		}
		si, _ := strconv.Atoi(r.URL.Query().Get("s"))
		k, _ := strconv.Atoi(r.URL.Query().Get("k"))
		a, b := splitBodies(c, splitSecrets[si], k)
		switch c {
		case "sse-events", "sse-reads":
			w.Header().Set("Content-Type", "text/event-stream")
		case "ndjson-lines":
			w.Header().Set("Content-Type", "application/x-ndjson")
		case "length-reads":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(a)+len(b)))
		default:
			w.Header().Set("Content-Type", "text/plain")
		}
		flushWrite(w, a, b)
	}))
	defer up.Close()
	dir := t.TempDir()
	_, base, stop := recorder(t, up.URL, Options{Out: dir})
	c := client()
	sent := 0
	for si, s := range splitSecrets {
		for k := 1; k < len(s); k++ {
			for _, sc := range splitCases {
				url := fmt.Sprintf("%s/v1/%s?case=%s&s=%d&k=%d", base, sc.name, sc.name, si, k)
				a, b := splitBodies(sc.name, s, k)
				var req *http.Request
				switch sc.name {
				case "req-chunked", "req-ndjson-lines":
					pr, pw := io.Pipe()
					go func() {
						io.WriteString(pw, a)
						io.WriteString(pw, b)
						pw.Close()
					}()
					req, _ = http.NewRequest("POST", url, pr)
					if sc.name == "req-ndjson-lines" {
						req.Header.Set("Content-Type", "application/x-ndjson")
					} else {
						req.Header.Set("Content-Type", "application/json")
					}
				case "req-length":
					req, _ = http.NewRequest("POST", url, &pieces{parts: []string{a, b}})
					req.ContentLength = int64(len(a) + len(b))
					req.Header.Set("Content-Type", "application/json")
				default:
					req, _ = http.NewRequest("GET", url, nil)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(t, resp)
				if !strings.HasPrefix(sc.name, "req-") && string(got) != a+b {
					t.Fatalf("%s k=%d: client got %q, want the upstream's bytes %q", sc.name, k, got, a+b)
				}
				sent++
			}
		}
	}
	stop()

	rows := capturetest.Read[captures.Exchange](t, dir)
	if len(rows) != sent {
		t.Fatalf("read back %d rows, want %d", len(rows), sent)
	}
	for _, e := range rows {
		q := e.Query
		body := string(e.RespBody)
		if strings.Contains(q, "case=req-") {
			body = string(e.ReqBody)
		}
		text := rowText(t, e)
		for _, s := range splitSecrets {
			if strings.Contains(text, s) {
				t.Errorf("%s: the secret is in the capture: %s", q, body)
			}
		}
		for _, sc := range splitCases {
			if !strings.Contains(q, "case="+sc.name+"&") {
				continue
			}
			text := body
			if sc.stream {
				text = assembled(body)
			}
			checkRedactedText(t, q, text)
		}
	}
	replayNeverSends(t, rows, splitSecrets)
	for _, d := range duckDump(t, dir) {
		for _, s := range splitSecrets {
			if strings.Contains(d, s) || strings.Contains(assembled(d), s) {
				t.Fatalf("DuckDB's dump holds the secret %q", s)
			}
		}
	}
}

// checkRedactedText wants "my key <placeholder> ok" and neither half of a
// secret long enough to tell.
func checkRedactedText(t *testing.T, where, text string) {
	t.Helper()
	i := strings.Index(text, "my key ")
	j := strings.Index(text, " ok")
	if i < 0 || j < i {
		t.Errorf("%s: the text around the secret is gone: %q", where, text)
		return
	}
	mid := text[i+len("my key ") : j]
	if !strings.HasPrefix(mid, captures.PlaceholderPrefix) || !captures.ContainsPlaceholder(mid) {
		t.Errorf("%s: %q where the secret was, want one placeholder", where, mid)
	}
	if bytes.Count([]byte(mid), []byte(captures.PlaceholderPrefix)) != 1 {
		t.Errorf("%s: %q: want exactly one placeholder", where, mid)
	}
}

// replayNeverSends replays the recorded requests against a target that
// keeps what it receives, and looks for the secrets and for placeholders in
// every request line, header and body.
func replayNeverSends(t *testing.T, rows []captures.Exchange, secrets []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.RequestURI())
		_ = r.Header.Write(&b)
		b.Write(body)
		mu.Lock()
		got = append(got, b.String())
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer target.Close()
	// Requests whose body is one JSON document are replayed with the
	// redacted field left out; replay leaves out a request stream
	// (NDJSON) with a placeholder whole, so it is not in the mix.
	var mix []string
	for _, e := range rows {
		if m := fmt.Sprintf("%q: 1", e.Operation); strings.Contains(e.Query, "case=req-") && json.Valid(e.ReqBody) && !slices.Contains(mix, m) {
			mix = append(mix, m)
		}
	}
	prof, err := replay.ParseProfile([]byte(`
scenarios: {s: {service: svc, stages: [{users: 4, duration: 400ms}], think: {constant: 2ms}, mix: {`+strings.Join(mix, ", ")+`}}}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Run(context.Background(), replay.Options{Exchanges: rows, Profile: prof, Out: t.TempDir(),
		Targets: map[string]string{"svc": target.URL}, AllowMissingCredentials: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	bodies := 0
	for _, r := range got {
		if captures.ContainsPlaceholder(r) || strings.Contains(r, captures.PlaceholderPrefix) {
			t.Fatalf("the target received a placeholder:\n%s", r)
		}
		for _, s := range secrets {
			if strings.Contains(r, s) {
				t.Fatalf("the target received the secret:\n%s", r)
			}
		}
		if strings.Contains(r, "case=req-") && strings.Contains(r, `"messages"`) {
			bodies++
		}
	}
	if bodies == 0 {
		t.Errorf("the target received %d requests, none with a JSON body: want the recorded ones replayed, the secret left out", len(got))
	}
}

// TestSplitSecretNotHeldBack: the first half of a secret reaches the client
// while the upstream still holds back the second: redaction works on the
// stored copy and never delays the bytes of a stream.
func TestSplitSecretNotHeldBack(t *testing.T) {
	t.Parallel()
	s := splitSecrets[0]
	a, b := splitBodies("sse-events", s, len(s)/2)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, a)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, b)
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	resp, err := client().Get(base + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len(a))
	read := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, first); read <- err }()
	select {
	case err := <-read:
		if err != nil || string(first) != a {
			t.Fatalf("the client read %q (%v), want %q", first, err, a)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the first half of the stream did not reach the client while the upstream held back the rest")
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(rest) != b {
		t.Fatalf("then %q (%v), want %q", rest, err, b)
	}
	rows := stop()
	if len(rows) != 1 || strings.Contains(assembled(string(rows[0].RespBody)), s) {
		t.Fatalf("rows %+v: want one, the secret redacted", rows)
	}
}
