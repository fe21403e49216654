// Package proxy is loadtape's recording proxy. It sits in front of the
// services of an AI stack (reverse routes, one listener per service) or
// serves as an HTTP(S) forward proxy, passes every exchange through
// unchanged and streaming, and records it as a captures.Exchange: timings
// with the arrival of every SSE event or chunk, OpenAI model and usage, MCP
// JSON-RPC method, tool and session, a stable operation name, and bodies up
// to a cap, with secrets redacted.
//
// Recording never slows the traffic down: finished exchanges go through a
// bounded queue to one writer goroutine, and when the queue is full the
// exchange is counted as dropped instead of waiting.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/loadtape/loadtape/captures"
)

// Defaults of Options.
const (
	DefaultMaxBody      = 1 << 20
	DefaultRoll         = 10 * time.Second
	DefaultFlush        = captures.DefaultFlush
	DefaultDrainTimeout = 10 * time.Second
	// DefaultQueue bounds the finished exchanges waiting for the writer;
	// DefaultQueueBytes bounds the body bytes they hold.
	DefaultQueue      = 65536
	DefaultQueueBytes = 512 << 20
	// DefaultLiveEvery is how often the live line is printed.
	DefaultLiveEvery = 5 * time.Second
	// DefaultFirstByteTimeout bounds the wait for an upstream's response
	// headers: a long non-streamed completion still answers well within
	// it, a hung upstream gets the client a 504 instead of a silent wait.
	DefaultFirstByteTimeout = 5 * time.Minute
	// DefaultIdleTimeout bounds the silence between body bytes of a
	// response, a stream's gap between events included: generous, since a
	// model can think for minutes between tokens.
	DefaultIdleTimeout = 5 * time.Minute
)

// Errors of the recorder.
var (
	ErrNoListener = errors.New("proxy: nothing to listen on: give at least one route or a forward address")
	ErrNoOut      = errors.New("proxy: an output directory is required")
	ErrStarted    = errors.New("proxy: already started")
)

// Options configures a Recorder. Zero values mean the defaults.
type Options struct {
	Routes       []Route       // reverse routes, one listener each
	Forward      string        // listen address of the forward proxy; empty: none
	MITMCADir    string        // with Forward: intercept HTTPS with the CA kept here (made on first use)
	Out          string        // capture directory
	MaxBody      int64         // body bytes kept per side; DefaultMaxBody when 0
	Roll         time.Duration // capture file roll interval; DefaultRoll when 0
	Flush        time.Duration // bound on the time a row waits before it is on disk (write-ahead log); DefaultFlush when 0
	Rules        *Rules        // optional classification and redaction rules
	KeepSecrets  bool          // store secret headers and query values as they are
	DrainTimeout time.Duration // how long Shutdown lets in-flight exchanges finish; DefaultDrainTimeout when 0
	Log          io.Writer     // warnings, the live line and totals; nil: discarded

	// LiveEvery is the live-line period; DefaultLiveEvery when 0, negative: never.
	LiveEvery time.Duration
	// QueueLen and QueueBytes bound the recording queue; defaults when 0.
	QueueLen   int
	QueueBytes int64
	// Transport sends requests upstream; nil means a transport made for
	// this: timeouts, hundreds of idle connections per host, TLS
	// verification on, no compression of its own, no proxy from the
	// environment unless ProxyFromEnv.
	Transport    *http.Transport
	ProxyFromEnv bool

	// FirstByteTimeout bounds the wait for response headers and
	// IdleTimeout the silence between body bytes; defaults when 0,
	// negative: no limit. A first-byte timeout answers the client 504; an
	// idle timeout breaks the response off (its headers are already out).
	FirstByteTimeout time.Duration
	IdleTimeout      time.Duration

	// The forward proxy's policy. ForwardAllow limits its clients by
	// address, ForwardAuth ("user:pass") requires Basic proxy
	// authentication, ForwardTo limits destinations to these HOST:PORTs
	// (CONNECT included). A Forward address beyond loopback needs
	// ForwardAllow or ForwardAuth.
	ForwardAllow []netip.Prefix
	ForwardAuth  string
	ForwardTo    []string

	// sink replaces the Parquet writer in tests.
	sink rowWriter
}

