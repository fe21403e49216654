package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// reqTee copies up to max bytes of a request body while the transport sends
// it upstream, and counts the rest. The transport reads it on its own
// goroutine, so the copy is guarded.
type reqTee struct {
	rc  io.ReadCloser
	max int64

	mu   sync.Mutex
	buf  []byte
	size int64
	eof  bool
}

func (t *reqTee) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	t.size += int64(n)
	if room := t.max - int64(len(t.buf)); room > 0 && n > 0 {
		t.buf = append(t.buf, p[:min(int64(n), room)]...)
	}
	if err == io.EOF {
		t.eof = true
	}
	t.mu.Unlock()
	return n, err
}

func (t *reqTee) Close() error { return t.rc.Close() }

// wholeMax is the largest request body whole reads at once.
const wholeMax = 64 << 10

// whole reads a small request body that has already arrived with its
// headers (one read returns all of it, from the server's buffer) into the
// tee and returns it, or returns nil and leaves the body to stream through
// the tee as it comes, from where this read stopped. A request that
// expects 100 Continue is left alone: reading its body would answer the
// client before the upstream does.
func (t *reqTee) whole(req *http.Request) []byte {
	n := req.ContentLength
	if n <= 0 || n > wholeMax || n > t.max || req.Header.Get("Expect") != "" {
		return nil
	}
	buf := make([]byte, n)
	k, err := t.rc.Read(buf)
	if int64(k) == n && err == nil {
		// Some bodies say EOF only on the read after their last byte.
		var one [1]byte
		var k2 int
		k2, err = t.rc.Read(one[:])
		if k2 > 0 && err == nil {
			err = errors.New("request body longer than its Content-Length")
		}
	}
	if int64(k) == n && err == io.EOF {
		t.buf, t.size, t.eof = buf, n, true
		return buf
	}
	// Not whole: the tee reads what was read first, then the rest.
	t.rc = &prefixed{pre: buf[:k], err: err, ReadCloser: t.rc}
	return nil
}

// prefixed reads pre, then err if there was one, then the body.
type prefixed struct {
	pre []byte
	err error
	io.ReadCloser
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.ReadCloser.Read(b)
}

// snapshot returns the bytes kept so far and the size seen.
func (t *reqTee) snapshot() (body []byte, size int64, complete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf, t.size, t.eof
}

// framing says how a response body divides into the units whose arrival is
// timed.
type framing uint8

const (
	frameNone   framing = iota // not a stream: no offsets
	frameSSE                   // one offset per server-sent event (blank-line terminated)
	frameLines                 // one offset per non-empty line (NDJSON, JSON Lines)
	frameChunks                // one offset per read that returned bytes (other chunked streams)
)

// tailMax is how much of the end of a truncated stream is kept so that the
// usage event an OpenAI stream sends last can still be read.
const tailMax = 16 << 10

// respTee is the response body the client is served from. Every read is
// timestamped: the offsets of SSE events, lines or chunks are taken when
// the bytes arrive from upstream, before they are written to the client.
// Close (which goproxy always calls once the copy ends) completes the
// exchange.
type respTee struct {
	x     *exchange
	rc    io.ReadCloser
	max   int64
	frame framing

	buf     []byte
	tail    []byte // last tailMax bytes once buf is full
	size    int64
	offsets []int64
	last    time.Time // arrival of the last byte
	eof     bool
	err     error // upstream read error other than EOF

	idle  time.Duration // the idle timeout; timer fires after idle without bytes
	timer *time.Timer

	// SSE and line scanning state, carried across reads.
	nl      bool // previous significant byte was '\n'
	inEvent bool // bytes seen since the last event or line ended
}

func (t *respTee) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	now := time.Now()
	if n > 0 {
		if t.timer != nil {
			t.timer.Reset(t.idle)
		}
		t.last = now
		t.size += int64(n)
		chunk := p[:n]
		if room := t.max - int64(len(t.buf)); room > 0 {
			t.buf = append(t.buf, chunk[:min(int64(n), room)]...)
		}
		if t.size > t.max && t.frame == frameSSE {
			t.keepTail(chunk)
		}
		t.mark(chunk, now.Sub(t.x.start).Nanoseconds())
	}
	if err == io.EOF {
		t.eof = true
		if t.last.IsZero() {
			t.last = now
		}
		if t.inEvent && t.frame != frameChunks {
			// An unterminated last event or line still arrived.
			t.offsets = append(t.offsets, t.last.Sub(t.x.start).Nanoseconds())
			t.inEvent = false
		}
	} else if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// mark records the offset of every event or line that ends in chunk.
func (t *respTee) mark(chunk []byte, off int64) {
	switch t.frame {
	case frameChunks:
		t.offsets = append(t.offsets, off)
	case frameSSE:
		for _, c := range chunk {
			switch c {
			case '\r':
			case '\n':
				if t.nl && t.inEvent {
					t.offsets = append(t.offsets, off)
					t.inEvent = false
				}
				t.nl = true
			default:
				t.nl = false
				t.inEvent = true
			}
		}
	case frameLines:
		for _, c := range chunk {
			switch c {
			case '\r':
			case '\n':
				if t.inEvent {
					t.offsets = append(t.offsets, off)
					t.inEvent = false
				}
			case ' ', '\t':
			default:
				t.inEvent = true
			}
		}
	}
}

func (t *respTee) keepTail(chunk []byte) {
	if len(chunk) >= tailMax {
		t.tail = append(t.tail[:0], chunk[len(chunk)-tailMax:]...)
		return
	}
	if over := len(t.tail) + len(chunk) - tailMax; over > 0 {
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	t.tail = append(t.tail, chunk...)
}

func (t *respTee) Close() error {
	err := t.rc.Close()
	t.x.finish(t)
	return err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// WriteTo is what goproxy's io.Copy uses: without it io.Copy allocates a
// 32 KiB buffer for every response.
func (t *respTee) WriteTo(w io.Writer) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := t.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m < n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
