package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
)

// serve proxies one exchange of a reverse route or the forward proxy and
// records it. It does what goproxy's handler does for a plain request, and
// no more: proxy headers and hop-by-hop headers out (prepare), the round
// trip (exchange.RoundTrip, which always answers), the upstream's headers,
// status, body and trailers to the client. Going past goproxy here saves
// what the recorder never uses of it on every exchange: its context and
// log arguments, its request and response filter chains, a copy of every
// response header value. An upgrade (WebSocket) still goes through
// goproxy, which relays the frames after the 101.
func (r *Recorder) serve(w http.ResponseWriter, req *http.Request, x *exchange) {
	if req.Header["Upgrade"] != nil {
		req = req.WithContext(context.WithValue(req.Context(), exchangeKey{}, x))
		r.gp.ServeHTTP(&flushWriter{ResponseWriter: w}, req)
		x.finish(nil) // no-op unless goproxy never closed the body
		x.breakOff(w)
		return
	}
	req.RequestURI = "" // a client request, not a server's
	resp := x.prepare(req)
	if resp == nil {
		// goproxy's part of the hop-by-hop headers (prepare kept them
		// for the record); Accept-Encoding stays, so the body comes back
		// as the upstream encoded it.
		for _, k := range goproxyHop {
			delete(req.Header, k)
		}
		resp, _ = x.RoundTrip(req, nil)
	}
	h := w.Header()
	for k, vs := range resp.Header {
		// The values are not changed from here on, so they are shared
		// with the record (x.respHeader) instead of copied.
		h[k] = vs
	}
	// Trailers known now are announced, so that the server sends the body
	// chunked (HTTP/1.1) or ends with trailers (HTTP/2), as goproxy and
	// httputil.ReverseProxy do.
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	fw := &flushWriter{ResponseWriter: w}
	fw.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(fw, resp.Body) // a failed copy is the tee's to record
	resp.Body.Close()
	if len(resp.Trailer) > 0 {
		// Trailers that came unannounced (HTTP/2 upstreams) go out under
		// http.TrailerPrefix; a body short enough to go out with a
		// Content-Length would drop them, so it is flushed first.
		_ = http.NewResponseController(w).Flush()
		for k, vs := range resp.Trailer {
			if len(resp.Trailer) != announced {
				k = http.TrailerPrefix + k
			}
			h[k] = append(h[k], vs...)
		}
	}
	x.finish(nil) // no-op unless the body was never closed
	x.breakOff(w)
}
