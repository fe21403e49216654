package har

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/proxy"
)

// ErrNoService is Import's answer when ImportOptions.Service is empty.
var ErrNoService = errors.New("har: a service name is required (--service NAME): the capture's exchanges are replayed against --target NAME=URL")

// InputError marks an error in what Import was given (a file, an entry, an
// option), found before anything was written.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// ImportOptions configures Import.
type ImportOptions struct {
	Service string // service name of every exchange (rules may name others)
	Out     string // capture directory to write (created)
	// SessionCookie names the cookie whose value keys the session of a
	// request (a login cookie); empty: sessions are the HAR's pages, and a
	// file without pages is one session. The MCP session, a rule's session
	// header and the credentials come first either way, as when recording.
	SessionCookie string
	Rules         *proxy.Rules // as `record --rules`
	KeepSecrets   bool         // as `record --keep-secrets`
	MaxBody       int64        // as `record --max-body`; proxy.DefaultMaxBody when 0
}

// ImportStats says what Import wrote.
type ImportStats struct {
	Files     int
	Exchanges int
	Sessions  int
}

// Import reads every HAR file (all are checked before anything is
// written), turns each entry into the row the recording proxy would have
// written for it (proxy.Offline), in order of start time, and writes them as
// a capture into opts.Out.
//
// HAR keeps bodies decoded, so a Content-Encoding header is dropped with the
// encoding it named. An entry's time starts when its request began to be
// sent (after blocked, dns, connect and ssl), as the proxy's clock does;
// time to first byte is send + wait, duration send + wait + receive.
func Import(paths []string, opts ImportOptions) (ImportStats, error) {
	var st ImportStats
	if opts.Service == "" {
		return st, &InputError{ErrNoService}
	}
	if opts.Out == "" {
		return st, &InputError{errors.New("har: an output directory is required (--out DIR)")}
	}
	type item struct {
		a     *Archive
		i     int
		start time.Time
	}
	var items []item
	for _, p := range paths {
		a, err := Read(p)
		if err != nil {
			return st, &InputError{err}
		}
		st.Files++
		for i := range a.File.Log.Entries {
			t, _ := ParseTime(a.File.Log.Entries[i].StartedDateTime)
			items = append(items, item{a, i, t})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].start.Before(items[j].start) })
	off := proxy.NewOffline(proxy.OfflineOptions{Rules: opts.Rules, KeepSecrets: opts.KeepSecrets, MaxBody: opts.MaxBody})
	rows := make([]captures.Exchange, 0, len(items))
	sessions := map[string]bool{}
	for _, it := range items {
		in, err := offlineExchange(it.a, it.i, opts)
		if err != nil {
			return st, &InputError{fmt.Errorf("%s: %w %d: %v", it.a.EntryPos(it.i), ErrBadEntry, it.i+1, err)}
		}
		x := off.Row(in)
		sessions[x.Service+"\x00"+x.Session] = true
		rows = append(rows, x)
	}
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: opts.Out, Flush: -1,
		Metadata: map[string]string{"loadtape.source": "har"}})
	if err != nil {
		return st, err
	}
	if err := w.Write(rows...); err != nil {
		_ = w.Close()
		return st, err
	}
	if err := w.Close(); err != nil {
		return st, err
	}
	st.Exchanges, st.Sessions = len(rows), len(sessions)
	return st, nil
}

