package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
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
		ReqHeaders:    rd.header(x.reqHeader, x.clientHeader()...),
		RespHeaders:   rd.header(x.respHeader, x.respHop...), // as the upstream sent it
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
	if !x.end.IsZero() {
		// A failure or a client that left: the time until then, which is
		// how long the client waited.
		e.DurationNS = max(e.DurationNS, x.end.Sub(x.start).Nanoseconds())
	}
	if !x.isRPC {
		readOpenAI(&e, x)
	}
	// Model and usage are read first, from the bodies as they were; the
	// sizes stay the true ones on the wire.
	if !rd.keep {
		e.Path = rd.tokens(e.Path)
		e.ReqBody = rd.body(e.ReqBody, x.reqHeader, e.ReqTruncated)
		e.RespBody = rd.body(e.RespBody, x.respHeader, e.RespTruncated)
	}
	return e
}

// clientHeader is what the request header was as the client sent it,
// besides x.reqHeader: the hop-by-hop headers removed before it went
// upstream and its Host (Go keeps that apart from the header map).
func (x *exchange) clientHeader() []hopValue {
	over := x.hopHeader
	if x.clientHost != "" {
		over = append(over[:len(over):len(over)], hopValue{"Host", []string{x.clientHost}})
	}
	return over
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
	b, ok := openAIFields(doc)
	if !ok {
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
