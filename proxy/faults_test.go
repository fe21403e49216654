package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// rawUpstream is an upstream the test controls byte for byte: it reads
// each request and hands the connection to serve, then closes it. serve
// may block until the test ends (done is closed then).
func rawUpstream(t *testing.T, serve func(c net.Conn, req *http.Request, done <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		// Ends when the listener is closed.
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				serve(c, req, done)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// nodeGet fetches url with Node's http module and reports whether Node
// saw the response complete; "" without node on PATH.
func nodeGet(t *testing.T, url string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		return ""
	}
	const script = `const http = require('http');
const req = http.get(process.argv[1], (res) => {
  res.on('data', () => {});
  res.on('aborted', () => console.log('aborted'));
  res.on('close', () => { console.log('complete=' + res.complete); process.exit(0); });
});
req.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });`
	out, err := exec.Command(node, "-e", script, url).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v %s", err, out)
	}
	return string(out)
}

// breakOffs are upstream responses that end before their body does.
var breakOffs = []struct {
	name    string
	raw     string // everything the upstream writes before it closes
	arrived string // the body bytes the client must still get
}{
	{"mid-chunk",
		"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"8\r\n{\"a\":1}\n\r\n" + "10\r\n{\"b\":2",
		"{\"a\":1}\n{\"b\":2"},
	{"mid-SSE-event",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"f\r\ndata: {\"x\":1}\n\n\r\n" + "c\r\ndata: {\"x\":2\r\n",
		"data: {\"x\":1}\n\ndata: {\"x\":2"},
	{"mid-Content-Length",
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n" +
			"{\"choices\":[{\"text\":\"half",
		"{\"choices\":[{\"text\":\"half"},
}

// TestBreakOffReachesClient: an upstream that breaks off mid-body is a
// break-off for the client too (Go's client gets an error after the bytes
// that arrived, curl exits 18, Node's response is not complete), never a
// clean end; the row keeps the bytes
// that arrived and the error.
func TestBreakOffReachesClient(t *testing.T) {
	t.Parallel()
	curl, _ := exec.LookPath("curl")
	for _, bc := range breakOffs {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			up := rawUpstream(t, func(c net.Conn, _ *http.Request, _ <-chan struct{}) {
				io.WriteString(c, bc.raw)
			})
			_, base, stop := recorder(t, up, Options{})
			resp, err := client().Get(base + "/v1/x")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("client read %q and a clean end, want an error", got)
			} else if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("client error: %v", err)
			}
			if string(got) != bc.arrived {
				t.Errorf("client got %q before the break-off, want %q", got, bc.arrived)
			}
			if curl != "" {
				out, err := exec.Command(curl, "-sS", "-N", "-o", "/dev/null", base+"/v1/x").CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 18 {
					t.Errorf("curl: %v %s, want exit 18 (partial transfer)", err, out)
				}
			}
			if out := nodeGet(t, base+"/v1/x"); out != "" && !strings.Contains(out, "complete=false") {
				t.Errorf("node saw %q, want an incomplete response", out)
			}
			rows := stop()
			if len(rows) == 0 {
				t.Fatal("no row")
			}
			e := rows[0]
			if !strings.Contains(e.Error, "upstream: unexpected EOF") || e.ClientAborted {
				t.Errorf("row error %q aborted %v, want the upstream's unexpected EOF, not a client abort", e.Error, e.ClientAborted)
			}
			if string(e.RespBody) != bc.arrived || e.RespSize != int64(len(bc.arrived)) || e.Status != 200 {
				t.Errorf("row body %q size %d status %d, want %q (%d bytes), 200", e.RespBody, e.RespSize, e.Status, bc.arrived, len(bc.arrived))
			}
		})
	}
}