// offlineExchange turns entry i of a into what the proxy needs.
func offlineExchange(a *Archive, i int, opts ImportOptions) (proxy.OfflineExchange, error) {
	e := &a.File.Log.Entries[i]
	u, _ := url.Parse(e.Request.URL)
	start, _ := ParseTime(e.StartedDateTime)
	ms := func(v float64) time.Duration { return time.Duration(math.Round(max(v, 0) * 1e6)) }
	opt := func(v *float64) time.Duration {
		if v == nil {
			return 0
		}
		return ms(*v)
	}
	t := e.Timings
	// ssl is part of connect (HAR 1.2), so it is not added again.
	start = start.Add(opt(t.Blocked) + opt(t.DNS) + opt(t.Connect))
	in := proxy.OfflineExchange{
		Service: opts.Service, Start: start, Client: "har",
		Method: e.Request.Method, Scheme: u.Scheme, Host: u.Host, Path: u.Path, Query: u.RawQuery,
		ReqHeader: header(e.Request.Headers), RespHeader: header(e.Response.Headers),
		Status: e.Response.Status, TTFB: ms(t.Send) + ms(t.Wait), Duration: ms(t.Send) + ms(t.Wait) + ms(t.Receive),
		Offsets: e.ChunkOffsetsNS, ClientAborted: e.ClientAborted,
	}
	if in.Scheme == "ws" || in.Scheme == "wss" {
		in.Scheme = strings.Replace(in.Scheme, "ws", "http", 1)
	}
	if in.Duration == 0 && e.Time > 0 {
		in.Duration = ms(e.Time)
	}
	if pd := e.Request.PostData; pd != nil {
		body := pd.Text
		if body == "" && len(pd.Params) > 0 {
			v := url.Values{}
			for _, p := range pd.Params {
				v.Add(p.Name, p.Value)
			}
			body = v.Encode()
		}
		in.ReqBody = []byte(body)
		if pd.Encoding == "base64" {
			b, err := base64.StdEncoding.DecodeString(body)
			if err != nil {
				return in, fmt.Errorf("request.postData.text is not base64: %v", err)
			}
			in.ReqBody = b
		}
		if in.ReqHeader.Get("Content-Type") == "" && pd.MimeType != "" {
			in.ReqHeader.Set("Content-Type", pd.MimeType)
		}
	}
	in.ReqSize = max(e.Request.BodySize, int64(len(in.ReqBody)))
	if in.ReqHeader.Get("Content-Encoding") != "" {
		in.ReqHeader.Del("Content-Encoding")
		in.ReqHeader.Del("Content-Length")
	}
	c := e.Response.Content
	if c.Text == "" && c.File != "" {
		// Playwright's attached body: a file beside the archive, never one
		// outside its directory.
		if !filepath.IsLocal(c.File) {
			return in, fmt.Errorf("response.content._file %q is not a path inside the archive's directory", c.File)
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(a.Path), c.File))
		if err != nil {
			return in, fmt.Errorf("response.content._file: %v", err)
		}
		c.Text, c.Encoding = string(b), ""
	}
	if c.Encoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(c.Text)
		if err != nil {
			return in, fmt.Errorf("response.content.text is not base64: %v", err)
		}
		in.RespBody = b
	} else {
		in.RespBody = []byte(c.Text)
	}
	in.RespSize = max(c.Size, int64(len(in.RespBody)))
	if in.RespHeader.Get("Content-Encoding") != "" {
		in.RespHeader.Del("Content-Encoding")
		in.RespHeader.Del("Content-Length")
	}
	mt, _, _ := mime.ParseMediaType(c.MimeType)
	if mt == "" {
		mt, _, _ = mime.ParseMediaType(in.RespHeader.Get("Content-Type"))
	}
	switch mt {
	case "text/event-stream", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		in.Stream = true
	}
	if in.Status == 0 {
		in.Error = cmp.Or(e.Error, e.Response.Error)
		if in.Error == "" {
			in.Error = "no response in the HAR"
		}
	}
	switch {
	case opts.SessionCookie != "":
		if v := cookieValue(e.Request, opts.SessionCookie); v != "" {
			in.SessionSecret = v
		}
	case strings.HasPrefix(e.Pageref, "page:"):
		in.Session = e.Pageref // exported by loadtape
	case e.Pageref != "":
		in.Session = "page:" + e.Pageref
	default:
		in.Session = "har:" + filepath.Base(a.Path)
	}
	return in, nil
}

// header builds a header map from HAR pairs, leaving out HTTP/2 and 3
// pseudo-headers (:method, :authority), which are not headers on the wire
// of an HTTP/1.1 replay.
func header(nvs []NameValue) http.Header {
	h := http.Header{}
	for _, nv := range nvs {
		if strings.HasPrefix(nv.Name, ":") || nv.Name == "" {
			continue
		}
		h.Add(nv.Name, nv.Value)
	}
	return h
}

// cookieValue finds a cookie in the request's cookies, or in its Cookie
// header when the tool wrote no cookie list.
func cookieValue(r Request, name string) string {
	for _, c := range r.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	req := http.Request{Header: header(r.Headers)}
	if c, err := req.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}
