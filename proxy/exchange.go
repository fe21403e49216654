package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	method, scheme, path, query string
	host                        string // upstream host[:port]
	clientHost                  string // the Host the client sent
	client                      string // client IP
	forward                     bool   // came through the forward proxy
	reqHeader                   http.Header
	hopHeader                   []hopValue // client headers removed before the request goes upstream
	respHop                     []hopValue // upstream headers removed before the response goes to the client
	reqBody                     *reqTee
	cancel                      context.CancelFunc // ends the upstream request

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

	errText  string
	aborted  bool
	end      time.Time    // when the exchange failed or the client left; zero otherwise
	timedOut atomic.Int32 // which timeout ended the upstream request, if one did
	brokeOff bool         // the upstream broke off the body: the client must see a break-off too
	queued   int64        // bytes counted against the queue bound

	once sync.Once
}

type exchangeKey struct{}

// goproxyHop are the request headers goproxy's RemoveProxyHeaders deletes
// itself (Connection only when the request is not a WebSocket upgrade).
var goproxyHop = []string{"Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Connection"}

// hopByHop are the headers that concern one connection only (RFC 9110
// §7.6.1 and the ones HTTP/1.1 practice adds), besides those Connection
// names. Transfer-Encoding and Trailer are not listed: Go's server and
// client handle both themselves.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Upgrade"}

// connectionTokens returns the canonical header names listed in the
// Connection headers of h.
func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, http.CanonicalHeaderKey(f))
			}
		}
	}
	return out
}

// upgrading reports whether h asks to switch protocols (WebSocket): then
// Connection and Upgrade are the handshake and must pass.
func upgrading(h http.Header) bool {
	return h.Get("Upgrade") != "" && slices.Contains(connectionTokens(h), "Upgrade")
}

// stripHop removes the hop-by-hop headers of h, and those its Connection
// header names, in place, appending what it removed (or, for the names in
// keep, what the caller will remove later) to saved. Nothing is allocated
// when h has none of them.
func stripHop(h http.Header, saved []hopValue, keep []string) []hopValue {
	up := upgrading(h)
	drop := func(k string) {
		vs, ok := h[k]
		if !ok {
			return
		}
		if slices.ContainsFunc(saved, func(v hopValue) bool { return v.name == k }) {
			return
		}
		saved = append(saved, hopValue{k, vs})
		if slices.Contains(keep, k) {
			return
		}
		if k == "Te" && strings.EqualFold(strings.TrimSpace(h.Get("Te")), "trailers") {
			return // the one TE value a proxy passes on (as httputil.ReverseProxy does)
		}
		delete(h, k)
	}
	for _, k := range connectionTokens(h) {
		if up && k == "Upgrade" {
			continue
		}
		drop(k)
	}
	for _, k := range hopByHop {
		if up && (k == "Upgrade" || k == "Connection") {
			continue
		}
		drop(k)
	}
	for _, k := range keep {
		drop(k)
	}
	return saved
}

type hopValue struct {
	name   string
	values []string
}

