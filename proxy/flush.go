package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
)

// flushWriter flushes after every write of a response without a
// Content-Length, so that any chunked stream (NDJSON as well as SSE, which
// is all goproxy flushes by itself, since Go's client strips
// Transfer-Encoding from the header goproxy looks at) reaches the client
// chunk by chunk. It keeps http.Hijacker: goproxy's WebSocket path panics
// without it.
type flushWriter struct {
	http.ResponseWriter
	stream int8 // 0 undecided, 1 flush every write, -1 never
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if f.stream == 0 {
		f.stream = -1
		if f.Header().Get("Content-Length") == "" {
			f.stream = 1
		}
	}
	if f.stream > 0 && err == nil {
		f.Flush()
	}
	return n, err
}

// WriteHeader sends an event stream's headers at once: a server holding a
// stream open with nothing to say yet (an MCP server's standalone GET
// stream) would otherwise keep a client that waits for the headers waiting
// until its first event.
func (f *flushWriter) WriteHeader(code int) {
	f.ResponseWriter.WriteHeader(code)
	if strings.HasPrefix(f.Header().Get("Content-Type"), "text/event-stream") {
		f.Flush()
	}
}

func (f *flushWriter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (f *flushWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(f.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (f *flushWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }
