package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// Offline turns exchanges the proxy did not see live (the entries of a HAR
// file) into the rows the recorder would have written for them. It runs the
// recorder's own code on them: operation names, rules, session keys,
// redaction, OpenAI model and token reading, the body cap. One Offline is
// one capture: equal secrets get equal placeholders, and sessions number
// their exchanges in the order Row sees them. Not safe for concurrent use.
type Offline struct {
	r *Recorder
}

// OfflineOptions configures an Offline.
type OfflineOptions struct {
	Rules       *Rules // classification and redaction rules, as `record --rules`
	KeepSecrets bool   // keep secrets as they are (`record --keep-secrets`)
	MaxBody     int64  // body bytes kept per side; DefaultMaxBody when 0
}

// OfflineExchange is one complete request and its response.
type OfflineExchange struct {
	Service string // route name; empty: the host, unless a rule names one
	Start   time.Time
	Client  string // client address, the recorder's last-resort session key
	// Session, when set, replaces the client address as the last-resort
	// session key (a HAR page or cookie): the MCP session, a rule's session
	// header and the credentials still come first, as when recording.
	Session string
	// SessionSecret, when set, is a secret that keys the session in place of
	// the client address (a login cookie's value): the key is a keyed digest
	// of it, like the one made from credentials, never the value.
	SessionSecret string

	Method, Scheme, Host, Path, Query string
	ReqHeader                         http.Header
	ReqBody                           []byte
	ReqSize                           int64 // true size; len(ReqBody) when smaller

	Status     int // 0: no response came
	RespHeader http.Header
	RespBody   []byte
	RespSize   int64
	Stream     bool    // the response came as a stream (SSE events are found from Content-Type whatever this says)
	Offsets    []int64 // arrival of each event or chunk, ns from Start, when known
	TTFB       time.Duration
	Duration   time.Duration // to the last byte, or to the failure

	Error         string // why no response came, or why the body broke off
	ClientAborted bool
}

// NewOffline returns an Offline for one capture.
func NewOffline(opts OfflineOptions) *Offline {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	return &Offline{r: &Recorder{
		opts:     Options{Rules: opts.Rules, KeepSecrets: opts.KeepSecrets, MaxBody: opts.MaxBody},
		redact:   newRedactor(opts.KeepSecrets, opts.Rules),
		idPrefix: hex.EncodeToString(idb[:]) + "-",
	}}
}

// Row returns the capture row of in.
func (o *Offline) Row(in OfflineExchange) captures.Exchange {
	max := o.r.opts.MaxBody
	x := &exchange{
		rec: o.r, start: in.Start, service: in.Service,
		method: in.Method, scheme: in.Scheme, path: in.Path, query: in.Query,
		host: in.Host, clientHost: in.Host, client: in.Client,
		reqHeader: in.ReqHeader.Clone(), respHeader: in.RespHeader.Clone(),
		status: in.Status, ttfb: in.TTFB, errText: in.Error, aborted: in.ClientAborted,
	}
	if x.reqHeader == nil {
		x.reqHeader = http.Header{}
	}
	if x.respHeader == nil {
		x.respHeader = http.Header{}
	}
	x.reqBody = &reqTee{max: max, buf: capped(in.ReqBody, max), size: max64(in.ReqSize, int64(len(in.ReqBody))), eof: true}
	if in.Status > 0 {
		resp := &http.Response{Header: x.respHeader, ContentLength: int64(len(in.RespBody)), Request: &http.Request{Method: in.Method}}
		if in.Stream {
			resp.ContentLength = -1
		}
		size := max64(in.RespSize, int64(len(in.RespBody)))
		t := &respTee{x: x, max: max, frame: framingOf(resp), buf: capped(in.RespBody, max), size: size, offsets: in.Offsets, eof: true}
		if size > 0 {
			t.last = in.Start.Add(in.Duration)
		}
		if size > max && t.frame == frameSSE {
			t.tail = in.RespBody[max64(max, int64(len(in.RespBody))-tailMax):]
		}
		x.resp = t
	}
	if in.Error != "" || in.ClientAborted {
		x.end = in.Start.Add(in.Duration)
	}
	x.classify()
	if x.session == "client:"+x.client {
		switch {
		case in.SessionSecret != "":
			x.session = "cookie:" + o.r.redact.keyedHex(in.SessionSecret)
			x.seq = o.r.sessions.next(x.session)
		case in.Session != "":
			x.session = in.Session
			x.seq = o.r.sessions.next(x.session)
		}
	}
	return o.r.row(x)
}

func capped(b []byte, max int64) []byte {
	if int64(len(b)) > max {
		return b[:max]
	}
	return b
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
