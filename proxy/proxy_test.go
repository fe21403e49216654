package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// TestBinaryBodiesByteExact sends random bodies up to 10 MiB both ways and
// compares every byte on both sides, and what the capture kept under the cap.
func TestBinaryBodiesByteExact(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string][]byte{} // request bodies the upstream received, by X-Case
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream read: %v", err)
		}
		mu.Lock()
		got[r.Header.Get("X-Case")] = b
		mu.Unlock()
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		w.Write(randomBytes(uint64(n)+1, n))
	}))
	defer up.Close()
	const maxBody = 64 << 10
	_, base, stop := recorder(t, up.URL, Options{MaxBody: maxBody})
	c := client()
	sizes := []int{0, 1, 1023, maxBody, maxBody + 1, 1 << 20, 10 << 20}
	for _, n := range sizes {
		for _, chunked := range []string{"", "1"} {
			name := fmt.Sprintf("%d-%s", n, chunked)
			body := randomBytes(uint64(n), n)
			req, _ := http.NewRequest("POST", base+"/blob?n="+strconv.Itoa(n)+"&chunked="+chunked, bytes.NewReader(body))
			req.Header.Set("X-Case", name)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rb := readAll(t, resp)
			if want := randomBytes(uint64(n)+1, n); !bytes.Equal(rb, want) {
				t.Errorf("%s: response body differs (%d bytes, want %d)", name, len(rb), len(want))
			}
			if chunked == "" && resp.ContentLength != int64(n) {
				t.Errorf("%s: Content-Length %d reached the client, want %d", name, resp.ContentLength, n)
			}
			mu.Lock()
			if !bytes.Equal(got[name], body) {
				t.Errorf("%s: upstream got %d different bytes, want %d", name, len(got[name]), n)
			}
			mu.Unlock()
		}
	}
	rows := stop()
	if len(rows) != 2*len(sizes) {
		t.Fatalf("recorded %d exchanges, want %d", len(rows), 2*len(sizes))
	}
	for _, e := range rows {
		n, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(e.Query, "&")[0], "n="))
		keep := min(n, maxBody)
		if e.ReqSize != int64(n) || e.RespSize != int64(n) {
			t.Errorf("%s: sizes %d/%d, want %d", e.Query, e.ReqSize, e.RespSize, n)
		}
		if e.ReqTruncated != (n > maxBody) || e.RespTruncated != (n > maxBody) {
			t.Errorf("%s: truncated %v/%v, want %v", e.Query, e.ReqTruncated, e.RespTruncated, n > maxBody)
		}
		if !bytes.Equal(e.ReqBody, randomBytes(uint64(n), n)[:keep]) || !bytes.Equal(e.RespBody, randomBytes(uint64(n)+1, n)[:keep]) {
			t.Errorf("%s: recorded bodies are not the first %d bytes sent", e.Query, keep)
		}
		if e.Status != 200 || e.Error != "" || e.ClientAborted || e.Service != "svc" || e.Operation != "POST /blob" {
			t.Errorf("%s: recorded %d %q %v %q %q", e.Query, e.Status, e.Error, e.ClientAborted, e.Service, e.Operation)
		}
	}
}

// TestFullDuplexBody: an upstream that answers before it has read the whole
// request body (here it sends an event first, then reads the body, then
// says what it got) must still get every byte, and the client its whole
// response. Go's server by default reads away a request body the handler
// has not finished when the response starts, and closes it: the upload
// would be cut and the transport would close the upstream connection. It
// also caught the race behind random "use of closed network connection"
// break-offs on bodies of 64 KiB.
func TestFullDuplexBody(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "data: got %d %v\n\n", len(b), err)
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{MaxBody: 1 << 10})
	const half = 100 << 10
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/upload", pr)
	req.ContentLength = 2 * half
	go pw.Write(make([]byte, half))
	// Without full duplex the proxy waits for the rest of the body before
	// it answers, and the client sends it only after the first event: the
	// pipe's error ends the wait.
	defer time.AfterFunc(10*time.Second, func() { pw.CloseWithError(errors.New("no first event within 10 s")) }).Stop()
	c := &http.Client{Transport: &http.Transport{}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "data: first\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	go func() {
		pw.Write(make([]byte, half))
		pw.Close()
	}()
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if want := fmt.Sprintf("\ndata: got %d <nil>\n\n", 2*half); string(rest) != want || err != nil {
		t.Fatalf("after the first event %q, %v; want %q", rest, err, want)
	}
	rows := stop()
	if len(rows) != 1 || rows[0].ReqSize != 2*half || rows[0].Error != "" || rows[0].ClientAborted {
		t.Fatalf("recorded %+v", rows)
	}
}

