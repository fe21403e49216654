package har

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/proxy"
)

// The fixture testdata/chromium.har is written in the shape Chromium's
// DevTools saves ("Save all as HAR"): HTTP/2 pseudo-headers, _resourceType
// and _initiator, -1 for phases that did not happen, a request that got no
// response with its _error, entries not in time order. TestFixtureIsHAR
// checks it against the fields HAR 1.2 requires.

func TestFixtureIsHAR(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/chromium.har")
	if err != nil {
		t.Fatal(err)
	}
	if probs := Validate(data); len(probs) > 0 {
		t.Fatalf("fixture is not HAR 1.2:\n%s", strings.Join(probs, "\n"))
	}
	// The validator can fail: drop required fields and see them named.
	broken := bytes.Replace(data, []byte(`"headersSize"`), []byte(`"headersSizeX"`), 1)
	broken = bytes.Replace(broken, []byte(`"cache": {},`), []byte(``), 1)
	probs := Validate(broken)
	if len(probs) != 2 || !strings.Contains(probs[0]+probs[1], "log.entries[0].request.headersSize: required field missing") ||
		!strings.Contains(probs[0]+probs[1], "log.entries[0].cache: required field missing") {
		t.Errorf("validator on a broken archive: %q", probs)
	}
}

// readCapture reads the exchanges in dir in order of start time.
func readCapture(t *testing.T, dir string) []captures.Exchange {
	t.Helper()
	xs := capturetest.Read[captures.Exchange](t, dir)
	slices.SortStableFunc(xs, func(a, b captures.Exchange) int { return cmp.Compare(a.StartNS, b.StartNS) })
	return xs
}

