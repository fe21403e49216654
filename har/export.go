package har

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loadtape/loadtape/captures"
)

// ExportOptions configures Export.
type ExportOptions struct {
	Version string // loadtape version, for log.creator
}

// Export reads the exchanges of a capture (files, directories, globs) and
// writes them as one HAR 1.2 archive: entries in order of start time, one
// page per session (pageref = the session key) so that a network panel
// groups them, bodies decoded as HAR wants them (gzip and deflate undone;
// text that is not UTF-8, or another encoding, as base64 with the
// Content-Encoding header kept). A body the recorder cut at --max-body keeps
// its true size in content.size and request.bodySize. It returns the number
// of entries.
func Export(w io.Writer, paths []string, opts ExportOptions) (int, error) {
	r, err := captures.NewReader[captures.Exchange](paths, captures.ReaderOptions{})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var xs []captures.Exchange
	for r.Next() {
		for _, x := range r.Batch() {
			x.ReqHeaders = append([]captures.Header(nil), x.ReqHeaders...)
			x.RespHeaders = append([]captures.Header(nil), x.RespHeaders...)
			x.ReqBody = append([]byte(nil), x.ReqBody...)
			x.RespBody = append([]byte(nil), x.RespBody...)
			x.ChunkOffsetsNS = append([]int64(nil), x.ChunkOffsetsNS...)
			xs = append(xs, x)
		}
	}
	if err := r.Err(); err != nil {
		return 0, err
	}
	if len(xs) == 0 {
		return 0, fmt.Errorf("har: %s: %w", strings.Join(paths, ", "), errNoExchanges)
	}
	sort.SliceStable(xs, func(i, j int) bool {
		if xs[i].StartNS != xs[j].StartNS {
			return xs[i].StartNS < xs[j].StartNS
		}
		return xs[i].ID < xs[j].ID
	})
	f := File{Log: Log{Version: Version, Creator: Creator{Name: "loadtape", Version: opts.Version}, Entries: make([]Entry, 0, len(xs))}}
	pages := map[string]bool{}
	services := map[string]bool{}
	for i := range xs {
		services[xs[i].Service] = true
	}
	for i := range xs {
		x := &xs[i]
		page := x.Session
		if len(services) > 1 {
			page = x.Service + " " + x.Session
		}
		if !pages[page] {
			pages[page] = true
			f.Log.Pages = append(f.Log.Pages, Page{StartedDateTime: isoTime(x.StartNS), ID: page,
				Title: fmt.Sprintf("%s session %s", x.Service, x.Session), PageTimings: PageTimings{}})
		}
		f.Log.Entries = append(f.Log.Entries, entryOf(x, page))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return len(f.Log.Entries), enc.Encode(&f)
}

var errNoExchanges = errors.New("no exchanges to export")

func isoTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func entryOf(x *captures.Exchange, page string) Entry {
	u := url.URL{Scheme: x.Scheme, Host: x.Host, Path: x.Path, RawQuery: x.Query}
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	ttfb := float64(x.TTFBNS) / 1e6
	total := float64(x.DurationNS) / 1e6
	if x.Status == 0 {
		ttfb = total
	}
	seq := x.Seq
	e := Entry{
		Pageref:         page,
		StartedDateTime: isoTime(x.StartNS),
		Time:            total,
		Request: Request{
			Method: x.Method, URL: u.String(), HTTPVersion: "HTTP/1.1",
			Cookies: cookies(x.ReqHeaders, "Cookie"), Headers: pairs(x.ReqHeaders), QueryString: queryPairs(x.Query),
			HeadersSize: -1, BodySize: x.ReqSize,
		},
		Response: Response{
			Status: int(x.Status), StatusText: http.StatusText(int(x.Status)), HTTPVersion: "HTTP/1.1",
			Cookies: cookies(x.RespHeaders, "Set-Cookie"), Headers: pairs(x.RespHeaders),
			RedirectURL: headerValue(x.RespHeaders, "Location"), HeadersSize: -1, BodySize: x.RespSize,
		},
		Timings:   Timings{Send: 0, Wait: ttfb, Receive: max(0, total-ttfb)},
		Error:     x.Error,
		Service:   x.Service,
		Operation: x.Operation,
		Session:   x.Session,
		Seq:       &seq,
		// Offsets are copied only for streams, where they time events.
		ClientAborted: x.ClientAborted,
	}
	if x.Stream {
		e.ChunkOffsetsNS = x.ChunkOffsetsNS
	}
	if x.Status == 0 {
		e.Response.HTTPVersion = ""
		e.Response.BodySize = -1
	}
	if len(x.ReqBody) > 0 || x.ReqSize > 0 {
		body, _ := decodedBody(x.ReqBody, x.ReqHeaders, x.ReqTruncated)
		pd := &PostData{MimeType: headerValue(x.ReqHeaders, "Content-Type")}
		if !x.ReqTruncated {
			// What the capture holds is the body (redacted, maybe); only
			// a body cut at --max-body keeps its size on the wire.
			e.Request.BodySize = int64(len(body))
		}
		if utf8.Valid(body) {
			pd.Text = string(body)
		} else {
			pd.Text, pd.Encoding = base64.StdEncoding.EncodeToString(body), "base64"
		}
		e.Request.PostData = pd
	}
	body, decoded := decodedBody(x.RespBody, x.RespHeaders, x.RespTruncated)
	c := Content{Size: x.RespSize, MimeType: headerValue(x.RespHeaders, "Content-Type")}
	if !x.RespTruncated {
		c.Size = int64(len(body))
	}
	if decoded {
		c.Size = int64(len(body))
		if saved := c.Size - x.RespSize; saved >= 0 {
			c.Compression = &saved
		}
	}
	if utf8.Valid(body) {
		c.Text = string(body)
	} else {
		c.Text, c.Encoding = base64.StdEncoding.EncodeToString(body), "base64"
	}
	e.Response.Content = c
	return e
}

// decodedBody undoes a gzip or deflate Content-Encoding when the body is
// complete; it reports whether it did.
func decodedBody(b []byte, hs []captures.Header, truncated bool) ([]byte, bool) {
	enc := strings.ToLower(strings.TrimSpace(headerValue(hs, "Content-Encoding")))
	if enc == "" || enc == "identity" || truncated || len(b) == 0 {
		return b, false
	}
	var r io.Reader
	var err error
	switch enc {
	case "gzip", "x-gzip":
		r, err = gzip.NewReader(bytes.NewReader(b))
	case "deflate":
		if r, err = zlib.NewReader(bytes.NewReader(b)); err != nil {
			r, err = flate.NewReader(bytes.NewReader(b)), nil
		}
	default:
		return b, false
	}
	if err != nil {
		return b, false
	}
	out, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return b, false
	}
	return out, true
}

func pairs(hs []captures.Header) []NameValue {
	out := make([]NameValue, 0, len(hs))
	for _, h := range hs {
		out = append(out, NameValue{Name: h.Name, Value: h.Value})
	}
	return out
}

func headerValue(hs []captures.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func queryPairs(q string) []NameValue {
	out := []NameValue{}
	if q == "" {
		return out
	}
	for _, p := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		out = append(out, NameValue{Name: k, Value: v})
	}
	return out
}

// cookies lists the cookies of the Cookie (request) or Set-Cookie
// (response) headers.
func cookies(hs []captures.Header, name string) []Cookie {
	out := []Cookie{}
	h := http.Header{}
	for _, x := range hs {
		if strings.EqualFold(x.Name, name) {
			h.Add(name, x.Value)
		}
	}
	if name == "Cookie" {
		for _, c := range (&http.Request{Header: h}).Cookies() {
			out = append(out, Cookie{Name: c.Name, Value: c.Value})
		}
		return out
	}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		out = append(out, Cookie{Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain})
	}
	return out
}
