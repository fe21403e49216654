package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
)

// Reading an HTTP/1.1 answer as net/http's transport reads it (its
// ReadResponse, readTransfer and body): the same framing, the same reads
// of the body (so the same chunk timing) and the same error texts.

// max1xx is how many informational answers net/http skips before giving up.
const max1xx = 5

var (
	errTrailerEOF = errors.New("http: unexpected EOF reading trailer")
	errToo1xx     = errors.New("net/http: too many 1xx informational responses")
)

// h1Head is an answer's status, headers and framing.
type h1Head struct {
	status  int
	header  answerHeader
	none    bool   // not one byte of an answer came: the connection broke before
	noBody  bool   // HEAD, 1xx, 204, 304
	chunked bool   // Transfer-Encoding: chunked
	ctype   string // Content-Type
	length  int64  // Content-Length; -1: until the server closes
	close   bool   // the connection ends with this answer
}

// readHead reads the status line and headers of the answer to a request
// of method, skipping informational (1xx) answers.
func (c *h1Conn) readHead(method string) (h h1Head, err error) {
	if _, err := c.br.Peek(1); err != nil {
		h.none = true
		return h, err
	}
	for n1xx := 0; ; n1xx++ {
		major, minor, err := c.statusLine(&h)
		if err != nil {
			return h, err
		}
		hd, err := c.readHeader()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		if h.status >= 100 && h.status <= 199 && h.status != http.StatusSwitchingProtocols {
			if n1xx+1 > max1xx {
				return h, errToo1xx
			}
			continue
		}
		h.header = hd
		return h, h.frame(method, major, minor)
	}
}

// maxHeaderBytes is net/http's default bound on an answer's headers.
const maxHeaderBytes = 10 << 20

// readHeader reads the header block up to its empty line. A block of
// plain "Name: value" lines is kept as one string that Get scans (a map
// and a string per value, as textproto makes, were a third of a request's
// allocations); anything unusual in it (a folded line, a byte textproto
// refuses) is parsed by textproto itself, for its answer and its error.
func (c *h1Conn) readHeader() (answerHeader, error) {
	c.hbuf = c.hbuf[:0]
	start := 0 // of the line being read
	for {
		frag, err := c.br.ReadSlice('\n')
		c.hbuf = append(c.hbuf, frag...)
		if len(c.hbuf) > maxHeaderBytes {
			return answerHeader{}, fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", maxHeaderBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			// textproto takes a last line cut short as a line: it says
			// what was wrong with it, or that the block ended early.
			return c.textprotoHeader()
		}
		if err != nil {
			return answerHeader{}, err
		}
		line := c.hbuf[start:]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			break
		}
		start = len(c.hbuf)
	}
	block := c.hbuf[:start]
	for rest := block; len(rest) > 0; {
		nl := bytes.IndexByte(rest, '\n')
		line := bytes.TrimSuffix(rest[:nl], []byte{'\r'})
		rest = rest[nl+1:]
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(k) == 0 || !tokenOnly(k) || !fieldValueOnly(v) {
			return c.textprotoHeader()
		}
	}
	return answerHeader{lines: string(block)}, nil
}

// textprotoHeader parses the header block read into hbuf with textproto.
func (c *h1Conn) textprotoHeader() (answerHeader, error) {
	mh, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(c.hbuf))).ReadMIMEHeader()
	if mh == nil {
		mh = textproto.MIMEHeader{}
	}
	return answerHeader{h: http.Header(mh)}, err
}

// answerHeader is an answer's headers as replay reads them (Get): net/http's
// or textproto's map, or the HTTP/1.1 client's block of checked lines.
type answerHeader struct {
	h     http.Header
	lines string // "Name: value" lines, each ending in \n (or \r\n); used when h is nil
	hide  uint8  // names dropped from lines, as net/http drops them from its map
}

// The names net/http takes out of an answer's header map once read.
const (
	hideTransferEncoding uint8 = 1 << iota
	hideConnection
)

func headerOf(h http.Header) answerHeader { return answerHeader{h: h} }