var (
	randomMu    sync.Mutex
	randomCache = map[[2]uint64][]byte{}
)

// randomBytes returns n seeded random bytes; callers must not modify them.
func randomBytes(seed uint64, n int) []byte {
	randomMu.Lock()
	defer randomMu.Unlock()
	key := [2]uint64{seed, uint64(n)}
	if b, ok := randomCache[key]; ok {
		return b
	}
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	b = b[:n:n]
	randomCache[key] = b
	return b
}

// TestGzipPassThrough: Accept-Encoding reaches the upstream as the client
// sent it (or not at all), and compressed bodies reach the client and the
// capture as compressed bytes.
func TestGzipPassThrough(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"model":"m1","usage":{"prompt_tokens":3,"completion_tokens":5},"text":"` + strings.Repeat("hello ", 500) + `"}`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(payload)
	zw.Close()
	var sawAE atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ae := r.Header.Values("Accept-Encoding")
		sawAE.Store(fmt.Sprint(ae))
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zipped.Bytes())
			return
		}
		w.Write(payload)
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	c := client()
	for _, ae := range []string{"gzip, br", ""} {
		req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"m1"}`))
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp)
		want := payload
		if ae != "" {
			want = zipped.Bytes()
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("Content-Encoding %q reached the client, want gzip", resp.Header.Get("Content-Encoding"))
			}
		}
		if !bytes.Equal(b, want) {
			t.Errorf("Accept-Encoding %q: client got %d bytes, want %d as sent", ae, len(b), len(want))
		}
		wantAE := "[]"
		if ae != "" {
			wantAE = "[" + ae + "]"
		}
		if got := sawAE.Load(); got != wantAE {
			t.Errorf("upstream saw Accept-Encoding %v, want %v", got, wantAE)
		}
	}
	rows := stop()
	if len(rows) != 2 {
		t.Fatalf("recorded %d exchanges, want 2", len(rows))
	}
	if !bytes.Equal(rows[0].RespBody, zipped.Bytes()) || header(rows[0].RespHeaders, "Content-Encoding") != "gzip" {
		t.Errorf("capture did not keep the gzip bytes with their Content-Encoding")
	}
	for _, e := range rows {
		if e.Model != "m1" || e.PromptTokens != 3 || e.CompletionTokens != 5 || e.Operation != "chat.completions" {
			t.Errorf("model/usage from a (gzip=%v) body: %q %d %d %q", header(e.RespHeaders, "Content-Encoding"), e.Model, e.PromptTokens, e.CompletionTokens, e.Operation)
		}
	}
}