// TestCleanEndStaysClean is the control of TestBreakOffReachesClient: the
// same responses, complete, end cleanly for both clients.
func TestCleanEndStaysClean(t *testing.T) {
	t.Parallel()
	up := rawUpstream(t, func(c net.Conn, _ *http.Request, _ <-chan struct{}) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
			"f\r\ndata: {\"x\":1}\n\n\r\n0\r\n\r\n")
	})
	_, base, stop := recorder(t, up, Options{})
	resp, err := client().Get(base + "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); string(got) != "data: {\"x\":1}\n\n" {
		t.Errorf("got %q", got)
	}
	if curl, _ := exec.LookPath("curl"); curl != "" {
		if out, err := exec.Command(curl, "-sS", "-N", "-o", "/dev/null", base+"/v1/x").CombinedOutput(); err != nil {
			t.Errorf("curl: %v %s, want exit 0", err, out)
		}
	}
	if out := nodeGet(t, base+"/v1/x"); out != "" && !strings.Contains(out, "complete=true") {
		t.Errorf("node saw %q, want a complete response", out)
	}
	for _, e := range stop() {
		if e.Error != "" || e.ClientAborted {
			t.Errorf("row error %q aborted %v, want none", e.Error, e.ClientAborted)
		}
	}
}

// TestUpstreamNeverAnswers: the first-byte timeout answers 504 and the row
// names it.
func TestUpstreamNeverAnswers(t *testing.T) {
	t.Parallel()
	up := rawUpstream(t, func(_ net.Conn, _ *http.Request, done <-chan struct{}) { <-done })
	_, base, stop := recorder(t, up, Options{FirstByteTimeout: 300 * time.Millisecond})
	start := time.Now()
	resp, err := client().Get(base + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "first-byte timeout") {
		t.Errorf("got %d %s, want 504 naming the first-byte timeout", resp.StatusCode, body)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 20*time.Second {
		t.Errorf("answered after %s, want soon after the 300ms timeout", el)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	e := rows[0]
	if !strings.Contains(e.Error, "first-byte timeout") || e.ClientAborted || e.DurationNS < (300*time.Millisecond).Nanoseconds() {
		t.Errorf("row error %q aborted %v duration %s, want the first-byte timeout after >= 300ms", e.Error, e.ClientAborted, time.Duration(e.DurationNS))
	}
}

// TestUpstreamGoesSilent: a stream that stops sending is broken off after
// the idle timeout; the client keeps what came and sees the break-off.
func TestUpstreamGoesSilent(t *testing.T) {
	t.Parallel()
	up := rawUpstream(t, func(c net.Conn, _ *http.Request, done <-chan struct{}) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nf\r\ndata: {\"x\":1}\n\n\r\n")
		<-done
	})
	// Long enough that the first event, sent at once, always beats it.
	_, base, stop := recorder(t, up, Options{IdleTimeout: time.Second})
	resp, err := client().Get(base + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(got) != "data: {\"x\":1}\n\n" {
		t.Errorf("client got %q, %v; want the first event, then an error", got, err)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	if e := rows[0]; !strings.Contains(e.Error, "idle timeout") || e.ClientAborted || string(e.RespBody) != "data: {\"x\":1}\n\n" {
		t.Errorf("row error %q aborted %v body %q, want the idle timeout and the first event", e.Error, e.ClientAborted, e.RespBody)
	}
}

// TestSlowDrip: a stream whose events come slowly but within the idle
// timeout passes whole, each event timed.
func TestSlowDrip(t *testing.T) {
	t.Parallel()
	const events, gap = 5, 100 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			if i > 0 {
				time.Sleep(gap)
			}
			io.WriteString(w, "data: {\"i\":1}\n\n")
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{IdleTimeout: 5 * time.Second})
	resp, err := client().Get(base + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); len(got) != events*len("data: {\"i\":1}\n\n") {
		t.Errorf("client got %d bytes: %q", len(got), got)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	e := rows[0]
	if e.Error != "" || len(e.ChunkOffsetsNS) != events {
		t.Fatalf("row error %q, %d offsets; want none and %d", e.Error, len(e.ChunkOffsetsNS), events)
	}
	// The last event left the upstream (events-1) gaps after the request came.
	if last := time.Duration(e.ChunkOffsetsNS[events-1]); last < (events-1)*gap {
		t.Errorf("last event at %s, want >= %s", last, (events-1)*gap)
	}
}

// TestClientGivesUp: a client that leaves before any response is recorded
// as aborted with the time it waited.
func TestClientGivesUp(t *testing.T) {
	t.Parallel()
	up := rawUpstream(t, func(_ net.Conn, _ *http.Request, done <-chan struct{}) { <-done })
	_, base, stop := recorder(t, up, Options{})
	const wait = 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/models", nil)
	if resp, err := client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request succeeded; want the client's timeout")
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	// The proxy's clock starts when the request reaches it, a little after
	// the client's: half the wait is a margin a busy machine cannot eat.
	if e := rows[0]; !e.ClientAborted || time.Duration(e.DurationNS) < wait/2 {
		t.Errorf("row aborted %v duration %s error %q, want aborted after about %s", e.ClientAborted, time.Duration(e.DurationNS), e.Error, wait)
	}
}

// TestHopByHopAndHost: headers a Connection header names go no further in
// either direction (RFC 9110 §7.6.1), but the row keeps them as sent; the
// host column is the upstream's, the client's Host stays in req_headers.
func TestHopByHopAndHost(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End", "1")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	req, _ := http.NewRequest("GET", base+"/v1/models", nil)
	req.Header.Set("Connection", "X-Hop, Keep-Alive")
	req.Header.Set("X-Hop", "secret-route")
	req.Header.Set("Keep-Alive", "timeout=9")
	req.Header.Set("Te", "gzip")
	req.Header.Set("X-End", "1")
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	got := <-seen
	for _, h := range []string{"X-Hop", "Keep-Alive", "Te"} {
		if v := got.Get(h); v != "" {
			t.Errorf("upstream got %s: %q, want it removed", h, v)
		}
	}
	if got.Get("X-End") != "1" {
		t.Errorf("upstream lost an end-to-end header: %v", got)
	}
	for _, h := range []string{"X-Resp-Hop", "Keep-Alive"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client got %s: %q, want it removed", h, v)
		}
	}
	if resp.Header.Get("X-End") != "1" {
		t.Errorf("client lost an end-to-end header: %v", resp.Header)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	e := rows[0]
	if want := strings.TrimPrefix(up.URL, "http://"); e.Host != want {
		t.Errorf("host column %q, want the upstream's %q", e.Host, want)
	}
	if h := header(e.ReqHeaders, "Host"); h != strings.TrimPrefix(base, "http://") {
		t.Errorf("req_headers Host %q, want the client's %q", h, strings.TrimPrefix(base, "http://"))
	}
	if header(e.ReqHeaders, "X-Hop") != "secret-route" || header(e.RespHeaders, "X-Resp-Hop") != "1" {
		t.Errorf("row lost the hop-by-hop headers as sent: %v / %v", e.ReqHeaders, e.RespHeaders)
	}
}

// TestBreakOffInsideTunnel: the same holds for requests read inside an
// intercepted CONNECT tunnel, which goproxy answers itself.
func TestBreakOffInsideTunnel(t *testing.T) {
	t.Parallel()
	bc := breakOffs[0]
	up := rawUpstream(t, func(c net.Conn, _ *http.Request, _ <-chan struct{}) { io.WriteString(c, bc.raw) })
	host := strings.TrimPrefix(up, "http://")
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0", MITMCADir: t.TempDir()})
	c, err := net.Dial("tcp", r.Addrs()["forward"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", host, host)
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprintf(c, "GET /v1/x HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err == nil || string(got) != bc.arrived {
		t.Errorf("inside a tunnel the client got %q, %v; want %q, then an error", got, err, bc.arrived)
	}
	c.Close()
	if rows := stop(); len(rows) != 1 || !strings.Contains(rows[0].Error, "unexpected EOF") {
		t.Errorf("rows %+v, want one with the upstream's error", rows)
	}
}