func hdr(hs []captures.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// TestImportChromiumHAR imports the fixture and checks that each entry got
// what the recording proxy gives a live exchange.
func TestImportChromiumHAR(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	st, err := Import([]string{"testdata/chromium.har"}, ImportOptions{Service: "chat", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	xs := readCapture(t, out)
	if st.Exchanges != 9 || len(xs) != 9 {
		t.Fatalf("imported %d (read %d), want 9", st.Exchanges, len(xs))
	}
	var ops []string
	for _, x := range xs {
		ops = append(ops, x.Operation)
		if x.Service != "chat" || x.Scheme != "https" || x.Host != "chat.example.test" {
			t.Errorf("%s: service %q scheme %q host %q", x.Operation, x.Service, x.Scheme, x.Host)
		}
		for _, h := range x.ReqHeaders {
			if strings.HasPrefix(h.Name, ":") {
				t.Errorf("%s: pseudo-header %s kept", x.Operation, h.Name)
			}
		}
	}
	want := []string{"POST /v1/embeddings", "models.list", "chat.completions", "chat.completions", "health",
		"mcp.initialize", "mcp.notifications/initialized", "mcp.tools.call/echo", "chat.completions"}
	if !slices.Equal(ops, want) {
		t.Fatalf("operations in time order %q, want %q", ops, want)
	}
	emb, models, chat, stream, health, init, _, call, failed := xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], xs[6], xs[7], xs[8]

	// Secrets: the proxy's redaction, headers, cookies and body fields.
	for _, x := range xs[:4] {
		for _, h := range x.ReqHeaders {
			if strings.Contains(h.Value, "sk-live") || strings.Contains(h.Value, "abc123def456") {
				t.Errorf("%s: secret kept in %s: %s", x.Operation, h.Name, h.Value)
			}
		}
	}
	if a := hdr(models.ReqHeaders, "Authorization"); !strings.HasPrefix(a, "Bearer redacted:") {
		t.Errorf("authorization %q, want a placeholder", a)
	}
	if bytes.Contains(emb.ReqBody, []byte("sk-proj")) || !bytes.Contains(emb.ReqBody, []byte(`"input":"hello"`)) {
		t.Errorf("embeddings body %s: want the api_key redacted and the rest kept", emb.ReqBody)
	}
	if emb.Query != "api-version=2024-02-01" || emb.Status != 401 {
		t.Errorf("embeddings query %q status %d", emb.Query, emb.Status)
	}
	// OpenAI model and usage, JSON and streamed.
	if chat.Model != "gpt-4o-mini" || chat.PromptTokens != 12 || chat.CompletionTokens != 5 || chat.Stream {
		t.Errorf("chat: model %q tokens %d/%d stream %v", chat.Model, chat.PromptTokens, chat.CompletionTokens, chat.Stream)
	}
	if !stream.Stream || stream.PromptTokens != 9 || stream.CompletionTokens != 4 {
		t.Errorf("stream: stream %v tokens %d/%d", stream.Stream, stream.PromptTokens, stream.CompletionTokens)
	}
	// HAR bodies are decoded: the br Content-Encoding does not survive.
	if hdr(chat.RespHeaders, "Content-Encoding") != "" || !bytes.Contains(chat.RespBody, []byte("chatcmpl-AbC123xyz")) {
		t.Errorf("chat response headers %v body %s", chat.RespHeaders, chat.RespBody)
	}
	// Timing: start after blocked, first byte after send + wait.
	if got := time.Unix(0, chat.StartNS).UTC(); !got.Equal(time.Date(2026, 12, 1, 10, 0, 2, 500750000, time.UTC)) {
		t.Errorf("chat start %v, want 10:00:02.50075 (started + blocked)", got)
	}
	if chat.TTFBNS != int64(812600*time.Microsecond) || chat.DurationNS != int64(814850*time.Microsecond) {
		t.Errorf("chat ttfb %v duration %v, want 812.6ms and 814.85ms", time.Duration(chat.TTFBNS), time.Duration(chat.DurationNS))
	}
	// Sessions as the recorder keys them: the MCP session id first, then
	// credentials, then (where the recorder would use the client address)
	// the HAR's page.
	for _, x := range xs[5:8] {
		if x.Session != "s-42" {
			t.Errorf("%s: session %q, want the MCP session s-42", x.Operation, x.Session)
		}
	}
	if init.Seq != 0 || call.Seq != 2 || call.RPCMethod != "tools/call" || call.Tool != "echo" {
		t.Errorf("mcp: init seq %d, call seq %d rpc %q tool %q", init.Seq, call.Seq, call.RPCMethod, call.Tool)
	}
	if !strings.HasPrefix(models.Session, "auth:") || models.Session != stream.Session || models.Seq != 0 || stream.Seq != 2 {
		t.Errorf("credentialed sessions %q/%d %q/%d, want one auth: session in order", models.Session, models.Seq, stream.Session, stream.Seq)
	}
	if health.Session != "page:page_2" || emb.Session != "page:page_1" || failed.Session != "page:page_2" || failed.Seq != 1 {
		t.Errorf("page sessions: health %q emb %q failed %q/%d", health.Session, emb.Session, failed.Session, failed.Seq)
	}
	if failed.Status != 0 || failed.Error != "net::ERR_CONNECTION_RESET" || !captures.FailedWhenRecorded(&failed, false) {
		t.Errorf("failed entry: status %d error %q", failed.Status, failed.Error)
	}

	// By cookie: the session cookie keys the page_1 entries without
	// credentials... the embeddings call carries none, so it stays alone.
	out2 := t.TempDir()
	if _, err := Import([]string{"testdata/chromium.har"}, ImportOptions{Service: "chat", Out: out2, SessionCookie: "session"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range readCapture(t, out2) {
		if strings.Contains(x.Session, "abc123def456") {
			t.Errorf("session key holds the cookie value: %q", x.Session)
		}
		if x.Operation == "health" && x.Session != "client:har" {
			t.Errorf("health without the cookie: session %q, want the one fallback session", x.Session)
		}
	}
}

// TestImportWithRules: --rules name services and operations as they do when
// recording: the MCP endpoint becomes its own service.
func TestImportWithRules(t *testing.T) {
	t.Parallel()
	rules, err := proxy.ParseRules("rules.yaml", []byte("rules:\n  - {match: {path: /mcp}, service: mcp}\n  - {match: {path: /v1/embeddings}, operation: embeddings}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := Import([]string{"testdata/chromium.har"}, ImportOptions{Service: "chat", Out: out, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, x := range readCapture(t, out) {
		per[x.Service+" "+x.Operation]++
	}
	if per["mcp mcp.initialize"] != 1 || per["mcp mcp.tools.call/echo"] != 1 || per["chat embeddings"] != 1 || per["chat chat.completions"] != 3 {
		t.Errorf("services and operations %v", per)
	}
}

// TestRoundTrip: capture → HAR → capture keeps every exchange: the same
// requests and responses, times to the microsecond, statuses, operations,
// and the same grouping into sessions, in the same order.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	first := t.TempDir()
	if _, err := Import([]string{"testdata/chromium.har"}, ImportOptions{Service: "chat", Out: first}); err != nil {
		t.Fatal(err)
	}
	a := readCapture(t, first)
	var buf bytes.Buffer
	n, err := Export(&buf, []string{first}, ExportOptions{Version: "test"})
	if err != nil || n != len(a) {
		t.Fatalf("export: %d entries, %v", n, err)
	}
	if probs := Validate(buf.Bytes()); len(probs) > 0 {
		t.Fatalf("exported archive is not HAR 1.2:\n%s", strings.Join(probs, "\n"))
	}
	harFile := filepath.Join(t.TempDir(), "export.har")
	os.WriteFile(harFile, buf.Bytes(), 0o644)
	second := t.TempDir()
	if _, err := Import([]string{harFile}, ImportOptions{Service: "chat", Out: second}); err != nil {
		t.Fatal(err)
	}
	b := readCapture(t, second)
	if len(b) != len(a) {
		t.Fatalf("round trip: %d exchanges, want %d", len(b), len(a))
	}
	// Secrets were placeholders already; the second import, a capture of
	// its own, gives them placeholders of its own key.
	ph := regexp.MustCompile(`redacted:[0-9a-f]+`)
	for _, xs := range [][]captures.Exchange{a, b} {
		for i := range xs {
			xs[i].ReqBody = ph.ReplaceAll(xs[i].ReqBody, []byte("redacted:X"))
		}
	}
	group := map[string]string{} // session in a → session in b
	near := func(x, y int64) bool { return x-y < 1000 && y-x < 1000 }
	for i := range a {
		x, y := a[i], b[i]
		if x.Operation != y.Operation || x.Method != y.Method || x.Path != y.Path || x.Query != y.Query || x.Status != y.Status ||
			!bytes.Equal(x.ReqBody, y.ReqBody) || !bytes.Equal(x.RespBody, y.RespBody) || x.Model != y.Model ||
			x.PromptTokens != y.PromptTokens || x.CompletionTokens != y.CompletionTokens || x.Stream != y.Stream || x.Error != y.Error || x.Seq != y.Seq {
			t.Errorf("exchange %d changed:\n a %+v\n b %+v", i, x, y)
		}
		if !near(x.StartNS, y.StartNS) || !near(x.TTFBNS, y.TTFBNS) || !near(x.DurationNS, y.DurationNS) {
			t.Errorf("exchange %d times: %d/%d/%d, then %d/%d/%d", i, x.StartNS, x.TTFBNS, x.DurationNS, y.StartNS, y.TTFBNS, y.DurationNS)
		}
		if g, ok := group[x.Session]; ok && g != y.Session {
			t.Errorf("exchange %d: session %q split (%q and %q)", i, x.Session, g, y.Session)
		}
		group[x.Session] = y.Session
		if hdr(x.ReqHeaders, "Content-Type") != hdr(y.ReqHeaders, "Content-Type") {
			t.Errorf("exchange %d: content type %q, then %q", i, hdr(x.ReqHeaders, "Content-Type"), hdr(y.ReqHeaders, "Content-Type"))
		}
	}
	if len(group) != len(uniq(b)) {
		t.Errorf("sessions merged: %d before, %d after", len(group), len(uniq(b)))
	}
}

func uniq(xs []captures.Exchange) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x.Session] = true
	}
	return m
}

// TestBadHAR: every bad file is refused before anything is written, with
// the file and the line and column.
func TestBadHAR(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, _ := os.ReadFile("testdata/chromium.har")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	cases := []struct {
		name, file, want string
		err              error
	}{
		{"JSON syntax", write("syntax.har", []byte("{\"log\": {\n  \"entries\": [,]}}")), "syntax.har:2:15", ErrSyntax},
		{"not an archive", write("other.har", []byte(`{"foo": 1}`)), "other.har", ErrNotHAR},
		{"wrong type", write("type.har", []byte(`{"log": {"entries": {}}}`)), "type.har:1:", ErrNotHAR},
		{"relative URL", write("url.har", bytes.Replace(good, []byte(`"https://chat.example.test/healthz"`), []byte(`"/healthz"`), 1)), "url.har:", ErrBadEntry},
		{"bad time", write("time.har", bytes.Replace(good, []byte(`"2026-12-01T10:01:00.000Z"`), []byte(`"yesterday"`), 1)), "time.har:", ErrBadEntry},
		{"version", write("v.har", bytes.Replace(good, []byte(`"version": "1.2"`), []byte(`"version": "3.0"`), 1)), "v.har", ErrVersion},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "capture")
		_, err := Import([]string{"testdata/chromium.har", c.file}, ImportOptions{Service: "chat", Out: out})
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %v naming %s on one line", c.name, err, c.err, c.want)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%s: a capture was written despite the error", c.name)
		}
	}
	// The bad entry's position: the healthz entry is the fourth.
	_, err := Import([]string{filepath.Join(dir, "url.har")}, ImportOptions{Service: "chat", Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "entry 4: request.url") {
		t.Errorf("relative URL: %v, want entry 4 named", err)
	}
	if _, err := Import([]string{"testdata/chromium.har"}, ImportOptions{Out: t.TempDir()}); !errors.Is(err, ErrNoService) {
		t.Errorf("no service: %v", err)
	}
}

