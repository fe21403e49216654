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
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// The HTTP/1.1 client of plain http:// targets. net/http's client spends
// two goroutines per connection and channel hand-offs between them and the
// caller on every request, and builds a Request, its context and a header
// clone for each: beside nginx on 127.0.0.1 it sent fewer requests per
// second than hey. Here the user's own goroutine writes the request, whose
// bytes were encoded once per recorded exchange (prepare), and reads the
// answer on the same connection, with no other goroutine; the request
// timeout is the connection's deadline, and a run's cut-off ends the
// request by moving that deadline to the past.
//
// It handles what replay sends over HTTP/1.1 without TLS or a proxy and
// answers as net/http would for the same exchange: the same result row
// (the same status, bytes, chunk offsets, error kind and text; tested in
// h1_test.go), the same retry of a request a kept-alive connection lost
// before any answer, the same connection cap. https, HTTP/2, a URL with
// credentials and held streams (sendHeld) stay with net/http.

// wireBodyMax is the largest body kept inside a prepared request's bytes;
// a larger one is written after the head from the exchange itself (one
// writev), so that a pool of big bodies is not held twice.
const wireBodyMax = 64 << 10

// loadTransport is replay's transport: net/http's, with the HTTP/1.1
// client beside it for the requests send makes to http:// targets.
type loadTransport struct {
	*http.Transport
	h1 bool // send's plain http:// requests go through h1Pool

	mu    sync.Mutex
	pools map[string]*h1Pool // by host:port
}

// CloseIdleConnections closes both clients' idle connections; a connection
// still in use is closed when its request ends.
func (t *loadTransport) CloseIdleConnections() {
	t.Transport.CloseIdleConnections()
	t.mu.Lock()
	pools := t.pools
	t.pools = nil
	t.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
}

// h1Usable reports whether the transport is one the HTTP/1.1 client
// stands in for: no proxy, no compression asked for, keep-alives on, no
// dialler of its own for TLS and no HTTP/2 without TLS.
func (t *loadTransport) h1Usable() bool {
	tr := t.Transport
	return t.h1 && tr.Proxy == nil && tr.DisableCompression && !tr.DisableKeepAlives &&
		tr.DialTLSContext == nil && tr.DialTLS == nil && (tr.Protocols == nil || !tr.Protocols.UnencryptedHTTP2())
}

// poolOf is the pool w goes to, kept in w for its next sends.
func (t *loadTransport) poolOf(w *wire) *h1Pool {
	if p := w.pool.Load(); p != nil && p.t == t && !p.shut.Load() {
		return p
	}
	p := t.pool(w.addr)
	w.pool.Store(p)
	return p
}

func (t *loadTransport) pool(addr string) *h1Pool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pools[addr]
	if p == nil {
		if t.pools == nil {
			t.pools = map[string]*h1Pool{}
		}
		dial := t.Transport.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		p = &h1Pool{t: t, addr: addr, limit: t.Transport.MaxConnsPerHost, dial: dial}
		t.pools[addr] = p
	}
	return p
}

// wire is a request's bytes as net/http writes them.
type wire struct {
	head []byte // request line, headers and (when short) the body
	body []byte // a body longer than wireBodyMax, written after head
	addr string // host:port to dial
	// replayable: a request net/http sends again when a kept-alive
	// connection breaks before the first byte of the answer.
	replayable bool

	pool atomic.Pointer[h1Pool] // where it was sent last
}

// encodeWire encodes o as net/http's transport would send it, or returns
// nil where the HTTP/1.1 client does not stand in (not http://, a URL with
// credentials, an address or header net/http would refuse: net/http
// sends it and names the problem).
func encodeWire(o *outgoing) *wire {
	var body io.Reader = http.NoBody
	if len(o.body) > 0 {
		body = bytes.NewReader(o.body)
	}
	req, err := http.NewRequest(o.method, o.url, body)
	if err != nil || req.URL.Scheme != "http" || req.URL.User != nil || req.URL.Host == "" {
		return nil
	}
	req.Header = o.header
	if h := o.header.Get("Host"); h != "" {
		req.Host = h
	}
	if !validHost(req.Host) || !validHost(req.URL.Host) || !validHeader(o.header) {
		return nil
	}
	port := req.URL.Port()
	if port == "" {
		port = "80"
	}
	w := &wire{addr: net.JoinHostPort(req.URL.Hostname(), port),
		replayable: isReplayable(o.method, o.header)}
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		return nil
	}
	w.head = b.Bytes()
	if n := len(o.body); n > wireBodyMax && bytes.HasSuffix(w.head, o.body) {
		w.head = append([]byte(nil), w.head[:len(w.head)-n]...)
		w.body = o.body
	}
	return w
}

// isReplayable is net/http's rule for retrying a request whose kept-alive
// connection broke before the answer's first byte.
func isReplayable(method string, h http.Header) bool {
	switch method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, a := h["Idempotency-Key"]
	_, b := h["X-Idempotency-Key"]
	return a || b
}