// Totals are the recorder's counts, printed on exit and stored in the
// capture's metadata. At every moment Exchanges = Written + Pending +
// Dropped + Failed.
type Totals struct {
	Exchanges int64 `json:"exchanges"` // finished exchanges
	Written   int64 `json:"written"`   // rows on disk: in Parquet files or fsynced in a write-ahead log
	Pending   int64 `json:"pending"`   // rows queued or being written, not yet on disk
	Dropped   int64 `json:"dropped"`   // rows dropped because the writer could not keep up
	Failed    int64 `json:"failed"`    // rows lost to write errors (a full disk, I/O errors)
}

// rowWriter is what the recorder needs of captures.Writer.
type rowWriter interface {
	Write(rows ...captures.Exchange) error
	SetMetadata(key, value string)
	Close() error
}

// Recorder is the recording proxy.
type Recorder struct {
	opts     Options
	gp       *goproxy.ProxyHttpServer
	tr       *http.Transport
	redact   *redactor
	sessions sessions
	idPrefix string
	log      *log.Logger
	ca       *CA
	access   *forwardAccess // nil without a forward proxy

	mu      sync.Mutex
	started bool
	servers []*http.Server
	addrs   map[string]string
	w       rowWriter

	// Recording queue. qmu guards qclosed against a send after close.
	qmu         sync.RWMutex
	qclosed     bool
	q           chan *exchange
	queuedBytes atomic.Int64
	writerDone  chan struct{}
	liveStop    chan struct{}
	liveDone    chan struct{}

	conns     sync.Map // open client connections, hijacked ones included
	inflight  atomic.Int64
	exchanges atomic.Int64
	written   atomic.Int64
	dropped   atomic.Int64
	failed    atomic.Int64

	startedAt time.Time
	stopOnce  sync.Once
	totals    Totals
	stopErr   error
}

// New checks opts and builds a Recorder; Start listens.
func New(opts Options) (*Recorder, error) {
	if len(opts.Routes) == 0 && opts.Forward == "" {
		return nil, ErrNoListener
	}
	if opts.Out == "" && opts.sink == nil {
		return nil, ErrNoOut
	}
	if opts.MITMCADir != "" && opts.Forward == "" {
		return nil, errors.New("proxy: --mitm-ca needs --forward")
	}
	seen := map[string]bool{}
	for _, rt := range opts.Routes {
		if rt.Upstream == nil {
			return nil, fmt.Errorf("proxy: route %q has no upstream", rt.Name)
		}
		if seen[rt.Name] {
			return nil, fmt.Errorf("proxy: route name %q given twice", rt.Name)
		}
		seen[rt.Name] = true
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Roll <= 0 {
		opts.Roll = DefaultRoll
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.LiveEvery == 0 {
		opts.LiveEvery = DefaultLiveEvery
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueue
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.FirstByteTimeout == 0 {
		opts.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	var access *forwardAccess
	if opts.Forward != "" {
		var err error
		if access, err = newForwardAccess(&opts); err != nil {
			return nil, err
		}
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	r := &Recorder{
		opts:     opts,
		tr:       opts.Transport,
		redact:   newRedactor(opts.KeepSecrets, opts.Rules),
		access:   access,
		idPrefix: hex.EncodeToString(idb[:]) + "-",
		log:      log.New(opts.Log, "record: ", 0),
		addrs:    map[string]string{},
	}
	if r.tr == nil {
		r.tr = newTransport(opts.ProxyFromEnv)
	}
	if opts.MITMCADir != "" {
		ca, err := LoadOrCreateCA(opts.MITMCADir)
		if err != nil {
			return nil, err
		}
		r.ca = ca
	}
	r.gp = r.newGoproxy()
	return r, nil
}

// newTransport is the upstream transport: the default goproxy one skips TLS
// verification, follows HTTP_PROXY, has no timeouts and keeps two idle
// connections per host, which under hundreds of clients means a new
// connection (and TIME_WAIT socket) per request.
//
// The wait for response headers is not the transport's: each exchange
// times it (Options.FirstByteTimeout) so that the row can say so.
func newTransport(fromEnv bool) *http.Transport {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		// The client's Accept-Encoding goes upstream unchanged and the body
		// comes back as sent; the transport must not add gzip and inflate.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	if fromEnv {
		tr.Proxy = http.ProxyFromEnvironment
	}
	return tr
}

func (r *Recorder) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = r.tr
	gp.KeepAcceptEncoding = true
	gp.Logger = r.log
	if !r.opts.ProxyFromEnv {
		gp.ConnectDial = nil // NewProxyHttpServer's dialer follows HTTPS_PROXY
	}
	gp.OnRequest().DoFunc(r.onRequest)
	gp.OnResponse().DoFunc(r.onResponse)
	if r.ca != nil {
		tlsConfig := goproxy.TLSConfigFromCA(&r.ca.Cert)
		gp.CertStore = newCertStore()
		gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
			return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: tlsConfig}, host
		})
	}
	return gp
}