// TestPlaywrightAttachedBodies: Playwright's content: "attach" keeps a body
// in a file beside the archive; import reads it, and refuses a path that
// leaves the archive's directory.
func TestPlaywrightAttachedBodies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := `{"choices":[{"message":{"content":"Hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}`
	os.WriteFile(filepath.Join(dir, "3f2a.json"), []byte(body), 0o644)
	entry := func(file string) string {
		return `{"log":{"version":"1.2","creator":{"name":"Playwright","version":"1.49.0"},"entries":[{"startedDateTime":"2026-12-01T10:00:00.000Z","time":5,
"request":{"method":"POST","url":"http://127.0.0.1:8000/v1/chat/completions","httpVersion":"HTTP/1.1","cookies":[],"headers":[{"name":"Content-Type","value":"application/json"}],"queryString":[],
"postData":{"mimeType":"application/json","text":"{\"model\":\"chat-7b\",\"messages\":[]}","params":[]},"headersSize":-1,"bodySize":33},
"response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","cookies":[],"headers":[{"name":"Content-Type","value":"application/json"}],
"content":{"size":` + fmt.Sprint(len(body)) + `,"mimeType":"application/json","_file":"` + file + `"},"redirectURL":"","headersSize":-1,"bodySize":-1},
"cache":{},"timings":{"send":0,"wait":4,"receive":1}}]}}`
	}
	good := filepath.Join(dir, "pw.har")
	os.WriteFile(good, []byte(entry("3f2a.json")), 0o644)
	if probs := Validate([]byte(entry("3f2a.json"))); len(probs) > 0 {
		t.Fatalf("fixture: %v", probs)
	}
	out := filepath.Join(t.TempDir(), "c")
	if _, err := Import([]string{good}, ImportOptions{Service: "gateway", Out: out}); err != nil {
		t.Fatal(err)
	}
	xs := readCapture(t, out)
	if len(xs) != 1 || string(xs[0].RespBody) != body || xs[0].CompletionTokens != 3 || xs[0].Model != "chat-7b" {
		t.Fatalf("attached body not read: %+v", xs)
	}
	escape := filepath.Join(dir, "escape.har")
	os.WriteFile(escape, []byte(entry("../../etc/passwd")), 0o644)
	if _, err := Import([]string{escape}, ImportOptions{Service: "gateway", Out: filepath.Join(t.TempDir(), "c")}); !errors.Is(err, ErrBadEntry) {
		t.Errorf("a _file outside the archive's directory: %v, want refused", err)
	}
}

func FuzzParse(f *testing.F) {
	good, _ := os.ReadFile("testdata/chromium.har")
	f.Add(good)
	f.Add([]byte(`{"log":{"version":"1.2","entries":[{"startedDateTime":"2026-01-01T00:00:00Z","request":{"method":"GET","url":"http://a/"},"response":{"status":200}}]}}`))
	f.Add([]byte(`{"log":{"entries":[1,2]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse("f.har", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for i := range a.File.Log.Entries {
			if _, err := offlineExchange(a, i, ImportOptions{Service: "s"}); err != nil && strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
		}
	})
}
