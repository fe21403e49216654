package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// rawServer answers each request on a connection with what answer writes,
// byte for byte; answer reports whether the connection stays open.
func rawServer(t *testing.T, answer func(c net.Conn, req *http.Request, n int) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // ends when the client or answer closes the connection
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; n < 1000; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if !answer(c, req, n) {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// clients are replay's transport with and without the HTTP/1.1 client.
func clients(t *testing.T) (netHTTP, h1 *http.Client) {
	a, b := newTransport(), newTransport()
	a.h1 = false
	t.Cleanup(func() { a.CloseIdleConnections(); b.CloseIdleConnections() })
	return &http.Client{Transport: a}, &http.Client{Transport: b}
}

var portRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// comparable is what two sends of the same exchange must agree on: the
// row without its clock readings (only whether each was taken) and what
// replay's checks read of the answer.
func comparable(r *captures.Result, resp *response) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status=%d kind=%q error=%q bytes_out=%d bytes_in=%d chunks=%d tokens=%d/%d ttfb=%v ttft=%v",
		r.Status, r.ErrorKind, portRE.ReplaceAllString(r.Error, "ADDR"), r.BytesOut, r.BytesIn,
		len(r.ChunkOffsetsNS), r.PromptTokens, r.CompletionTokens, r.TTFBNS > 0, r.TTFTNS > 0)
	if resp != nil {
		fmt.Fprintf(&b, " | answer %d body=%q sse=%q badjson=%q", resp.status, resp.body, resp.sseError, resp.badJSON)
		for _, k := range []string{"Content-Type", "x-test", "Connection", "Transfer-Encoding", "Content-Length", "Etag"} {
			fmt.Fprintf(&b, " %s=%q", k, resp.header.Get(k))
		}
	}
	return b.String()
}