// Start opens the capture writer and listens on every route (and the
// forward address). It returns once every listener is open; a port in use
// is an error and nothing is left listening.
func (r *Recorder) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return ErrStarted
	}
	type bound struct {
		name string
		ln   net.Listener
		h    http.Handler
	}
	var lns []bound
	closeAll := func() {
		for _, b := range lns {
			b.ln.Close()
		}
	}
	for _, rt := range r.opts.Routes {
		ln, err := net.Listen("tcp", rt.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("route %s: listen on %s: %w", rt.Name, rt.Listen, err)
		}
		lns = append(lns, bound{rt.Name, ln, r.reverseHandler(rt)})
	}
	if r.opts.Forward != "" {
		ln, err := net.Listen("tcp", r.opts.Forward)
		if err != nil {
			closeAll()
			return fmt.Errorf("forward proxy: listen on %s: %w", r.opts.Forward, err)
		}
		lns = append(lns, bound{"forward", ln, r.forwardHandler()})
	}
	w := r.opts.sink
	if w == nil {
		var err error
		w, err = captures.NewWriter[captures.Exchange](captures.WriterOptions{
			Dir:    r.opts.Out,
			Prefix: "exchanges",
			Roll:   r.opts.Roll,
			Flush:  r.opts.Flush,
			// The counts in each file's footer are those of the moment it is renamed.
			RollMetadata: r.rollMetadata,
			Metadata:     map[string]string{"loadtape.record.routes": r.routeList()},
		})
		if err != nil {
			closeAll()
			return fmt.Errorf("capture: %w", err)
		}
	}
	r.w = w
	r.q = make(chan *exchange, r.opts.QueueLen)
	r.writerDone = make(chan struct{})
	r.liveStop = make(chan struct{})
	r.liveDone = make(chan struct{})
	r.startedAt = time.Now()
	go r.writeLoop()
	go r.liveLoop()
	for _, b := range lns {
		srv := &http.Server{
			Handler:           b.h,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          r.log,
		}
		r.servers = append(r.servers, srv)
		r.addrs[b.name] = b.ln.Addr().String()
		go func(ln net.Listener) {
			// Serve ends when Shutdown or Close closes the listener.
			_ = srv.Serve(ln)
		}(trackedListener{Listener: b.ln, conns: &r.conns})
	}
	r.started = true
	for _, rt := range r.opts.Routes {
		go r.probe(rt)
	}
	return nil
}

func (r *Recorder) routeList() string {
	var s []string
	for _, rt := range r.opts.Routes {
		s = append(s, rt.String())
	}
	if r.opts.Forward != "" {
		s = append(s, "forward@"+r.opts.Forward)
	}
	return strings.Join(s, " ")
}

// probe warns when a route's upstream does not answer at start; the route
// still serves (with 502s) so the upstream may come up later.
func (r *Recorder) probe(rt Route) {
	host := rt.Upstream.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		if rt.Upstream.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		r.log.Printf("warning: route %s: upstream %s is not reachable (%v); answering 502 until it is", rt.Name, rt.Upstream, errorText(err))
		return
	}
	c.Close()
}

// Addrs returns each listener's actual address: route name → host:port, and
// "forward" for the forward proxy.
func (r *Recorder) Addrs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.addrs))
	for k, v := range r.addrs {
		out[k] = v
	}
	return out
}

// CA returns the MITM certificate authority, or nil without --mitm-ca.
func (r *Recorder) CA() *CA { return r.ca }

// Totals returns the counts so far.
func (r *Recorder) Totals() Totals { return r.counts() }

// reverseHandler serves one route: every request goes to the route's
// upstream whatever its URL says, so a route is never an open proxy.
func (r *Recorder) reverseHandler(rt Route) http.Handler {
	up := rt.Upstream
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		x := r.begin(req, rt.Name)
		req.URL.Scheme = up.Scheme
		req.URL.Host = up.Host
		if up.Path != "" {
			req.URL.Path = up.Path + req.URL.Path
			if req.URL.RawPath != "" {
				req.URL.RawPath = up.Path + req.URL.RawPath
			}
		}
		req.Host = up.Host
		x.host = up.Host
		r.serve(w, req, x)
	})
}