// validHost accepts the characters of a host, an IP literal and a port;
// anything else is left to net/http, which refuses what it must.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]%", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeader is net/http's check of header names (tokens) and values (no
// control character but tab).
func validHeader(h http.Header) bool {
	for k, vs := range h {
		if k == "" || !tokenOnly(k) {
			return false
		}
		for _, v := range vs {
			if !fieldValueOnly(v) {
				return false
			}
		}
	}
	return true
}

// h1Pool holds the connections to one host:port: idle ones (last used
// first), and at most limit open (0: no cap), as MaxConnsPerHost does.
type h1Pool struct {
	t     *loadTransport
	shut  atomic.Bool // closed: CloseIdleConnections made a new pool for the next requests
	addr  string
	limit int
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)

	mu      sync.Mutex
	idle    []*h1Conn
	open    int
	waiters []chan *h1Conn // FIFO; a nil sent means: dial one
	closed  bool
}

// get returns a connection for a request due by deadline: an idle one,
// a new one, or (at the cap) the next one a request hands on or a free
// place to dial into. waited is when a wait at the cap ended; zero when
// there was none.
func (p *h1Pool) get(ctx context.Context, deadline time.Time) (c *h1Conn, waited time.Time, err error) {
	// Each turn but the last takes a dead idle connection out: the
	// bound is only a backstop (a server restarted under thousands).
	for range 1 << 16 {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			if c.br.Buffered() == 0 && c.idleCheck.alive() {
				return c, waited, nil
			}
			c.close()
			continue
		}
		if p.limit > 0 && p.open >= p.limit {
			ch := make(chan *h1Conn, 1)
			p.waiters = append(p.waiters, ch)
			p.mu.Unlock()
			c, err = p.await(ctx, deadline, ch)
			waited = time.Now()
			if err != nil || c != nil {
				return c, waited, err
			}
			return p.dialNew(ctx, deadline, waited) // a place was freed for us
		}
		p.open++
		p.mu.Unlock()
		return p.dialNew(ctx, deadline, waited)
	}
	return nil, waited, errors.New("http: no usable connection to " + p.addr)
}

// await waits at the cap for a connection or a place, until ctx ends or
// the deadline passes.
func (p *h1Pool) await(ctx context.Context, deadline time.Time, ch chan *h1Conn) (*h1Conn, error) {
	tm := time.NewTimer(time.Until(deadline))
	defer tm.Stop()
	var err error
	select {
	case c := <-ch:
		return c, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-tm.C:
		err = os.ErrDeadlineExceeded
	}
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, err
		}
	}
	p.mu.Unlock()
	// Handed something just as we gave up: pass it on.
	if c := <-ch; c != nil {
		p.put(c)
	} else {
		p.release()
	}
	return nil, err
}

func (p *h1Pool) dialNew(ctx context.Context, deadline time.Time, waited time.Time) (*h1Conn, time.Time, error) {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	nc, err := p.dial(dctx, "tcp", p.addr)
	cancel()
	if err != nil {
		p.release()
		return nil, waited, err
	}
	c := &h1Conn{p: p, nc: nc, br: bufio.NewReaderSize(nc, 4<<10)}
	c.tp.R = c.br
	c.idleCheck.init(nc)
	return c, waited, nil
}

// put keeps c idle for the next request, or hands it to one waiting.
func (p *h1Pool) put(c *h1Conn) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		w <- c
		return
	}
	c.reused = true
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// release gives back a place of a connection that closed or never opened.
func (p *h1Pool) release() {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		w <- nil // its place: the waiter dials
		return
	}
	p.open--
	p.mu.Unlock()
}

// close closes the idle connections; those in use close when they end.
func (p *h1Pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	p.shut.Store(true)
	for _, c := range idle {
		c.close()
	}
}

// h1Conn is one connection, owned by the request using it or by the
// pool while idle.
type h1Conn struct {
	p      *h1Pool
	nc     net.Conn
	br     *bufio.Reader
	tp     textproto.Reader
	reused bool // it served a request before this one

	// The run's cut-off of a request: watched is the context an AfterFunc
	// (unwatch) is registered on, kept from request to request while it is
	// the same (a stage's); it cuts the connection's deadline short while
	// busy is that context.
	watched context.Context
	unwatch func() bool
	mu      sync.Mutex
	busy    context.Context

	chunked chunkedBody // the body readers of the answer being read
	fixed   fixedBody
	hbuf    []byte // the header block being read

	idleCheck aliveCheck // h1_unix.go
}

// begin sets c's deadline and marks it as sending under ctx; false when
// ctx has ended. The deadline is set first: a cut-off after busy is set
// moves it to the past, and nothing moves it back.
func (c *h1Conn) begin(ctx context.Context, deadline time.Time) bool {
	c.nc.SetDeadline(deadline)
	if ctx.Done() == nil {
		return true
	}
	if c.watched != ctx {
		if c.unwatch != nil {
			c.unwatch()
		}
		c.watched = ctx
		c.unwatch = context.AfterFunc(ctx, func() { c.cut(ctx) })
	}
	c.mu.Lock()
	c.busy = ctx
	c.mu.Unlock()
	return ctx.Err() == nil
}