// begin starts an exchange for a request as the client sent it.
func (r *Recorder) begin(req *http.Request, service string) *exchange {
	r.inflight.Add(1)
	x := &exchange{
		rec:        r,
		start:      time.Now(),
		service:    service,
		method:     req.Method,
		path:       req.URL.Path,
		query:      req.URL.RawQuery,
		host:       req.Host,
		clientHost: req.Host,
		scheme:     "http",
	}
	if req.TLS != nil {
		x.scheme = "https"
	}
	if req.URL.IsAbs() {
		x.scheme = req.URL.Scheme
		if req.URL.Host != "" {
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
		x.forward = true
	}
	// Hop-by-hop headers are removed before the round trip (goproxy removes
	// a few itself); keep them aside for the record instead of cloning
	// every header.
	x.reqHeader = req.Header
	x.hopHeader = stripHop(req.Header, x.hopHeader, goproxyHop)
	if x.forward {
		if resp := x.rec.checkDestination(req, x); resp != nil {
			return req, resp
		}
	}
	// http.NoBody and nil must stay as they are: a wrapped empty body would
	// make the transport send "Transfer-Encoding: chunked".
	if req.Body != nil && req.Body != http.NoBody {
		x.reqBody = &reqTee{rc: req.Body, max: r.opts.MaxBody}
		req.Body = x.reqBody
		if b := x.reqBody.whole(req); b != nil {
			// An in-memory body lets the transport send the headers and
			// the body in one write instead of flushing the headers first.
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
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

// Timeouts that can end an upstream request; the values of exchange.timedOut.
const (
	noTimeout int32 = iota
	firstByteTimeout
	idleTimeout
)

// RoundTrip sends the request upstream on the recorder's transport. Its
// response body is the timing tee; the tee is set here, not in a response
// handler, because goproxy drops Content-Length when a handler swaps the
// body, which would change what the client receives.
//
// The request runs under its own context, cancelled when the upstream takes
// longer than the first-byte timeout to send response headers or, once the
// body flows, stays silent longer than the idle timeout.
func (x *exchange) RoundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	o := &x.rec.opts
	ctx, cancel := context.WithCancel(req.Context())
	x.cancel = cancel
	var fb *time.Timer
	if o.FirstByteTimeout > 0 {
		fb = time.AfterFunc(o.FirstByteTimeout, func() {
			x.timedOut.CompareAndSwap(noTimeout, firstByteTimeout)
			cancel()
		})
	}
	resp, err := x.rec.tr.RoundTrip(req.WithContext(ctx))
	if fb != nil && !fb.Stop() && err == nil {
		// The timer fired as the headers came: the body is cancelled already.
		resp.Body.Close()
		err = context.Canceled
	}
	if err != nil {
		if x.timedOut.Load() == firstByteTimeout {
			msg := fmt.Sprintf("upstream first-byte timeout: no response headers within %s", o.FirstByteTimeout)
			x.fail(req, msg)
			return errorResponse(req, http.StatusGatewayTimeout, "upstream_timeout", "loadtape record: "+msg), nil
		}
		msg := errorText(err)
		x.fail(req, msg)
		return badGateway(req, msg), nil
	}
	x.ttfb = time.Since(x.start)
	x.status = resp.StatusCode
	x.respHop = stripHop(resp.Header, nil, nil)
	x.respHeader = resp.Header
	x.classify()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// WebSocket: goproxy needs the raw body (an io.ReadWriter) to relay
		// frames, and the frames are not recorded; the upgrade is. The
		// relay outlives the exchange, so its context is not cancelled.
		x.cancel = nil
		x.finish(nil)
		return resp, nil
	}
	x.resp = &respTee{x: x, rc: resp.Body, max: x.rec.opts.MaxBody, frame: framingOf(resp)}
	if n := resp.ContentLength; n > 0 {
		x.resp.buf = make([]byte, 0, min(n, x.resp.max))
	}
	if o.IdleTimeout > 0 {
		x.resp.idle = o.IdleTimeout
		x.resp.timer = time.AfterFunc(o.IdleTimeout, func() {
			x.timedOut.CompareAndSwap(noTimeout, idleTimeout)
			cancel()
		})
	}
	resp.Body = x.resp
	return resp, nil
}

// fail records a round trip that got no response.
func (x *exchange) fail(req *http.Request, msg string) {
	x.ttfb = 0
	x.errText = msg
	x.end = time.Now()
	if x.timedOut.Load() == noTimeout && req != nil && req.Context().Err() != nil {
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
	ct := mediaType(resp.Header.Get("Content-Type"))
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
	x.session = sessionKey(x.reqHeader, x.respHeader, sessionHeader, x.client, r.redact)
	x.seq = r.sessions.next(x.session)
}

// sessionKey picks the session from the most specific evidence down: the
// MCP session (sent, or opened by this response), a header the rules name, a
// hash of the credentials, the client address.
func sessionKey(req, resp http.Header, ruleHeader, client string, rd *redactor) string {
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
		return "auth:" + rd.keyedHex(v)
	}
	for _, k := range []string{"X-Api-Key", "Api-Key"} {
		if v := req.Get(k); v != "" {
			return "auth:" + rd.keyedHex(v)
		}
	}
	return "client:" + client
}

// finish completes the exchange once: from the body tee's Close, from a
// failed round trip, after a WebSocket upgrade, or from the outer handler as
// a last resort. It runs on the proxy goroutine and only hands off.
func (x *exchange) finish(t *respTee) {
	x.once.Do(func() {
		if t != nil {
			if t.timer != nil {
				t.timer.Stop()
			}
			if !t.eof {
				x.end = time.Now()
				switch {
				case x.timedOut.Load() == idleTimeout:
					x.errText = fmt.Sprintf("upstream idle timeout: no body bytes for %s", x.rec.opts.IdleTimeout)
					x.brokeOff = true
				case t.err != nil && !errors.Is(t.err, context.Canceled) && x.errText == "":
					x.errText = "upstream: " + errorText(t.err)
					x.brokeOff = true
				default:
					// The copy to the client stopped before the body ended: the
					// client went away (or the proxy was stopped). Cancelling
					// the upstream request below ends it.
					x.aborted = true
				}
			}
		}
		if x.cancel != nil {
			x.cancel()
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

// breakOff makes the client see the upstream's break-off as a break-off:
// what arrived is flushed, then the handler aborts, so net/http closes the
// connection without the terminating chunk (HTTP/1.1) or resets the stream
// (HTTP/2). Without it goproxy, which ignores the copy's error, would end
// the response cleanly and a stream that died halfway would look finished.
func (x *exchange) breakOff(w http.ResponseWriter) {
	if !x.brokeOff {
		return
	}
	_ = http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
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
	return errorResponse(req, http.StatusBadGateway, "upstream_unreachable", "loadtape record: upstream unreachable: "+msg)
}

// errorResponse is an OpenAI-style JSON error the proxy answers itself.
func errorResponse(req *http.Request, status int, kind, msg string) *http.Response {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"message": msg, "type": kind}})
	b = append(b, '\n')
	return &http.Response{
		StatusCode:    status,
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(b))}},
		ContentLength: int64(len(b)),
		Body:          io.NopCloser(bytes.NewReader(b)),
		Request:       req,
	}
}
