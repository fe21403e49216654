package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// maxKeep bounds how much of a response body is kept in memory for
// validation, checks and the error text; the rest is only counted.
const maxKeep = 1 << 20

// errorPrefixLen is how much of a failing body goes into Result.Error: the
// analyser looks there for texts like "out of memory".
const errorPrefixLen = 300

// errRequestTimeout is the cause of a request context that ran past
// --request-timeout, telling a timeout apart from a stage cut-off.
var errRequestTimeout = errors.New("request timeout")

// outgoing is one request ready to send.
type outgoing struct {
	method string
	url    string
	header http.Header
	body   []byte
	rpcID  string // live JSON-RPC id (its JSON text) of an MCP request; "" otherwise

	// wire is the request encoded for the HTTP/1.1 client (h1.go), once
	// for every time it is sent (prepared); nil otherwise, when send
	// encodes it per request. noWire: prepared, and not for that client.
	wire   *wire
	noWire bool
}

// prepared holds each recorded exchange's request ready to send, made the
// first time it is replayed: its URL, headers and bytes are the same every
// time, and building them per request (URL, header map, net/http's
// request) was a fifth of the allocations of a request.
type prepared struct{ m sync.Map } // *captures.Exchange → *outgoing

// outgoing is x's request to tgt with the run's header overrides. The
// caller must not change it: users share it.
func (p *prepared) outgoing(x *captures.Exchange, tgt *target, extra http.Header) *outgoing {
	if o, ok := p.m.Load(x); ok {
		return o.(*outgoing)
	}
	o := &outgoing{method: x.Method, url: tgt.url(x), header: headers(x, extra), body: x.ReqBody}
	if o.wire = encodeWire(o); o.wire == nil {
		o.noWire = true
	}
	got, _ := p.m.LoadOrStore(x, o)
	return got.(*outgoing)
}

// response is what the measuring read kept of a response.
type response struct {
	status   int
	header   answerHeader
	body     []byte          // first maxKeep bytes
	rpc      json.RawMessage // MCP: the JSON-RPC message answering rpcID
	sseError string          // an SSE event carried an error after a 200
	badJSON  string          // the body (or an SSE data line) was not valid JSON
	wantRPC  bool            // an MCP request that must be answered
}

// bufPool holds read buffers: one per request would be most of the
// garbage at high rates. An event stream reads into a smaller one: it
// holds its buffer for as long as the stream lasts, and its events come
// a few hundred bytes at a time (16 KiB each was 160 MB at 10,000 streams).
var (
	bufPool       = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
	streamBufPool = sync.Pool{New: func() any { b := make([]byte, 2<<10); return &b }}
)

// newTransport is tuned for load: many idle connections to one host, no
// proxy from the environment, no transparent gzip (bytes_in, chunk timing and
// SSE parsing see what the server sent); plain http:// requests of send go
// through the HTTP/1.1 client (h1.go).
func newTransport() *loadTransport {
	return &loadTransport{h1: true, Transport: newHTTPTransport()}
}

func newHTTPTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   4096,
		MaxConnsPerHost:       connLimit(),
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ExpectContinueTimeout: 0,
	}
}

// connLimit is the most connections to one host the transport opens: the
// open files limit less what the run keeps for itself (0, no cap, when
// unknown). Users past it (closed users that think: capacity.go) wait for
// a connection another user finished with, and the wait shows as send
// lag, not as the target's latency (waitedStart), nor as a failed dial.
func connLimit() int { return connLimitOf(openFileLimit()) }

func connLimitOf(fds uint64) int {
	if fds == 0 {
		return 0
	}
	return max(int(fds)-fdReserve, 1)
}

// sendingNow counts the requests of send between Do and the end of their
// body, all runs of the process together: only once it reaches a
// transport's connection cap can a request wait for a connection.
var sendingNow atomic.Int64