// TestNDJSONStreamTiming: a chunked NDJSON stream reaches the client line
// by line as the upstream sends it (not in one lump), and the recorded
// offsets match the send times.
func TestNDJSONStreamTiming(t *testing.T) {
	// Not parallel: the 5 ms bound is about the proxy, not about sharing
	// two cores with the 1,000-client test.
	const lines = 6
	gap := 40 * time.Millisecond
	withinOnOneTry(t, 5*time.Millisecond, func() []time.Duration {
		sent := make([]int64, lines)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			for i := range lines {
				time.Sleep(gap)
				sent[i] = time.Now().UnixNano()
				fmt.Fprintf(w, `{"i":%d}`+"\n", i)
				w.(http.Flusher).Flush()
			}
		}))
		defer up.Close()
		_, base, stop := recorder(t, up.URL, Options{})
		resp, err := client().Get(base + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		arrived := make([]int64, 0, lines)
		for {
			_, err := br.ReadBytes('\n')
			if err != nil {
				break
			}
			arrived = append(arrived, time.Now().UnixNano())
		}
		resp.Body.Close()
		if len(arrived) != lines {
			t.Fatalf("client got %d lines, want %d", len(arrived), lines)
		}
		// Line by line: each line reached the client before the upstream
		// sent the next one, 40 ms later (a buffered stream arrives in
		// one lump at the end).
		for i := range lines - 1 {
			if arrived[i] >= sent[i+1] {
				t.Errorf("line %d reached the client %v after it was sent, after line %d was sent: the stream was buffered", i, time.Duration(arrived[i]-sent[i]), i+1)
			}
		}
		rows := stop()
		if len(rows) != 1 {
			t.Fatalf("recorded %d exchanges, want 1", len(rows))
		}
		e := rows[0]
		if !e.Stream || len(e.ChunkOffsetsNS) != lines {
			t.Fatalf("stream %v with %d offsets, want a stream with %d", e.Stream, len(e.ChunkOffsetsNS), lines)
		}
		if e.DurationNS < e.ChunkOffsetsNS[lines-1] || e.TTFBNS <= 0 || e.TTFBNS > e.ChunkOffsetsNS[0] {
			t.Errorf("ttfb %d, duration %d, offsets %v out of order", e.TTFBNS, e.DurationNS, e.ChunkOffsetsNS)
		}
		late := make([]time.Duration, lines)
		for i, off := range e.ChunkOffsetsNS {
			late[i] = time.Duration(e.StartNS + off - sent[i])
		}
		return late
	})
}

// TestUpstreamDown: a 502 with a JSON error to the client and a recorded
// exchange with the error.
func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, base, stop := recorder(t, dead, Options{})
	resp, err := client().Post(base+"/v1/chat/completions?api_key=k", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, resp)
	var msg struct {
		Error struct{ Message string } `json:"error"`
	}
	if resp.StatusCode != http.StatusBadGateway || json.Unmarshal(b, &msg) != nil || msg.Error.Message == "" {
		t.Errorf("client got %d %s, want 502 with a JSON error", resp.StatusCode, b)
	}
	rows := stop()
	if len(rows) != 1 || rows[0].Error == "" || rows[0].Status != 0 || rows[0].Operation != "chat.completions" {
		t.Fatalf("recorded %+v, want one chat.completions exchange with an error and status 0", rows)
	}
	if strings.Contains(rows[0].Error, "api_key") {
		t.Errorf("error text carries the URL: %q", rows[0].Error)
	}
}

// TestClientAbort: a client leaving mid-stream is recorded as aborted and
// the upstream request is cancelled.
func TestClientAbort(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				break
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(cancelled)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		close(cancelled)
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	resp, err := client().Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	br.ReadString('\n')
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request was not cancelled after the client left")
	}
	rows := stop()
	if len(rows) != 1 || !rows[0].ClientAborted || !rows[0].Stream {
		t.Fatalf("recorded %+v, want one aborted stream", rows)
	}
}

// TestWebSocketPassThrough: the upgrade goes through, frames flow both
// ways, and the exchange is recorded as a 101 without a body.
func TestWebSocketPassThrough(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		// Echo raw bytes: frame contents do not matter to the proxy.
		line, _ := brw.ReadString('\n')
		conn.Write([]byte("echo:" + line))
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	conn.Write([]byte("ping\n"))
	line, err := br.ReadString('\n')
	if line != "echo:ping\n" {
		t.Fatalf("relayed %q (%v), want echo:ping", line, err)
	}
	conn.Close()
	rows := stop()
	if len(rows) != 1 || rows[0].Status != 101 || len(rows[0].RespBody) != 0 {
		t.Fatalf("recorded %+v, want one 101 without a body", rows)
	}
}