// TestH1RowsMatchNetHTTP sends the same exchanges through net/http's
// client and the HTTP/1.1 client, against the same servers, faults
// included, and compares the rows.
func TestH1RowsMatchNetHTTP(t *testing.T) {
	t.Parallel()
	sse := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Test", "sse")
		f := w.(http.Flusher)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n")
		f.Flush()
		time.Sleep(5 * time.Millisecond)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		f.Flush()
		time.Sleep(5 * time.Millisecond)
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n")
	}
	handler := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	raw := func(answer string, keep bool) string {
		return rawServer(t, func(c net.Conn, _ *http.Request, _ int) bool {
			io.WriteString(c, answer)
			return keep
		})
	}
	// Closes the connection instead of answering its second request: the
	// request was sent on a kept-alive connection that broke before any
	// answer, which net/http sends again only if it is replayable (GET).
	secondUnanswered := func() string {
		return rawServer(t, func(c net.Conn, _ *http.Request, n int) bool {
			if n == 1 {
				return false
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
	}
	cases := []struct {
		name    string
		url     string
		method  string
		body    string
		timeout time.Duration
		sends   int           // in a row on the same client
		gap     time.Duration // between them
	}{
		{name: "json with content length", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`)
		}), method: "POST", body: `{"a":1}`, sends: 3},
		{name: "chunked json", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"x":`)
			w.(http.Flusher).Flush()
			fmt.Fprint(w, `1}`)
		}), method: "GET", sends: 2},
		{name: "sse stream", url: handler(sse), method: "POST", body: `{"stream":true}`, sends: 2},
		{name: "ndjson", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			for i := range 3 {
				fmt.Fprintf(w, "{\"i\":%d}\n", i)
				w.(http.Flusher).Flush()
			}
		}), method: "GET", sends: 2},
		{name: "head", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "12")
		}), method: "HEAD", sends: 3},
		{name: "204 then 304", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}), method: "DELETE", sends: 2},
		{name: "304", url: raw("HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", true), method: "GET", sends: 3},
		{name: "1xx before the answer", url: raw("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Test: after-103\r\n\r\nok", true), method: "GET", sends: 2},
		{name: "trailer", url: raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", true), method: "GET", sends: 3},
		{name: "chunk extension", url: raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n", true), method: "GET", sends: 2},
		{name: "until close", url: raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", false), method: "GET", sends: 3},
		{name: "http/1.0", url: raw("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false), method: "GET", sends: 2},
		{name: "connection close", url: raw("HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 13\r\n\r\nout of memory", false), method: "POST", body: "{}", sends: 3},
		// Sent at once after the answer, the next request may find the
		// connection open or closed, on either client: a gap lets the
		// close arrive first, as an idle connection the server timed out.
		{name: "closed between requests, no header", url: raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false), method: "POST", body: "{}", sends: 4, gap: 20 * time.Millisecond},
		{name: "closed between requests, get", url: raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false), method: "GET", sends: 4, gap: 20 * time.Millisecond},
		{name: "closed instead of the second answer, get", url: secondUnanswered(), method: "GET", sends: 3},
		{name: "closed instead of the second answer, post", url: secondUnanswered(), method: "POST", body: "{}", sends: 3},
		{name: "break-off mid-chunk", url: raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", false), method: "GET", sends: 2},
		{name: "break-off mid-content-length", url: raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", false), method: "POST", body: "x", sends: 2},
		{name: "break-off in the headers", url: raw("HTTP/1.1 200 OK\r\nContent-Le", false), method: "GET", sends: 2},
		{name: "closed before any answer", url: raw("", false), method: "POST", body: "x", sends: 2},
		{name: "malformed status", url: raw("HTTP/1.1 2x0 OK\r\n\r\n", false), method: "GET", sends: 1},
		{name: "bad content length", url: raw("HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", false), method: "GET", sends: 1},
		{name: "unsupported transfer encoding", url: raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false), method: "GET", sends: 1},
		{name: "folded header", url: raw("HTTP/1.1 200 OK\r\nX-Test: a\r\n b\r\nContent-Length: 0\r\n\r\n", true), method: "GET", sends: 2},
		{name: "repeated and odd headers", url: raw("HTTP/1.1 200 OK\r\nX-Test: one\r\nX-Test: two\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: keep-alive, Close\r\nX-Empty:\r\n\r\nok", false), method: "GET", sends: 2},
		{name: "differing content lengths", url: raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false), method: "GET", sends: 1},
		{name: "bare LF lines", url: raw("HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}", true), method: "GET", sends: 2},
		{name: "lower-case headers", url: raw("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3\r\nx-test:  v \r\n\r\n{x}", true), method: "GET", sends: 2},
		{name: "slow first byte past the timeout", url: handler(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(400 * time.Millisecond)
		}), method: "GET", timeout: 100 * time.Millisecond, sends: 1},
		{name: "slow body past the timeout", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {}\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(400 * time.Millisecond)
		}), method: "GET", timeout: 150 * time.Millisecond, sends: 1},
		{name: "refused", url: func() string {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			ln.Close()
			return "http://" + ln.Addr().String()
		}(), method: "GET", sends: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			timeout := c.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			std, h1 := clients(t)
			var want, got []string
			for _, cl := range []*http.Client{std, h1} {
				for i := range c.sends {
					time.Sleep(c.gap)
					o := &outgoing{method: c.method, url: c.url + "/v1/x?q=1", header: http.Header{"Content-Type": {"application/json"}}, body: []byte(c.body)}
					var r captures.Result
					resp := send(context.Background(), cl, timeout, o, &r)
					line := fmt.Sprintf("send %d: %s", i+1, comparable(&r, resp))
					if c.timeout > 0 && r.ErrorKind == "timeout" && time.Duration(r.DurationNS) < c.timeout {
						line += fmt.Sprintf(" (timed out after %v, before its timeout)", time.Duration(r.DurationNS))
					}
					if cl == std {
						want = append(want, line)
					} else {
						got = append(got, line)
					}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("HTTP/1.1 client:\n%s\nnet/http:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestH1CutOff: a request cut off by its context ends at once as cut off,
// on both clients, and the connection is not used again.
func TestH1CutOff(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	defer srv.Close()
	std, h1 := clients(t)
	for _, cl := range []*http.Client{std, h1} {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("the stage ended")) })
		var r captures.Result
		began := time.Now()
		send(ctx, cl, 10*time.Second, &outgoing{method: "GET", url: srv.URL, header: http.Header{}}, &r)
		if el := time.Since(began); el > 2*time.Second {
			t.Errorf("cut off after %v, want at once", el)
		}
		if r.ErrorKind != "cut_off" || r.Error != "cut off: the stage ended" {
			t.Errorf("h1 %v: kind %q error %q, want cut_off", cl == h1, r.ErrorKind, r.Error)
		}
	}
}

// TestH1ConnectionCap: with a cap of one connection, two users take turns
// on it and the second's clock starts when it got it, as on net/http.
func TestH1ConnectionCap(t *testing.T) {
	t.Parallel()
	var open sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open.Store(r.RemoteAddr, true)
		time.Sleep(200 * time.Millisecond)
	}))
	srv.Start()
	defer srv.Close()
	tr := newTransport()
	tr.MaxConnsPerHost = 1
	cl := &http.Client{Transport: tr}
	defer cl.CloseIdleConnections()
	rows := make([]captures.Result, 3)
	var wg sync.WaitGroup
	for i := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(context.Background(), cl, 10*time.Second, &outgoing{method: "GET", url: srv.URL, header: http.Header{}}, &rows[i])
		}()
	}
	wg.Wait()
	n := 0
	open.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	for _, r := range rows {
		if r.Status != 200 || time.Duration(r.DurationNS) > 450*time.Millisecond {
			t.Errorf("row %+v, want 200 within its own 200 ms", r)
		}
	}
}

