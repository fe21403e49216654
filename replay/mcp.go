package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// mcpState is one virtual user's live MCP session: each user initialises on
// its own, then sends the live session id and negotiated protocol version on
// every request, with its own JSON-RPC id sequence mapped from the recorded
// one.
type mcpState struct {
	session string
	version string
	nextID  int64
	ids     map[string]string // recorded id JSON → live id JSON
	ready   bool
	stream  *heldStream // the standalone GET stream, while it is open
}

// heldStream is an open standalone GET stream: what the server sends on it
// is read and dropped until the session ends and the user closes it.
type heldStream struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the reading goroutine has ended
}

// defaultInit is sent when the capture holds no initialize to copy.
var defaultInit = []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"loadtape","version":"1"}}}`)

var initializedNote = []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

// rewrite maps a recorded JSON-RPC message onto the live session: a fresh id
// (remembered, so notifications/cancelled can name it), a fresh progress
// token. It returns the body and the live id ("" for a notification).
func (m *mcpState) rewrite(body []byte) ([]byte, string) {
	var msg map[string]json.RawMessage
	if json.Unmarshal(body, &msg) != nil {
		return body, "" // not one JSON-RPC object (a batch, or garbage): send as recorded
	}
	live := ""
	if old, ok := msg["id"]; ok && string(old) != "null" {
		m.nextID++
		live = strconv.FormatInt(m.nextID, 10)
		if m.ids == nil {
			m.ids = map[string]string{}
		}
		m.ids[string(bytes.TrimSpace(old))] = live
		msg["id"] = json.RawMessage(live)
	}
	if p, ok := msg["params"]; ok {
		var params map[string]json.RawMessage
		if json.Unmarshal(p, &params) == nil {
			changed := false
			if rid, ok := params["requestId"]; ok {
				if l, ok := m.ids[string(bytes.TrimSpace(rid))]; ok {
					params["requestId"] = json.RawMessage(l)
					changed = true
				}
			}
			if meta, ok := params["_meta"]; ok {
				var mm map[string]json.RawMessage
				if json.Unmarshal(meta, &mm) == nil {
					if _, ok := mm["progressToken"]; ok {
						mm["progressToken"] = json.RawMessage(strconv.Quote("lt-" + strconv.FormatInt(m.nextID, 10)))
						params["_meta"], _ = json.Marshal(mm)
						changed = true
					}
				}
			}
			if changed {
				msg["params"], _ = json.Marshal(params)
			}
		}
	}
	out, err := json.Marshal(msg)
	if err != nil {
		return body, live
	}
	return out, live
}

// mcpHeaders are the recorded headers with the live session on top.
func (v *vu) mcpHeaders(x *captures.Exchange) http.Header {
	h := headers(x, v.s.rp.headers)
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json, text/event-stream")
	}
	h.Set("Content-Type", "application/json")
	if v.mcp.session != "" {
		h.Set("Mcp-Session-Id", v.mcp.session)
	}
	if v.mcp.version != "" {
		h.Set("Mcp-Protocol-Version", v.mcp.version)
	}
	return h
}

// handshake runs a live initialize and notifications/initialized, one row
// each. It copies the capture's initialize when there is one.
func (v *vu) handshake(st *stageWindow, intended time.Time) (time.Time, bool) {
	s := v.s
	v.closeStream()
	v.mcp = &mcpState{nextID: v.mcpNext()}
	x := s.sp.mcpInit
	body := defaultInit
	var e *entry
	var recorded int32
	if x != nil {
		body = x.ReqBody
		e = &entry{ex: x}
		recorded = x.Status
	} else {
		x = s.sp.probeOrAny()
	}
	r := v.base(st, "mcp.initialize", e, intended)
	b, id := v.mcp.rewrite(body)
	o := &outgoing{method: http.MethodPost, url: s.tgt.url(x), header: v.mcpHeaders(x), body: b, rpcID: id}
	resp := send(v.ctx, s.rp.client, s.rp.timeout, o, &r)
	judge(&r, resp, recorded, nil, s.rp.profile.Classify, false)
	ok := r.ErrorKind == ""
	if ok {
		v.mcp.session = resp.header.Get("Mcp-Session-Id")
		var res struct {
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		if json.Unmarshal(resp.rpc, &res) == nil {
			v.mcp.version = res.Result.ProtocolVersion
		}
	}
	s.rp.sink.put(&r)
	if !ok {
		return endOf(&r), false
	}
	r = v.base(st, "mcp.notifications/initialized", nil, endOf(&r))
	o = &outgoing{method: http.MethodPost, url: s.tgt.url(x), header: v.mcpHeaders(x), body: initializedNote}
	resp = send(v.ctx, s.rp.client, s.rp.timeout, o, &r)
	judge(&r, resp, 0, nil, s.rp.profile.Classify, false)
	s.rp.sink.put(&r)
	v.mcp.ready = r.ErrorKind == ""
	return endOf(&r), v.mcp.ready
}

// mcpNext keeps ids growing across re-initialisations of one user, so a
// late answer to an old session can never match a new request.
func (v *vu) mcpNext() int64 {
	if v.mcp == nil {
		return 0
	}
	return v.mcp.nextID
}

// doMCP sends one recorded MCP message over the user's live session,
// initialising first when needed and once more after a 404 (expired session).
func (v *vu) doMCP(st *stageWindow, op string, x *captures.Exchange, body []byte, intended time.Time, probe bool) time.Time {
	s := v.s
	switch x.RPCMethod {
	case "initialize":
		if !probe {
			end, _ := v.handshake(st, intended)
			return end
		}
	case "notifications/initialized":
		if v.mcp != nil && v.mcp.ready {
			return time.Now() // the live handshake already sent it
		}
	}
	if v.mcp == nil || !v.mcp.ready {
		end, ok := v.handshake(st, intended)
		if !ok {
			return end
		}
		intended = end
	}
	for attempt := 0; ; attempt++ {
		r := v.base(st, op, &entry{ex: x}, intended)
		b, id := v.mcp.rewrite(body)
		o := &outgoing{method: x.Method, url: s.tgt.url(x), header: v.mcpHeaders(x), body: b, rpcID: id}
		if o.method == "" {
			o.method = http.MethodPost
		}
		resp := send(v.ctx, s.rp.client, s.rp.timeout, o, &r)
		expired := resp != nil && resp.status == http.StatusNotFound && v.mcp.session != ""
		judge(&r, resp, x.Status, s.sc.Checks, s.rp.profile.Classify, probe)
		if expired {
			r.Error = "mcp session expired (404), re-initialising: " + r.Error
		}
		s.rp.sink.put(&r)
		if !expired || attempt > 0 {
			return endOf(&r)
		}
		v.mcp.ready = false
		end, ok := v.handshake(st, endOf(&r))
		if !ok {
			return end
		}
		intended = end
	}
}

// probeOrAny returns some MCP exchange of the service to take the endpoint
// path and headers from when the capture holds no initialize.
func (sp *servicePool) probeOrAny() *captures.Exchange {
	for _, op := range sortedKeys(sp.ops) {
		for _, e := range sp.ops[op] {
			if e.ex.RPCMethod != "" {
				return e.ex
			}
		}
	}
	return sp.ops[sortedKeys(sp.ops)[0]][0].ex
}

// isMCPDelete recognises a recorded session termination: a DELETE carrying
// an Mcp-Session-Id.
func isMCPDelete(x *captures.Exchange) bool {
	if x.Method != http.MethodDelete {
		return false
	}
	for _, h := range x.ReqHeaders {
		if http.CanonicalHeaderKey(h.Name) == "Mcp-Session-Id" {
			return true
		}
	}
	return false
}

// endMCP replays a session termination on the user's live session; the
// user initialises afresh before its next MCP request. Without a live
// session there is nothing to end and nothing is sent.
func (v *vu) endMCP(st *stageWindow, op string, e *entry, intended time.Time) time.Time {
	if v.mcp == nil || !v.mcp.ready {
		return time.Now()
	}
	s := v.s
	r := v.base(st, op, e, intended)
	h := v.mcpHeaders(e.ex)
	h.Del("Content-Type")
	o := &outgoing{method: http.MethodDelete, url: s.tgt.url(e.ex), header: h}
	resp := send(v.ctx, s.rp.client, s.rp.timeout, o, &r)
	judge(&r, resp, e.ex.Status, s.sc.Checks, s.rp.profile.Classify, false)
	s.rp.sink.put(&r)
	// The client closed its stream with the session (a server that ended
	// the session has usually closed it already).
	v.closeStream()
	v.mcp.ready = false
	v.mcp.session = ""
	return endOf(&r)
}

// openStream replays a client's standalone GET stream on the user's live
// session (initialising first when needed), with the live session id and
// protocol version. Its row measures the opening: status and time to the
// response headers (duration_ns = ttfb_ns), judged against the recording,
// so a server that answered 405 (no stream offered) is expected to answer
// 405 again. An opened stream is held, as the client held it, until the
// session ends (its DELETE, a new initialize) or the user stops; a
// recorded stream's length says nothing about the server, only about how
// long the client's session lasted. The user waits for the headers, as
// an SDK's GET does before it reads events.
func (v *vu) openStream(st *stageWindow, op string, e *entry, intended time.Time) time.Time {
	s := v.s
	if v.mcp == nil || !v.mcp.ready {
		end, ok := v.handshake(st, intended)
		if !ok {
			return end
		}
		intended = end
	}
	v.closeStream()
	r := v.base(st, op, e, intended)
	h := v.mcpHeaders(e.ex)
	h.Del("Content-Type")
	h.Set("Accept", "text/event-stream")
	o := &outgoing{method: http.MethodGet, url: s.tgt.url(e.ex), header: h}
	ctx, cancel := context.WithCancelCause(v.ctx)
	resp, body := sendHeld(ctx, cancel, v.ctx, s.rp.client, s.rp.timeout, o, &r)
	judge(&r, resp, e.ex.Status, s.sc.Checks, s.rp.profile.Classify, false)
	s.rp.sink.put(&r)
	if body != nil && v.idx < 0 {
		// An open-mode arrival is one request with no session to close
		// the stream with: it is closed once opened.
		body.Close()
		body = nil
	}
	if body == nil {
		cancel(nil)
		return endOf(&r)
	}
	hs := &heldStream{cancel: cancel, done: make(chan struct{})}
	v.mcp.stream = hs
	go func() {
		// Ends when the server ends the stream or the user closes it
		// (closeStream, or the user's context at its stop).
		defer close(hs.done)
		defer body.Close()
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		for {
			if _, err := body.Read(*bp); err != nil {
				return
			}
		}
	}()
	return endOf(&r)
}

// closeStream closes the user's standalone stream, if one is open, and
// waits for its reader to end.
func (v *vu) closeStream() {
	if v.mcp == nil || v.mcp.stream == nil {
		return
	}
	v.mcp.stream.cancel(nil)
	<-v.mcp.stream.done
	v.mcp.stream = nil
}