// TestShutdownDrains: an exchange in flight when Shutdown starts finishes
// and is recorded; new connections are refused.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "late but whole")
	}))
	defer up.Close()
	r, base, _ := recorder(t, up.URL, Options{DrainTimeout: 5 * time.Second})
	done := make(chan string, 1)
	go func() {
		resp, err := client().Get(base + "/slow")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	<-started
	tot, err := r.Shutdown(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "late but whole" {
		t.Errorf("in-flight client got %q", got)
	}
	if tot.Exchanges != 1 || tot.Written != 1 || tot.Dropped != 0 {
		t.Errorf("totals %+v, want 1 written", tot)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Errorf("still accepting after Shutdown")
	}
}

// TestShutdownCutsOff: past the drain timeout a stream is cut and recorded.
func TestShutdownCutsOff(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer up.Close()
	r, base, _ := recorder(t, up.URL, Options{DrainTimeout: 200 * time.Millisecond})
	resp, err := client().Get(base + "/forever")
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, resp.Body)
	tot, err := r.Shutdown(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tot.Written != 1 {
		t.Errorf("totals %+v: the cut-off stream was not recorded", tot)
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r, err := New(Options{Routes: []Route{
		{Name: "a", Listen: "127.0.0.1:0", Upstream: mustURL(t, "http://127.0.0.1:1")},
		{Name: "b", Listen: ln.Addr().String(), Upstream: mustURL(t, "http://127.0.0.1:1")},
	}, sink: &memSink{}})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Start()
	if err == nil || !strings.Contains(err.Error(), "route b") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Start on a used port: %v, want an error naming route b and its address", err)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	up := mustURL(t, "http://127.0.0.1:1")
	cases := map[string]Options{
		"nothing to listen on": {Out: t.TempDir()},
		"output directory":     {Routes: []Route{{Name: "a", Listen: ":0", Upstream: up}}},
		"given twice":          {Out: t.TempDir(), Routes: []Route{{Name: "a", Listen: ":0", Upstream: up}, {Name: "a", Listen: ":0", Upstream: up}}},
		"needs --forward":      {Out: t.TempDir(), MITMCADir: t.TempDir(), Routes: []Route{{Name: "a", Listen: ":0", Upstream: up}}},
	}
	for want, o := range cases {
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want an error mentioning %q", err, want)
		}
	}
}

// TestConcurrentClients: 1,000 clients at once, every exchange recorded.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	const clients = 1000
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // keep them overlapping
		io.WriteString(w, r.URL.Query().Get("i"))
	}))
	defer up.Close()
	up.Config.SetKeepAlivesEnabled(true)
	_, base, stop := recorder(t, up.URL, Options{})
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var wg sync.WaitGroup
	var bad atomic.Int64
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := c.Get(base + "/c?i=" + strconv.Itoa(i))
			if err != nil {
				bad.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != strconv.Itoa(i) {
				bad.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	tr.CloseIdleConnections()
	if bad.Load() != 0 {
		t.Errorf("%d of %d clients got an error or someone else's answer", bad.Load(), clients)
	}
	rows := stop()
	if len(rows) != clients {
		t.Errorf("recorded %d exchanges, want %d", len(rows), clients)
	}
	seen := map[string]bool{}
	for _, e := range rows {
		if seen[e.ID] {
			t.Fatalf("id %s recorded twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// TestDropsWhenWriterIsBehind: a writer that cannot keep up costs records,
// counted, never traffic.
func TestDropsWhenWriterIsBehind(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	sink := &slowSink{release: make(chan struct{})}
	r, err := New(Options{Routes: []Route{{Name: "s", Listen: "127.0.0.1:0", Upstream: mustURL(t, up.URL)}}, sink: sink, QueueLen: 4, LiveEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.Addrs()["s"]
	c := client()
	for i := range 50 {
		if i == 1 {
			time.Sleep(300 * time.Millisecond) // the writer takes the first row and blocks in Write
		}
		resp, err := c.Get(base + "/x")
		if err != nil {
			t.Fatal(err)
		}
		if b := readAll(t, resp); string(b) != "ok" {
			t.Fatalf("got %q", b)
		}
	}
	close(sink.release)
	tot, err := r.Shutdown(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tot.Exchanges != 50 || tot.Dropped == 0 || tot.Written+tot.Dropped != 50 {
		t.Errorf("totals %+v, want 50 exchanges, some dropped, written+dropped = 50", tot)
	}
	if sink.meta["loadtape.record.dropped"] != strconv.FormatInt(tot.Dropped, 10) {
		t.Errorf("metadata %v does not carry the drop count %d", sink.meta, tot.Dropped)
	}
}

type slowSink struct {
	memSink
	release chan struct{}
}

func (s *slowSink) Write(rows ...captures.Exchange) error {
	<-s.release
	return s.memSink.Write(rows...)
}