// TestSentFieldsAreNamed: every field of a result row is either set before
// its request is sent (and carried by a cut-off row) or measured while it
// runs, so that a new field is sorted into one or the other.
func TestSentFieldsAreNamed(t *testing.T) {
	sent := map[string]bool{"Run": true, "Scenario": true, "Stage": true, "StageName": true, "StageUsers": true,
		"VU": true, "Iteration": true, "Operation": true, "Service": true, "SourceID": true, "IntendedNS": true,
		"ActiveUsers": true, "BytesOut": true, "StartNS": true}
	measured := map[string]bool{"TTFBNS": true, "TTFTNS": true, "DurationNS": true, "ChunkOffsetsNS": true,
		"Status": true, "ErrorKind": true, "Error": true, "BytesIn": true, "PromptTokens": true, "CompletionTokens": true}
	var full captures.Result
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		if !sent[name] && !measured[name] {
			t.Errorf("captures.Result.%s is neither sent nor measured: add it to sentRow or to this test's measured", name)
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int32, reflect.Int64:
			f.SetInt(7)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]int64{1}))
		}
	}
	got := reflect.ValueOf(sentRow(&full, 9))
	for i := range got.NumField() {
		name := v.Type().Field(i).Name
		zero := got.Field(i).IsZero()
		switch {
		case name == "StartNS":
			if got.Field(i).Int() != 9 {
				t.Errorf("StartNS %d, want the start as sent", got.Field(i).Int())
			}
		case sent[name] && zero:
			t.Errorf("sentRow leaves %s out", name)
		case measured[name] && !zero:
			t.Errorf("sentRow copies %s, measured while the request runs", name)
		}
	}
}

// FuzzH1ReadsAsNetHTTP reads arbitrary answer bytes with the HTTP/1.1
// client's reader and with net/http's ReadResponse (skipping 1xx answers
// as its transport does) and compares what each makes of them: failing or
// not, the status, headers replay reads, the body and whether it broke off.
func FuzzH1ReadsAsNetHTTP(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 103 Early\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nrest",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nx-a:  b \r\n\r\nabc",
		"HTTP/1.1 200 OK\nA: b\n c\n\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		c := &h1Conn{br: bufio.NewReaderSize(bytes.NewReader(data), 4<<10)}
		c.tp.R = c.br
		var mine string
		h, err := c.readHead(method)
		if err != nil {
			mine = "error"
		} else {
			body, berr := io.ReadAll(io.LimitReader(c.body(&h), 1<<20))
			mine = fmt.Sprintf("%d ct=%q cl=%q a=%q conn=%q te=%q body=%q broke=%v", h.status, h.ctype,
				h.header.Get("Content-Length"), h.header.Get("X-A"), h.header.Get("Connection"),
				h.header.Get("Transfer-Encoding"), body, berr != nil)
		}
		var theirs string
		br := bufio.NewReaderSize(bytes.NewReader(data), 4<<10)
		var resp *http.Response
		for range max1xx + 1 {
			resp, err = http.ReadResponse(br, &http.Request{Method: method})
			if err != nil || resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == 101 {
				break
			}
			resp, err = nil, errToo1xx
		}
		if err != nil {
			theirs = "error"
		} else {
			body, berr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			theirs = fmt.Sprintf("%d ct=%q cl=%q a=%q conn=%q te=%q body=%q broke=%v", resp.StatusCode, resp.Header.Get("Content-Type"),
				resp.Header.Get("Content-Length"), resp.Header.Get("X-A"), resp.Header.Get("Connection"),
				resp.Header.Get("Transfer-Encoding"), body, berr != nil)
		}
		if mine != theirs {
			t.Errorf("answer %q (%s):\nHTTP/1.1 client: %s\nnet/http:        %s", data, method, mine, theirs)
		}
	})
}
