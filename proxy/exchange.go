package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// exchange is one request/response pair in flight. The proxy goroutine
// fills it; once finished it is handed to the writer goroutine, which owns
// it from then on and turns it into a captures.Exchange.
type exchange struct {
	rec     *Recorder
	start   time.Time
	service string // route name; empty in forward mode until classified

	method, scheme, host, path, query string
	client                            string // client IP
	reqHeader                         http.Header
	hopHeader                         []hopValue // client headers goproxy removes from reqHeader
	reqBody                           *reqTee

	// Set when response headers arrive (or the round trip fails).
	ttfb       time.Duration
	status     int
	respHeader http.Header
	resp       *respTee
	operation  string
	session    string
	seq        int64
	rpc        rpcInfo
	isRPC      bool

	errText string
	aborted bool
	queued  int64 // bytes counted against the queue bound

	once sync.Once
}

type exchangeKey struct{}

// hopHeaders are the request headers goproxy's RemoveProxyHeaders deletes.
var hopHeaders = []string{"Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Connection"}

type hopValue struct {
	name   string
	values []string
}

// begin starts an exchange for a request as the client sent it.
func (r *Recorder) begin(req *http.Request, service string) *exchange {
	r.inflight.Add(1)
	x := &exchange{
		rec:     r,
		start:   time.Now(),
		service: service,
		method:  req.Method,
		path:    req.URL.Path,
		query:   req.URL.RawQuery,
		host:    req.Host,
		scheme:  "http",
	}
	if req.TLS != nil {
		x.scheme = "https"
	}
	if req.URL.IsAbs() {
		x.scheme = req.URL.Scheme
		if x.host == "" {
			x.host = req.URL.Host
		}
	}
	if h, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		x.client = h
	} else {
		x.client = req.RemoteAddr
	}
	return x
}

// onRequest runs inside goproxy before it strips proxy headers: it keeps the
// headers as the client sent them, tees the body and makes the exchange the
// request's round tripper.
func (r *Recorder) onRequest(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	x, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if x == nil {
		// A request read inside a MITM tunnel: no outer handler saw it.
		x = r.begin(req, "")
		x.scheme = req.URL.Scheme
		x.host = req.URL.Host
	}
	// goproxy deletes hop-by-hop headers from req.Header before the round
	// trip; keep those few aside instead of cloning every header.
	x.reqHeader = req.Header
	for _, k := range hopHeaders {
		if vs, ok := req.Header[k]; ok {
			x.hopHeader = append(x.hopHeader, hopValue{k, vs})
		}
	}
	// http.NoBody and nil must stay as they are: a wrapped empty body would
	// make the transport send "Transfer-Encoding: chunked".
	if req.Body != nil && req.Body != http.NoBody {
		x.reqBody = &reqTee{rc: req.Body, max: r.opts.MaxBody}
		req.Body = x.reqBody
	}
	ctx.RoundTripper = x
	ctx.UserData = x
	return req, nil
}

// onResponse only matters when a round trip failed without the exchange's
// RoundTrip answering (it always answers, so this is a guard): the client
// gets a 502 instead of goproxy's 500.
func (r *Recorder) onResponse(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	if resp != nil {
		return resp
	}
	msg := "no response from upstream"
	if ctx.Error != nil {
		msg = errorText(ctx.Error)
	}
	if x, ok := ctx.UserData.(*exchange); ok {
		x.fail(ctx.Req, msg)
	}
	return badGateway(ctx.Req, msg)
}

// RoundTrip sends the request upstream on the recorder's transport. Its
// response body is the timing tee; the tee is set here, not in a response
// handler, because goproxy drops Content-Length when a handler swaps the
// body, which would change what the client receives.
func (x *exchange) RoundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	resp, err := x.rec.tr.RoundTrip(req)
	if err != nil {
		msg := errorText(err)
		x.fail(req, msg)
		return badGateway(req, msg), nil
	}
	x.ttfb = time.Since(x.start)
	x.status = resp.StatusCode
	x.respHeader = resp.Header
	x.classify()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// WebSocket: goproxy needs the raw body (an io.ReadWriter) to relay
		// frames, and the frames are not recorded; the upgrade is.
		x.finish(nil)
		return resp, nil
	}
	x.resp = &respTee{x: x, rc: resp.Body, max: x.rec.opts.MaxBody, frame: framingOf(resp)}
	if n := resp.ContentLength; n > 0 {
		x.resp.buf = make([]byte, 0, min(n, x.resp.max))
	}
	resp.Body = x.resp
	return resp, nil
}