// waitedStart moves a request's start past a wait for a connection where
// the transport's cap may be reached: to the start of its dial, or to
// when it got an idle connection. It returns the context to send under
// and the clock to read after Do; nil when no wait is possible.
func waitedStart(ctx context.Context, client *http.Client) (context.Context, *atomic.Int64) {
	t, ok := client.Transport.(*http.Transport)
	if lt, isLoad := client.Transport.(*loadTransport); isLoad {
		t, ok = lt.Transport, true
	}
	if !ok || t.MaxConnsPerHost == 0 || sendingNow.Load() < int64(t.MaxConnsPerHost) {
		return ctx, nil
	}
	at := new(atomic.Int64) // set from the dialling goroutine too
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectStart: func(string, string) { at.CompareAndSwap(0, time.Now().UnixNano()) },
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				at.Store(time.Now().UnixNano())
			}
		},
	}), at
}

// send sends o and measures it into r (StartNS, TTFBNS, TTFTNS, DurationNS,
// ChunkOffsetsNS, Status, BytesOut, BytesIn, tokens, and ErrorKind/Error for
// transport failures and cut-offs). Protocol checks happen in the caller.
func send(ctx context.Context, client *http.Client, timeout time.Duration, o *outgoing, r *captures.Result) *response {
	if lt, ok := client.Transport.(*loadTransport); ok && !o.noWire && lt.h1Usable() {
		w := o.wire
		if w == nil {
			w = encodeWire(o)
		}
		if w != nil {
			return sendH1(ctx, lt.poolOf(w), timeout, o, w, r)
		}
	}
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, errRequestTimeout)
	defer cancel()
	tctx, waited := waitedStart(rctx, client)
	req, err := http.NewRequestWithContext(tctx, o.method, o.url, bytes.NewReader(o.body))
	if err != nil {
		r.StartNS = time.Now().UnixNano()
		r.ErrorKind, r.Error = runspec.ErrConnection, err.Error()
		return nil
	}
	if len(o.body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header = o.header
	if h := o.header.Get("Host"); h != "" {
		req.Host = h
	}
	r.BytesOut = int64(len(o.body))
	start := time.Now()
	r.StartNS = start.UnixNano()
	sending(ctx, r)
	sendingNow.Add(1)
	defer sendingNow.Add(-1)
	resp, err := client.Do(req)
	if waited != nil {
		if at := waited.Load(); at > r.StartNS {
			start = time.Unix(0, at)
			r.StartNS = at
		}
	}
	if err != nil {
		r.DurationNS = int64(time.Since(start))
		failTransport(rctx, ctx, err, r)
		return nil
	}
	r.TTFBNS = int64(time.Since(start))
	r.Status = int32(resp.StatusCode)
	out := &response{status: resp.StatusCode, header: headerOf(resp.Header), wantRPC: o.rpcID != ""}
	err = readBody(resp.Body, resp.Header.Get("Content-Type"), start, o.rpcID, r, out)
	resp.Body.Close()
	r.DurationNS = int64(time.Since(start))
	if err != nil {
		failTransport(rctx, ctx, err, r)
	}
	return out
}

// sendHeld sends o under ctx, a stream's own context that cancel ends, and
// measures it into r up to the response headers (DurationNS = TTFBNS): the
// body of a 2xx answer is returned for the caller to hold open and close
// by cancelling ctx; any other answer's body is read (it is short) and
// nil returned. The request timeout applies to the headers only. parent
// is the user's context, telling a cut-off from a timeout.
func sendHeld(ctx context.Context, cancel context.CancelCauseFunc, parent context.Context, client *http.Client, timeout time.Duration, o *outgoing, r *captures.Result) (*response, io.ReadCloser) {
	req, err := http.NewRequestWithContext(ctx, o.method, o.url, http.NoBody)
	if err != nil {
		r.StartNS = time.Now().UnixNano()
		r.ErrorKind, r.Error = runspec.ErrConnection, err.Error()
		return nil, nil
	}
	req.Header = o.header
	if h := o.header.Get("Host"); h != "" {
		req.Host = h
	}
	start := time.Now()
	r.StartNS = start.UnixNano()
	sending(ctx, r)
	tm := time.AfterFunc(timeout, func() { cancel(errRequestTimeout) })
	resp, err := client.Do(req)
	tm.Stop()
	r.TTFBNS = int64(time.Since(start))
	r.DurationNS = r.TTFBNS
	if err != nil {
		r.TTFBNS = 0
		failTransport(ctx, parent, err, r)
		return nil, nil
	}
	r.Status = int32(resp.StatusCode)
	out := &response{status: resp.StatusCode, header: headerOf(resp.Header)}
	if resp.StatusCode/100 == 2 {
		return out, resp.Body
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxKeep))
	resp.Body.Close()
	out.body = b
	r.BytesIn = int64(len(b))
	r.DurationNS = int64(time.Since(start))
	return out, nil
}