// Get is http.Header's Get: the first value of the name, any case.
func (a *answerHeader) Get(name string) string {
	if a.h != nil {
		return a.h.Get(name)
	}
	var buf [1]string
	if vs := a.values(name, buf[:0]); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// values appends the name's values to buf.
func (a *answerHeader) values(name string, buf []string) []string {
	if a.h != nil {
		return append(buf, a.h[textproto.CanonicalMIMEHeaderKey(name)]...)
	}
	if a.hide&hideTransferEncoding != 0 && strings.EqualFold(name, "Transfer-Encoding") ||
		a.hide&hideConnection != 0 && strings.EqualFold(name, "Connection") {
		return buf
	}
	for rest := a.lines; rest != ""; {
		nl := strings.IndexByte(rest, '\n')
		line := rest[:nl]
		rest = rest[nl+1:]
		if len(line) > len(name) && line[len(name)] == ':' && strings.EqualFold(line[:len(name)], name) {
			buf = append(buf, strings.Trim(line[len(name)+1:], " \t\r"))
		}
	}
	return buf
}

// drop takes a name out, as net/http deletes it from its map.
func (a *answerHeader) drop(name string, bit uint8) {
	if a.h != nil {
		delete(a.h, name)
		return
	}
	a.hide |= bit
}

// tokenOnly: every byte may be in a header name.
func tokenOnly[S string | []byte](k S) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// fieldValueOnly: no control character but tab.
func fieldValueOnly[S string | []byte](v S) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// statusLine reads "HTTP/1.1 200 OK" into h.status.
func (c *h1Conn) statusLine(h *h1Head) (major, minor int, err error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		rest, err2 := c.tp.ReadLine()
		line, err = append(append([]byte(nil), line...), rest...), err2
	}
	if err == io.EOF && len(line) > 0 {
		err = nil // as textproto's ReadLine: a last line cut short is a line
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
	proto, status, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return 0, 0, badString("malformed HTTP response", line)
	}
	status = bytes.TrimLeft(status, " ")
	code, _, _ := bytes.Cut(status, []byte{' '})
	if len(code) != 3 || code[0] < '0' || code[0] > '9' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return 0, 0, badString("malformed HTTP status code", code)
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	switch string(proto) {
	case "HTTP/1.1":
		return 1, 1, nil
	case "HTTP/1.0":
		return 1, 0, nil
	}
	if major, minor, ok = http.ParseHTTPVersion(string(proto)); !ok {
		return 0, 0, badString("malformed HTTP version", proto)
	}
	return major, minor, nil
}

func badString(what string, val []byte) error { return fmt.Errorf("%s %q", what, val) }

// framingHeaders are the values frame reads, gathered in one pass.
type framingHeaders struct {
	te, cl, conn []string
	ctype        string
	buf          [6]string
}

// gather collects the framing headers' values (and the first content
// type) from a's lines in one pass, or from its map.
func (f *framingHeaders) gather(a *answerHeader) {
	if a.h != nil {
		f.te, f.cl, f.conn = a.h["Transfer-Encoding"], a.h["Content-Length"], a.h["Connection"]
		f.ctype = a.h.Get("Content-Type")
		return
	}
	te, cl, conn := f.buf[0:0:2], f.buf[2:2:4], f.buf[4:4:6]
	for rest := a.lines; rest != ""; {
		nl := strings.IndexByte(rest, '\n')
		line := rest[:nl]
		rest = rest[nl+1:]
		colon := strings.IndexByte(line, ':')
		k := line[:colon]
		switch len(k) {
		case len("Content-Type"):
			if f.ctype == "" && strings.EqualFold(k, "Content-Type") {
				f.ctype = strings.Trim(line[colon+1:], " \t\r")
			}
		case len("Content-Length"):
			if strings.EqualFold(k, "Content-Length") {
				cl = append(cl, strings.Trim(line[colon+1:], " \t\r"))
			}
		case len("Transfer-Encoding"):
			if strings.EqualFold(k, "Transfer-Encoding") {
				te = append(te, strings.Trim(line[colon+1:], " \t\r"))
			}
		case len("Connection"):
			if strings.EqualFold(k, "Connection") {
				conn = append(conn, strings.Trim(line[colon+1:], " \t\r"))
			}
		}
	}
	f.te, f.cl, f.conn = te, cl, conn
}

