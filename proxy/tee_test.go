package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// chunkReader returns one chunk per Read, as a network read would.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks = c.chunks[1:]
	return n, nil
}

func (c *chunkReader) Close() error { return nil }

func TestTeeUnits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		why    string
		frame  framing
		chunks []string
		want   int
	}{
		{"one SSE event per read", frameSSE, []string{"data: a\n\n", "data: b\n\n"}, 2},
		{"events split across reads count where they end", frameSSE, []string{"data: a\n", "\n", "data: b\n\ndata: c\n\n"}, 3},
		{"CRLF line ends", frameSSE, []string{"data: a\r\n\r\n", "event: x\r\ndata: b\r\n\r\n"}, 2},
		{"blank lines alone are not events", frameSSE, []string{"\n\n\n", "data: a\n\n"}, 1},
		{"an unterminated last event still arrived", frameSSE, []string{"data: a\n\ndata: b"}, 2},
		{"NDJSON lines", frameLines, []string{`{"a":1}` + "\n" + `{"a":2}` + "\n", `{"a":3}`, "\n\n"}, 3},
		{"chunks by read", frameChunks, []string{"x", "yy", "zzz"}, 3},
		{"no units without a stream", frameNone, []string{"x", "y"}, 0},
	}
	for _, c := range cases {
		x := &exchange{start: time.Now()}
		tee := &respTee{x: x, rc: &chunkReader{chunks: c.chunks}, max: 4, frame: c.frame}
		b, err := io.ReadAll(tee)
		if err != nil || string(b) != strings.Join(c.chunks, "") {
			t.Fatalf("%s: read %q, %v", c.why, b, err)
		}
		if len(tee.offsets) != c.want {
			t.Errorf("%s: %d offsets, want %d", c.why, len(tee.offsets), c.want)
		}
		if want := min(int64(len(b)), 4); int64(len(tee.buf)) != want || tee.size != int64(len(b)) {
			t.Errorf("%s: kept %d of %d bytes, want %d", c.why, len(tee.buf), tee.size, want)
		}
	}
}

// TestTruncatedStreamUsage: the usage chunk at the end of a stream longer
// than the body cap is still read, from the kept tail.
func TestTruncatedStreamUsage(t *testing.T) {
	t.Parallel()
	var chunks []string
	for range 200 {
		chunks = append(chunks, `data: {"model":"m","choices":[{"delta":{"content":"token "}}]}`+"\n\n")
	}
	chunks = append(chunks, `data: {"model":"m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":200}}`+"\n\n", "data: [DONE]\n\n")
	r := &Recorder{redact: newRedactor(false, nil)}
	x := &exchange{rec: r, start: time.Now(), method: "POST", path: "/v1/chat/completions", operation: "chat.completions"}
	x.resp = &respTee{x: x, rc: &chunkReader{chunks: chunks}, max: 1024, frame: frameSSE}
	if _, err := io.Copy(io.Discard, x.resp); err != nil {
		t.Fatal(err)
	}
	e := r.row(x)
	if !e.RespTruncated || e.PromptTokens != 11 || e.CompletionTokens != 200 || e.Model != "m" || len(e.ChunkOffsetsNS) != 202 {
		t.Errorf("truncated %v tokens %d/%d model %q offsets %d, want true 11/200 m 202", e.RespTruncated, e.PromptTokens, e.CompletionTokens, e.Model, len(e.ChunkOffsetsNS))
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte("rules: [{match: {path: /x}, service: s}]"))
	f.Add([]byte("redact: {headers: [a], query: [b]}\nsession_header: X"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseRules("fuzz", b)
		if err != nil {
			return
		}
		// Whatever parses must match without panicking.
		rs.match("GET", "h", "/x", nil, []byte(`{"a":[1,{"b":"c"}]}`))
	})
}

func FuzzParseSize(f *testing.F) {
	f.Add("1MiB")
	f.Add("1.5k")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

// errReader returns its chunks, then err.
type errReader struct {
	chunkReader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.chunks) == 0 {
		return 0, e.err
	}
	return e.chunkReader.Read(p)
}

// TestReqTeeWhole: a small body that one read returns whole is handed to
// the transport in memory and kept whole; any other body streams through
// the tee from where the first read stopped, its bytes and its error
// intact.
func TestReqTeeWhole(t *testing.T) {
	t.Parallel()
	cases := []struct {
		why    string
		body   io.ReadCloser
		length int64
		expect string
		max    int64
		whole  bool
		err    error // what reading the rest ends with
	}{
		{"arrived with the headers", &chunkReader{chunks: []string{"hello world"}}, 11, "", 1 << 20, true, nil},
		{"came in two reads", &chunkReader{chunks: []string{"hello ", "world"}}, 11, "", 1 << 20, false, nil},
		{"expects 100 Continue", &chunkReader{chunks: []string{"hello world"}}, 11, "100-continue", 1 << 20, false, nil},
		{"larger than the body cap", &chunkReader{chunks: []string{"hello world"}}, 11, "", 4, false, nil},
		{"the client broke off", &errReader{chunkReader{chunks: []string{"hello "}}, io.ErrUnexpectedEOF}, 11, "", 1 << 20, false, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		tee := &reqTee{rc: c.body, max: c.max}
		req, _ := http.NewRequest("POST", "http://x/", nil)
		req.ContentLength = c.length
		if c.expect != "" {
			req.Header.Set("Expect", c.expect)
		}
		b := tee.whole(req)
		if (b != nil) != c.whole {
			t.Errorf("%s: whole %q, want whole %v", c.why, b, c.whole)
			continue
		}
		if b == nil {
			rest, err := io.ReadAll(tee)
			if err != c.err || !strings.HasPrefix("hello world", string(rest)) || (c.err == nil && string(rest) != "hello world") {
				t.Errorf("%s: the tee gave %q, %v; want the body as sent, then %v", c.why, rest, err, c.err)
			}
		} else if string(b) != "hello world" {
			t.Errorf("%s: whole %q", c.why, b)
		}
		kept, size, done := tee.snapshot()
		if want := min(int64(len("hello world")), c.max); c.err == nil && (string(kept) != "hello world"[:want] || size != 11 || !done) {
			t.Errorf("%s: the tee kept %q of %d bytes (complete %v)", c.why, kept, size, done)
		}
	}
}
