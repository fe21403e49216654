package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/loadtape/loadtape/captures"
)

// sessions hands out seq numbers per session key.
type sessions struct {
	mu    sync.Mutex
	next_ map[string]int64
}

func (s *sessions) next(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next_ == nil {
		s.next_ = map[string]int64{}
	}
	n := s.next_[key]
	s.next_[key] = n + 1
	return n
}

// secretHeaders are redacted whatever the rules say.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "Api-Key"}

// redactor replaces secret header and query values by a short hash, so two
// exchanges with the same credential can still be told apart from others.
type redactor struct {
	keep    bool
	headers map[string]bool // canonical names
	query   map[string]bool // lower-case names
}

func newRedactor(keep bool, rules *Rules) *redactor {
	rd := &redactor{keep: keep, headers: map[string]bool{}, query: map[string]bool{}}
	for _, h := range secretHeaders {
		rd.headers[http.CanonicalHeaderKey(h)] = true
	}
	if rules != nil {
		for _, h := range rules.Redact.Headers {
			rd.headers[http.CanonicalHeaderKey(h)] = true
		}
		for _, q := range rules.Redact.Query {
			rd.query[strings.ToLower(q)] = true
		}
	}
	return rd
}

func hashHex(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func redacted(v string) string { return "redacted:" + hashHex(v)[:8] }

// header turns a header map into the ordered list of the capture. Go's
// header map does not keep wire order, so names are sorted; the values of
// one name keep their order.
func (rd *redactor) header(h http.Header) []captures.Header {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	n := 0
	for k, vs := range h {
		names = append(names, k)
		n += len(vs)
	}
	slices.Sort(names)
	out := make([]captures.Header, 0, n)
	for _, k := range names {
		secret := !rd.keep && rd.headers[http.CanonicalHeaderKey(k)]
		for _, v := range h[k] {
			if secret {
				v = redacted(v)
			}
			out = append(out, captures.Header{Name: k, Value: v})
		}
	}
	return out
}

// rawQuery redacts the values of secret query parameters, keeping the rest
// of the query byte for byte.
func (rd *redactor) rawQuery(q string) string {
	if q == "" || rd.keep || len(rd.query) == 0 {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if ok && rd.query[strings.ToLower(name)] {
			parts[i] = k + "=" + url.QueryEscape(redacted(v))
		}
	}
	return strings.Join(parts, "&")
}

// text removes secret query values from an error message.
func (rd *redactor) text(s string, rawQuery string) string {
	if rd.keep || rawQuery == "" || len(rd.query) == 0 {
		return s
	}
	for _, p := range strings.Split(rawQuery, "&") {
		k, v, ok := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil {
			k = name
		}
		if ok && v != "" && rd.query[strings.ToLower(k)] {
			s = strings.ReplaceAll(s, v, redacted(v))
		}
	}
	return s
}

var idSeq atomic.Int64

// row builds the capture row of a finished exchange. It runs on the writer
// goroutine, so body parsing costs the proxy nothing.
func (r *Recorder) row(x *exchange) captures.Exchange {
	rd := r.redact
	e := captures.Exchange{
		ID:            r.idPrefix + strconv.FormatInt(idSeq.Add(1), 10),
		StartNS:       x.start.UnixNano(),
		Service:       x.service,
		Operation:     x.operation,
		Session:       x.session,
		Seq:           x.seq,
		Method:        x.method,
		Scheme:        x.scheme,
		Host:          x.host,
		Path:          x.path,
		Query:         rd.rawQuery(x.query),
		ReqHeaders:    rd.header(x.clientHeader()),
		RespHeaders:   rd.header(x.respHeader),
		Status:        int32(x.status),
		TTFBNS:        x.ttfb.Nanoseconds(),
		Error:         rd.text(x.errText, x.query),
		ClientAborted: x.aborted,
	}
	if x.isRPC {
		e.RPCMethod, e.RPCID, e.Tool = x.rpc.Method, x.rpc.ID, x.rpc.Tool
	}
	if x.reqBody != nil {
		body, size, _ := x.reqBody.snapshot()
		e.ReqBody, e.ReqSize = body, size
		e.ReqTruncated = size > int64(len(body))
	}
	if t := x.resp; t != nil {
		e.RespBody, e.RespSize = t.buf, t.size
		e.RespTruncated = t.size > int64(len(t.buf))
		e.DurationNS = e.TTFBNS // no byte arrived
		if !t.last.IsZero() {
			e.DurationNS = t.last.Sub(x.start).Nanoseconds()
		}
		e.Stream = t.frame != frameNone
		e.ChunkOffsetsNS = t.offsets
	} else {
		e.DurationNS = e.TTFBNS
	}
	if !x.isRPC {
		readOpenAI(&e, x)
	}
	return e
}

// clientHeader is the request header as the client sent it.
func (x *exchange) clientHeader() http.Header {
	if len(x.hopHeader) == 0 {
		return x.reqHeader
	}
	h := x.reqHeader.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, hv := range x.hopHeader {
		h[hv.name] = hv.values
	}
	return h
}

// readOpenAI fills model and token usage from OpenAI-style bodies: the
// request's model first (what the client asked for, and what a replay
// sends), the response's when the request had none, usage from a JSON body
// or from the stream's events (the include_usage chunk comes last).
func readOpenAI(e *captures.Exchange, x *exchange) {
	if !e.ReqTruncated && bytes.Contains(e.ReqBody, []byte(`"model"`)) {
		readOpenAIDoc(e, e.ReqBody)
	}
	t := x.resp
	if t == nil || len(t.buf) == 0 {
		return
	}
	if !bytes.Contains(t.buf, []byte(`"model"`)) && !bytes.Contains(t.buf, []byte(`"usage"`)) && !bytes.Contains(t.tail, []byte(`"usage"`)) {
		if enc := x.respHeader.Get("Content-Encoding"); enc == "" {
			return
		}
	}
	body := t.buf
	if enc := x.respHeader.Get("Content-Encoding"); enc != "" {
		if enc != "gzip" || e.RespTruncated {
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return
		}
		body, err = io.ReadAll(io.LimitReader(zr, 8<<20))
		if err != nil {
			return
		}
	}
	if t.frame != frameSSE {
		if !e.RespTruncated {
			readOpenAIDoc(e, bytes.TrimSpace(body))
		}
		return
	}
	e.Stream = true
	forEachData(body, func(d []byte) { readOpenAIDoc(e, d) })
	if len(t.tail) > 0 {
		// The tail may start mid-event; a broken first event fails to parse
		// and is skipped.
		forEachData(t.tail, func(d []byte) { readOpenAIDoc(e, d) })
	}
}

// forEachData calls fn with the payload of every "data:" line.
func forEachData(b []byte, fn func([]byte)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, "\r")
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			d = bytes.TrimSpace(d)
			if len(d) > 0 && d[0] == '{' {
				fn(d)
			}
		}
	}
}

func readOpenAIDoc(e *captures.Exchange, doc []byte) {
	if len(doc) == 0 || doc[0] != '{' {
		return
	}
	var b openAIBody
	if json.Unmarshal(doc, &b) != nil {
		return
	}
	if b.Model != "" && e.Model == "" {
		e.Model = b.Model
	}
	if u := b.Usage; u != nil {
		e.PromptTokens = u.PromptTokens + u.InputTokens
		e.CompletionTokens = u.CompletionTokens + u.OutputTokens
	}
}