// forwardHandler is the forward proxy: absolute-URL requests and CONNECT.
func (r *Recorder) forwardHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !r.access.admit(w, req) {
			return
		}
		if req.Method == http.MethodConnect {
			if dest := destination(nil, req.Host); !r.access.destinationOK(dest) {
				http.Error(w, "loadtape record: destination "+dest+" is not in --forward-to", http.StatusForbidden)
				return
			}
			r.gp.ServeHTTP(w, req)
			return
		}
		if !req.URL.IsAbs() {
			http.Error(w, "loadtape record: this is a forward proxy; send absolute-URL requests (set HTTP_PROXY)", http.StatusBadRequest)
			return
		}
		x := r.begin(req, "")
		x.forward = true
		r.serve(w, req, x)
	})
}

// serve hands a reverse or forward request, its exchange begun, to goproxy
// (whose request handler, onRequest, finds the exchange in the context)
// and completes the exchange once the response has been copied.
//
// The response may start while the request body still flows upstream
// (full duplex; HTTP/2 is so already). Go's HTTP/1 server otherwise reads
// away the rest of a body when the response starts and closes it: an
// upstream that answers before it has read the whole body (a streaming
// upload, or only the race of a response that arrives just before the
// transport reads the body's EOF) would lose the upload's end, and the
// transport, failing to read the body, would close the upstream
// connection under the response.
func (r *Recorder) serve(w http.ResponseWriter, req *http.Request, x *exchange) {
	req = req.WithContext(context.WithValue(req.Context(), exchangeKey{}, x))
	_ = http.NewResponseController(w).EnableFullDuplex()
	r.gp.ServeHTTP(&flushWriter{ResponseWriter: w}, req)
	x.finish(nil) // no-op unless goproxy never closed the body
	x.breakOff(w)
}

// Shutdown stops accepting, lets in-flight exchanges finish for up to the
// drain timeout (or until ctx ends), cuts off the rest (they are recorded as
// aborted), writes every queued row and closes the capture. Later calls
// return the first result.
func (r *Recorder) Shutdown(ctx context.Context) (Totals, error) {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return Totals{}, nil
	}
	r.stopOnce.Do(func() { r.totals, r.stopErr = r.shutdown(ctx) })
	return r.totals, r.stopErr
}

func (r *Recorder) shutdown(ctx context.Context) (Totals, error) {
	dctx, cancel := context.WithTimeout(ctx, r.opts.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range r.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Shutdown(dctx)
		}()
	}
	wg.Wait()
	// Hijacked connections (MITM tunnels) are not tracked by Shutdown.
	drained := r.waitIdle(dctx)
	closeConns(&r.conns) // idle MITM tunnels and WebSocket relays
	if !drained {
		for _, srv := range r.servers {
			_ = srv.Close()
		}
		r.tr.CloseIdleConnections()
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
		r.waitIdle(cctx)
		ccancel()
	}
	r.qmu.Lock()
	r.qclosed = true
	close(r.q)
	r.qmu.Unlock()
	<-r.writerDone
	close(r.liveStop)
	<-r.liveDone
	r.setMetadata(r.Totals())
	err := r.w.Close()
	if err != nil {
		err = fmt.Errorf("capture: %w", err)
	}
	t := r.Totals() // after Close: every row is on disk or lost
	r.tr.CloseIdleConnections()
	if r.opts.Out != "" {
		if werr := r.writeSummary(t); werr != nil && err == nil {
			err = werr
		}
	}
	r.log.Printf("done: %d exchanges, %d written, %d dropped, %d failed in %s", t.Exchanges, t.Written, t.Dropped, t.Failed, time.Since(r.startedAt).Round(time.Millisecond))
	if !drained {
		r.log.Printf("warning: drain timeout %s reached; exchanges still in flight were cut off and recorded as aborted", r.opts.DrainTimeout)
	}
	return t, err
}

// waitIdle waits until no exchange is in flight or ctx ends.
func (r *Recorder) waitIdle(ctx context.Context) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for r.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return r.inflight.Load() == 0
		case <-tick.C:
		}
	}
	return true
}