// failTransport names a failure that left no usable response.
func failTransport(rctx, parent context.Context, err error, r *captures.Result) {
	switch {
	case parent.Err() != nil:
		r.ErrorKind, r.Error = runspec.ErrCutOff, "cut off: "+context.Cause(parent).Error()
	case errors.Is(context.Cause(rctx), errRequestTimeout):
		r.ErrorKind, r.Error = runspec.ErrTimeout, "request timeout"
	default:
		r.ErrorKind, r.Error = runspec.ClassifyTransport(err), err.Error()
	}
}

// readBody reads the whole body, of content type ctype, timing chunks: one
// offset per SSE event for text/event-stream, per line for NDJSON, none
// for plain bodies.
func readBody(body io.Reader, ctype string, start time.Time, rpcID string, r *captures.Result, out *response) error {
	ct := mediaType(ctype)
	var sse *sseParser
	ndjson := ct == "application/x-ndjson" || ct == "application/jsonl"
	if ct == "text/event-stream" {
		sse = &sseParser{rpcID: rpcID, r: r, out: out}
	}
	pool := &bufPool
	if sse != nil {
		pool = &streamBufPool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	var n64 int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			at := int64(time.Since(start))
			n64 += int64(n)
			chunk := buf[:n]
			if len(out.body) < maxKeep {
				keep := chunk
				if room := maxKeep - len(out.body); len(keep) > room {
					keep = keep[:room]
				}
				out.body = append(out.body, keep...)
			}
			switch {
			case sse != nil:
				sse.feed(chunk, at)
			case ndjson:
				for range bytes.Count(chunk, []byte{'\n'}) {
					r.ChunkOffsetsNS = append(r.ChunkOffsetsNS, at)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			r.BytesIn = n64
			return err
		}
	}
	r.BytesIn = n64
	if sse != nil {
		sse.flush(int64(time.Since(start)))
		return nil
	}
	if ct == "application/json" || strings.HasSuffix(ct, "+json") {
		if len(out.body) > 0 && len(out.body) < maxKeep && !json.Valid(out.body) {
			out.badJSON = "response body is not valid JSON"
			return nil
		}
		if len(out.body) > 0 && len(out.body) < maxKeep {
			inspectJSON(out.body, rpcID, r, out)
		}
	}
	return nil
}

// mediaType is mime.ParseMediaType's media type (lower case; "" when it
// does not parse) without building its parameter map for a plain
// "type/subtype", which most answers carry.
func mediaType(v string) string {
	if strings.IndexByte(v, ';') < 0 {
		t := strings.ToLower(strings.TrimSpace(v))
		if typ, sub, ok := strings.Cut(t, "/"); ok && typ != "" && sub != "" && tokenOnly(typ) && tokenOnly(sub) {
			return t
		}
	}
	ct, _, _ := mime.ParseMediaType(v)
	return ct
}

// chunkJSON is the part of an OpenAI response or stream chunk replay reads.
type chunkJSON struct {
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
		} `json:"delta"`
		Text string `json:"text"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
	ID    json.RawMessage `json:"id"`
}

// inspectJSON reads usage from a plain JSON body and, for MCP, picks the
// JSON-RPC message answering rpcID (a single message or a batch).
func inspectJSON(b []byte, rpcID string, r *captures.Result, out *response) {
	if rpcID != "" {
		out.rpc = matchRPC(b, rpcID)
		return
	}
	if !bytes.Contains(b, []byte(`"usage"`)) {
		return
	}
	var c chunkJSON
	if json.Unmarshal(b, &c) == nil && c.Usage != nil {
		r.PromptTokens, r.CompletionTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
	}
}

func matchRPC(b []byte, rpcID string) json.RawMessage {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(b, &batch) != nil {
			return nil
		}
		for _, m := range batch {
			if rpcIDOf(m) == rpcID {
				return m
			}
		}
		return nil
	}
	if rpcIDOf(b) == rpcID {
		return b
	}
	return nil
}

func rpcIDOf(m []byte) string {
	var v struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(m, &v) != nil || v.Method != "" {
		return "" // a request or notification from the server, not our answer
	}
	return string(bytes.TrimSpace(v.ID))
}

// sseParser splits a text/event-stream into events as bytes arrive, timing
// each event by the read that completed it.
type sseParser struct {
	rpcID   string
	r       *captures.Result
	out     *response
	pending []byte
	event   string
	data    []byte
	hasData bool
}

func (p *sseParser) feed(b []byte, at int64) {
	p.pending = append(p.pending, b...)
	for {
		i := bytes.IndexByte(p.pending, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(p.pending[:i], []byte{'\r'})
		p.line(line, at)
		p.pending = p.pending[i+1:]
	}
	// Keep the buffer from growing without bound on a stream of long lines.
	if len(p.pending) == 0 {
		p.pending = p.pending[:0:0]
	}
}

func (p *sseParser) flush(at int64) {
	if len(p.pending) > 0 {
		p.line(p.pending, at)
		p.pending = nil
	}
	p.line(nil, at)
}

func (p *sseParser) line(line []byte, at int64) {
	if len(line) == 0 {
		if p.hasData || p.event != "" {
			p.dispatch(at)
		}
		p.event, p.data, p.hasData = "", p.data[:0], false
		return
	}
	if line[0] == ':' {
		return // comment / keep-alive
	}
	field, value, _ := bytes.Cut(line, []byte{':'})
	value = bytes.TrimPrefix(value, []byte{' '})
	switch string(field) {
	case "event":
		p.event = string(value)
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	}
}

// dispatch handles one complete event. TTFT is the first event whose
// choices carry non-empty delta content (or text, or reasoning content): a
// role-only first chunk does not count.
func (p *sseParser) dispatch(at int64) {
	r := p.r
	r.ChunkOffsetsNS = append(r.ChunkOffsetsNS, at)
	data := bytes.TrimSpace(p.data)
	if p.event == "error" && p.out.sseError == "" {
		p.out.sseError = "SSE error event: " + prefix(data, errorPrefixLen)
	}
	if len(data) == 0 || string(data) == "[DONE]" {
		return
	}
	if p.rpcID != "" {
		if p.out.rpc == nil {
			if m := matchRPC(data, p.rpcID); m != nil {
				p.out.rpc = append(json.RawMessage(nil), m...)
			}
		}
		return
	}
	if data[0] != '{' {
		return
	}
	// Once the first token is timed, most chunks only need to be valid JSON:
	// decode just the ones that can carry usage or an error.
	if r.TTFTNS != 0 && !bytes.Contains(data, []byte(`"usage"`)) && !bytes.Contains(data, []byte(`"error"`)) {
		if !json.Valid(data) && p.out.badJSON == "" {
			p.out.badJSON = "SSE data is not valid JSON: " + prefix(data, 100)
		}
		return
	}
	var c chunkJSON
	if err := json.Unmarshal(data, &c); err != nil {
		if p.out.badJSON == "" {
			p.out.badJSON = "SSE data is not valid JSON: " + prefix(data, 100)
		}
		return
	}
	if len(c.Error) > 0 && string(c.Error) != "null" && p.out.sseError == "" {
		p.out.sseError = "SSE error event after 200: " + prefix(data, errorPrefixLen)
	}
	if r.TTFTNS == 0 {
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" || ch.Text != "" || ch.Delta.ReasoningContent != "" {
				r.TTFTNS = at
				break
			}
		}
	}
	if c.Usage != nil {
		r.PromptTokens, r.CompletionTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
	}
}

func prefix(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// httpError names a failing status, keeping a prefix of its body.
func httpError(status int, body []byte) string {
	return fmt.Sprintf("HTTP %d: %s", status, prefix(bytes.TrimSpace(body), errorPrefixLen))
}