// fail records a round trip that got no response.
func (x *exchange) fail(req *http.Request, msg string) {
	x.ttfb = 0
	x.errText = msg
	if req != nil && req.Context().Err() != nil {
		x.aborted = true
		x.errText = "client went away before the response: " + msg
	}
	x.classify()
	x.finish(nil)
}

// framingOf decides how a response is timed: SSE by event, NDJSON by line,
// any other body of unknown length (a JSON document aside) by read; bodies
// with a length are not streams.
func framingOf(resp *http.Response) framing {
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "text/event-stream":
		return frameSSE
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq":
		if resp.ContentLength < 0 {
			return frameLines
		}
	}
	if ct == "application/json" || strings.HasSuffix(ct, "+json") {
		// One JSON document sent chunked (a server that did not buffer it)
		// is not a stream of units.
		return frameNone
	}
	if resp.ContentLength < 0 && resp.Request != nil && resp.Request.Method != http.MethodHead {
		return frameChunks
	}
	return frameNone
}

// classify names the exchange and places it in its session once response
// headers are known: an MCP initialize is placed in the session its
// response opened.
func (x *exchange) classify() {
	r := x.rec
	var body []byte
	if x.reqBody != nil {
		body, _, _ = x.reqBody.snapshot()
	}
	if bytes.Contains(body, []byte(`"jsonrpc"`)) {
		x.rpc, x.isRPC = parseRPC(body)
	}
	host := x.host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if x.isRPC {
		x.operation = rpcOperation(x.rpc)
	} else {
		x.operation = builtinOperation(x.method, x.path)
	}
	if x.service == "" {
		x.service = host
	}
	sessionHeader := ""
	if r.opts.Rules != nil {
		sessionHeader = r.opts.Rules.SessionHeader
		if rule := r.opts.Rules.match(x.method, host, x.path, x.reqHeader, body); rule != nil {
			if rule.Service != "" {
				x.service = rule.Service
			}
			if rule.Operation != "" {
				x.operation = rule.Operation
			}
			if rule.SessionHeader != "" {
				sessionHeader = rule.SessionHeader
			}
		}
	}
	x.session = sessionKey(x.reqHeader, x.respHeader, sessionHeader, x.client)
	x.seq = r.sessions.next(x.session)
}

// sessionKey picks the session in DESIGN.md's order: the MCP session (sent,
// or opened by this response), a header the rules name, a hash of the
// credentials, the client address.
func sessionKey(req, resp http.Header, ruleHeader, client string) string {
	if v := req.Get("Mcp-Session-Id"); v != "" {
		return v
	}
	if v := resp.Get("Mcp-Session-Id"); v != "" {
		return v
	}
	if ruleHeader != "" {
		if v := req.Get(ruleHeader); v != "" {
			return v
		}
	}
	if v := req.Get("Authorization"); v != "" {
		return "auth:" + hashHex(v)[:16]
	}
	for _, k := range []string{"X-Api-Key", "Api-Key"} {
		if v := req.Get(k); v != "" {
			return "auth:" + hashHex(v)[:16]
		}
	}
	return "client:" + client
}

// finish completes the exchange once: from the body tee's Close, from a
// failed round trip, after a WebSocket upgrade, or from the outer handler as
// a last resort. It runs on the proxy goroutine and only hands off.
func (x *exchange) finish(t *respTee) {
	x.once.Do(func() {
		if t != nil && !t.eof {
			if t.err != nil && !errors.Is(t.err, context.Canceled) && x.errText == "" {
				x.errText = "upstream: " + errorText(t.err)
			} else {
				// The copy to the client stopped before the body ended: the
				// client went away (or the proxy was stopped). Closing the
				// upstream body has cancelled the upstream request.
				x.aborted = true
			}
		}
		if x.operation == "" {
			x.classify() // never reached the round trip
			if x.errText == "" {
				x.errText = "no round trip"
			}
		}
		x.rec.enqueue(x)
		x.rec.inflight.Add(-1)
	})
}

// errorText renders a transport error without the URL, which can carry
// secrets in its query.
func errorText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// badGateway is what the client gets when the upstream could not be reached.
func badGateway(req *http.Request, msg string) *http.Response {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{
		"message": "loadtape record: upstream unreachable: " + msg,
		"type":    "upstream_unreachable",
	}})
	b = append(b, '\n')
	return &http.Response{
		StatusCode:    http.StatusBadGateway,
		Status:        strconv.Itoa(http.StatusBadGateway) + " " + http.StatusText(http.StatusBadGateway),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(b))}},
		ContentLength: int64(len(b)),
		Body:          io.NopCloser(bytes.NewReader(b)),
		Request:       req,
	}
}