func (c *h1Conn) cut(ctx context.Context) {
	c.mu.Lock()
	if c.busy == ctx {
		c.nc.SetDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

func (c *h1Conn) end() {
	if c.watched == nil {
		return
	}
	c.mu.Lock()
	c.busy = nil
	c.mu.Unlock()
}

func (c *h1Conn) close() {
	if c.unwatch != nil {
		c.unwatch()
		c.unwatch = nil
	}
	c.nc.Close()
	c.p.release()
}

// write sends the request's bytes; n is how many went out.
func (c *h1Conn) write(w *wire) (int64, error) {
	if w.body == nil {
		n, err := c.nc.Write(w.head)
		return int64(n), err
	}
	bufs := net.Buffers{w.head, w.body}
	return bufs.WriteTo(c.nc)
}

// sendH1 is send over the HTTP/1.1 client.
func sendH1(ctx context.Context, p *h1Pool, timeout time.Duration, o *outgoing, w *wire, r *captures.Result) *response {
	r.BytesOut = int64(len(o.body))
	start := time.Now()
	r.StartNS = start.UnixNano()
	sending(ctx, r)
	deadline := start.Add(timeout)
	for range 16 { // net/http retries on another connection as long as one breaks
		c, waited, err := p.get(ctx, deadline)
		if !waited.IsZero() && waited.UnixNano() > r.StartNS {
			start = waited
			r.StartNS = waited.UnixNano()
		}
		if err != nil {
			r.DurationNS = int64(time.Since(start))
			h1Fail(ctx, deadline, urlError(o, err), r)
			return nil
		}
		resp, retry := c.roundTrip(ctx, deadline, o, w, start, r)
		if !retry {
			return resp
		}
	}
	r.DurationNS = int64(time.Since(start))
	r.ErrorKind, r.Error = runspec.ErrConnection, urlError(o, errors.New("http: every kept-alive connection broke")).Error()
	return nil
}

// roundTrip sends w on c and reads the answer into r; retry: c broke
// before the answer where net/http would send again on another
// connection (it was closed then).
func (c *h1Conn) roundTrip(ctx context.Context, deadline time.Time, o *outgoing, w *wire, start time.Time, r *captures.Result) (*response, bool) {
	if !c.begin(ctx, deadline) {
		c.end()
		c.close()
		r.DurationNS = int64(time.Since(start))
		h1Fail(ctx, deadline, urlError(o, ctx.Err()), r)
		return nil, false
	}
	n, err := c.write(w)
	if err != nil {
		c.end()
		c.close()
		if c.reused && n == 0 {
			return nil, true // nothing was sent
		}
		r.DurationNS = int64(time.Since(start))
		h1Fail(ctx, deadline, urlError(o, err), r)
		return nil, false
	}
	h, err := c.readHead(o.method)
	if err != nil {
		c.end()
		c.close()
		if h.none && c.reused && w.replayable && ctx.Err() == nil && time.Now().Before(deadline) {
			return nil, true
		}
		if !h.none {
			// net/http's words for an answer that broke off or did not
			// parse once it had begun.
			err = fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", err)
		}
		r.DurationNS = int64(time.Since(start))
		h1Fail(ctx, deadline, urlError(o, err), r)
		return nil, false
	}
	r.TTFBNS = int64(time.Since(start))
	r.Status = int32(h.status)
	out := &response{status: h.status, header: h.header, wantRPC: o.rpcID != ""}
	err = readBody(c.body(&h), h.ctype, start, o.rpcID, r, out)
	r.DurationNS = int64(time.Since(start))
	c.end()
	switch {
	case err != nil:
		c.close()
		h1Fail(ctx, deadline, err, r)
	case h.close:
		c.close()
	default:
		c.p.put(c)
	}
	return out, false
}

// h1Fail names a failure as failTransport does for net/http's.
func h1Fail(ctx context.Context, deadline time.Time, err error, r *captures.Result) {
	switch {
	case ctx.Err() != nil:
		r.ErrorKind, r.Error = runspec.ErrCutOff, "cut off: "+context.Cause(ctx).Error()
	case errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline):
		r.ErrorKind, r.Error = runspec.ErrTimeout, "request timeout"
	default:
		r.ErrorKind, r.Error = runspec.ClassifyTransport(err), err.Error()
	}
}

// urlError wraps a failure before the answer's headers as net/http's
// client does: `Get "http://…": …`.
func urlError(o *outgoing, err error) error {
	m := o.method
	if m == "" {
		m = "GET"
	}
	return &url.Error{Op: m[:1] + strings.ToLower(m[1:]), URL: o.url, Err: err}
}