// frame reads the body's framing from the headers, as net/http's
// readTransfer does for a response (and drops what it drops).
func (h *h1Head) frame(method string, major, minor int) error {
	hd := &h.header
	var f framingHeaders
	f.gather(hd)
	h.ctype = f.ctype
	if raw := f.te; len(raw) > 0 {
		hd.drop("Transfer-Encoding", hideTransferEncoding)
		if major > 1 || major == 1 && minor >= 1 {
			if len(raw) != 1 {
				return fmt.Errorf("too many transfer encodings: %q", raw)
			}
			if !strings.EqualFold(raw[0], "chunked") {
				return fmt.Errorf("unsupported transfer encoding: %q", raw[0])
			}
			h.chunked = true
		}
	}
	cls := f.cl
	if len(cls) > 1 {
		first := strings.TrimSpace(cls[0])
		for _, cl := range cls[1:] {
			if strings.TrimSpace(cl) != first {
				return fmt.Errorf("http: message cannot contain multiple Content-Length headers; got %q", cls)
			}
		}
		if hd.h != nil {
			hd.h["Content-Length"] = []string{first}
		} // the lines' Get gives the first already
		cls = cls[:1]
	}
	h.close = shouldClose(major, minor, f.conn, hd)
	h.length = -1
	switch {
	case method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified:
		h.noBody, h.length = true, 0
		if len(cls) > 0 && method == http.MethodHead {
			if _, err := parseContentLength(cls[0]); err != nil {
				return err
			}
		}
		return nil
	case h.status == http.StatusSwitchingProtocols:
		h.close = true // the rest of the connection is the body
		return nil
	case h.chunked:
		return nil
	}
	if len(cls) > 0 {
		n, err := parseContentLength(cls[0])
		if err != nil {
			return err
		}
		h.length = n
		return nil
	}
	h.close = true // unbounded: until the server closes
	return nil
}

func parseContentLength(cl string) (int64, error) {
	cl = strings.TrimSpace(cl)
	if cl == "" {
		return -1, errors.New("invalid empty Content-Length")
	}
	n, err := strconv.ParseUint(cl, 10, 63)
	if err != nil {
		return -1, badString("bad Content-Length", []byte(cl))
	}
	return int64(n), nil
}

// shouldClose is net/http's: HTTP/1.0 closes unless asked to keep alive,
// HTTP/1.1 when the server says close (and that header is dropped).
func shouldClose(major, minor int, conv []string, hd *answerHeader) bool {
	if major < 1 {
		return true
	}
	hasClose := hasToken(conv, "close")
	if major == 1 && minor == 0 {
		return hasClose || !hasToken(conv, "keep-alive")
	}
	if hasClose {
		hd.drop("Connection", hideConnection)
	}
	return hasClose
}

func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// body is the reader of the answer's body, reading from the connection's
// buffer as net/http's body does: a read returns what one read of the
// connection gave, so chunks are timed alike.
func (c *h1Conn) body(h *h1Head) io.Reader {
	switch {
	case h.noBody:
		return http.NoBody
	case h.chunked:
		c.chunked = chunkedBody{cr: httputil.NewChunkedReader(c.br), c: c}
		return &c.chunked
	case h.length >= 0:
		c.fixed = fixedBody{r: c.br, n: h.length}
		return &c.fixed
	}
	return c.br
}

// fixedBody reads a Content-Length body: short is io.ErrUnexpectedEOF, and
// the last bytes come with io.EOF.
type fixedBody struct {
	r *bufio.Reader
	n int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && b.n == 0 {
		err = io.EOF
	}
	return n, err
}

// chunkedBody reads a chunked body and then its trailer.
type chunkedBody struct {
	cr io.Reader
	c  *h1Conn
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	n, err := b.cr.Read(p)
	if err == io.EOF {
		if e := b.c.readTrailer(); e != nil {
			err = e
		}
	}
	return n, err
}

// readTrailer reads what follows the last chunk: an empty line, or trailer
// headers (read and dropped: replay records none).
func (c *h1Conn) readTrailer() error {
	buf, err := c.br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		c.br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if _, err := c.tp.ReadMIMEHeader(); err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	return nil
}
