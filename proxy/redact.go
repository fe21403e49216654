package proxy

// Secrets are redacted wherever they travel, before a row is written:
// header values, query parameters, the fields of JSON, form and multipart
// bodies whose names say they hold a credential (at any depth, in both
// directions, in every event of a stream, also when a stream spreads one
// over several events), and strings shaped like a well-known token in any
// body. A secret becomes a keyed placeholder (captures.Placeholder):
// equal secrets get equal placeholders within one capture, and the key is
// never written, so a guessed secret cannot be confirmed from the capture.
// Everything else in a body stays byte for byte as it was.

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/loadtape/loadtape/captures"
)

// secretHeaders are redacted whatever the rules say, besides every header
// whose name reads like a credential (secretName).
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "Api-Key"}

// secretNames are field, parameter and header names (lower-case, without
// '-', '_', '.') that hold a credential.
var secretNames = map[string]bool{
	"token": true, "apikey": true, "apitoken": true, "accesstoken": true, "refreshtoken": true,
	"idtoken": true, "authtoken": true, "sessiontoken": true, "bearertoken": true, "csrftoken": true,
	"secret": true, "clientsecret": true, "secretkey": true, "privatekey": true, "accesskey": true,
	"secretaccesskey": true, "password": true, "passwd": true, "passphrase": true,
	"authorization": true, "proxyauthorization": true, "credential": true, "credentials": true,
	"cookie": true, "setcookie": true, "jwt": true, "xapikey": true,
}

// secretSuffixes catch compound names (openai_api_key, db_password,
// webhook_secret, x_auth_token). Plain "...tokens" (usage counts) and
// "...token" in general (page tokens) are not among them.
var secretSuffixes = []string{"apikey", "apitoken", "secret", "password", "accesstoken", "refreshtoken", "authtoken", "sessiontoken",
	"securitytoken", "secretkey", "privatekey", "subscriptionkey", "credential"}

// secretName reports whether a field, parameter or header name reads like
// a credential.
func secretName[T string | []byte](name T) bool {
	if len(name) < 3 || len(name) > 64 {
		return false
	}
	var b [64]byte
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[n] = c
		n++
	}
	if secretNames[string(b[:n])] { // no allocation: the compiler sees the lookup
		return true
	}
	for _, suf := range secretSuffixes {
		if n >= len(suf) && string(b[n-len(suf):n]) == suf {
			return true
		}
	}
	return false
}

// queryOnlyNames are query parameters that hold a key although the same
// name in a body usually does not ("?key=" is how many APIs take one).
var queryOnlyNames = map[string]bool{"key": true, "sig": true, "signature": true, "code": true}

// redactor replaces secrets by keyed placeholders.
type redactor struct {
	keep    bool
	key     [32]byte        // per capture, never written
	headers map[string]bool // canonical names
	query   map[string]bool // lower-case names
}

func newRedactor(keep bool, rules *Rules) *redactor {
	rd := &redactor{keep: keep, headers: map[string]bool{}, query: map[string]bool{}}
	_, _ = rand.Read(rd.key[:])
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

func (rd *redactor) placeholder(v string) string { return captures.Placeholder(rd.key[:], v) }

// keyedHex is a keyed digest of v for values that are not stored but must
// group (session keys made from credentials).
func (rd *redactor) keyedHex(v string) string {
	m := hmac.New(sha256.New, rd.key[:])
	m.Write([]byte("session\x00"))
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// authSchemes keep their name in a redacted header: "Bearer redacted:…"
// groups with the same token found bare in a body.
var authSchemes = []string{"Bearer ", "Basic ", "Token ", "Digest "}

// headerValue redacts one value of a secret header.
func (rd *redactor) headerValue(v string) string {
	if v == "" {
		return v
	}
	for _, s := range authSchemes {
		if len(v) > len(s) && strings.EqualFold(v[:len(s)], s) {
			return v[:len(s)] + rd.placeholder(strings.TrimSpace(v[len(s):]))
		}
	}
	return rd.placeholder(v)
}

// header turns a header map into the ordered list of the capture, with
// the names in over set to their values there instead (the hop-by-hop
// headers taken out before the message was forwarded, the client's Host):
// no copy of the map is made. Go's header map does not keep wire order, so
// names are sorted; the values of one name keep their order.
func (rd *redactor) header(h http.Header, over ...hopValue) []captures.Header {
	if len(h) == 0 && len(over) == 0 {
		return nil
	}
	names := make([]string, 0, len(h)+len(over))
	n := 0
	for k, vs := range h {
		if !slices.ContainsFunc(over, func(o hopValue) bool { return o.name == k }) {
			names = append(names, k)
			n += len(vs)
		}
	}
	for _, o := range over {
		names = append(names, o.name)
		n += len(o.values)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]captures.Header, 0, n)
	for _, k := range names {
		vs := h[k]
		if i := slices.IndexFunc(over, func(o hopValue) bool { return o.name == k }); i >= 0 {
			vs = over[i].values
		}
		secret := !rd.keep && (rd.headers[http.CanonicalHeaderKey(k)] || secretName(k))
		for _, v := range vs {
			if secret {
				v = rd.headerValue(v)
			} else if !rd.keep {
				v = rd.tokens(rd.urlHeader(k, v))
			}
			out = append(out, captures.Header{Name: k, Value: v})
		}
	}
	return out
}

// urlHeaders carry a URL whose query can hold a credential (an OAuth
// redirect's code, a presigned URL's signature).
var urlHeaders = map[string]bool{"Location": true, "Content-Location": true, "Referer": true}

// urlHeader redacts the query of a URL-valued header.
func (rd *redactor) urlHeader(name, v string) string {
	if !urlHeaders[http.CanonicalHeaderKey(name)] {
		return v
	}
	base, q, ok := strings.Cut(v, "?")
	if !ok || q == "" {
		return v
	}
	frag := ""
	if i := strings.IndexByte(q, '#'); i >= 0 {
		q, frag = q[:i], q[i:]
	}
	return base + "?" + rd.pairs(q, true) + frag
}

// rawQuery redacts the values of secret query parameters (named like a
// credential, or by the rules) and token-shaped values, keeping the rest of
// the query byte for byte.
func (rd *redactor) rawQuery(q string) string {
	if q == "" || rd.keep {
		return q
	}
	return rd.pairs(q, true)
}

// pairs redacts an application/x-www-form-urlencoded string.
func (rd *redactor) pairs(q string, isQuery bool) string {
	parts := strings.Split(q, "&")
	changed := false
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || v == "" {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			val = v
		}
		lname := strings.ToLower(name)
		if rd.query[lname] || secretName(name) || (isQuery && queryOnlyNames[lname]) {
			parts[i] = k + "=" + url.QueryEscape(rd.placeholder(val))
			changed = true
		} else if t := rd.tokens(val); t != val {
			parts[i] = k + "=" + url.QueryEscape(t)
			changed = true
		}
	}
	if !changed {
		return q
	}
	return strings.Join(parts, "&")
}

// text removes secrets from an error message: the values of the secret
// query parameters of the request (a transport error may quote the URL)
// and token shapes.
func (rd *redactor) text(s string, rawQuery string) string {
	if rd.keep || s == "" {
		return s
	}
	for _, p := range strings.Split(rawQuery, "&") {
		k, v, ok := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil {
			k = name
		}
		lk := strings.ToLower(k)
		if ok && v != "" && (rd.query[lk] || secretName(k) || queryOnlyNames[lk]) {
			if dv, err := url.QueryUnescape(v); err == nil && dv != v {
				s = strings.ReplaceAll(s, dv, rd.placeholder(dv))
			}
			s = strings.ReplaceAll(s, v, rd.placeholder(v))
		}
	}
	return rd.tokens(s)
}

// tokens redacts token shapes in a string.
func (rd *redactor) tokens(s string) string {
	if len(s) < 8 || !mayHoldToken(s) {
		return s
	}
	edits := findTokens([]byte(s), false, nil)
	if len(edits) == 0 {
		return s
	}
	return string(rd.apply([]byte(s), edits))
}

// maxDecoded bounds what is inflated of a compressed body to look for
// secrets in it.
const maxDecoded = 64 << 20

// body redacts a request or response body. h is the message's header (for
// Content-Type and Content-Encoding); truncated says the body was cut at
// --max-body. A body without secrets comes back as it was.
func (rd *redactor) body(b []byte, h http.Header, truncated bool) []byte {
	if rd.keep || len(b) == 0 {
		return b
	}
	enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding")))
	if enc == "" || enc == "identity" {
		out, _ := rd.plain(b, h, truncated)
		return out
	}
	plain, complete, ok := decode(enc, b)
	if !ok {
		// An encoding this cannot read: still look for token shapes in
		// the bytes as they are (a compressor leaves short literals whole).
		out, _ := rd.plain(b, nil, truncated)
		return out
	}
	out, changed := rd.plain(plain, h, truncated || !complete)
	if !changed {
		return b
	}
	if re, ok := encode(enc, out); ok {
		return re
	}
	return b
}

// plain redacts an uncompressed body and says whether anything changed.
func (rd *redactor) plain(b []byte, h http.Header, truncated bool) ([]byte, bool) {
	var edits []edit
	changed := false
	ct := ""
	var params map[string]string
	if h != nil {
		v := h.Get("Content-Type")
		if ct = mediaType(v); ct == "multipart/form-data" {
			_, params, _ = mime.ParseMediaType(v)
		}
	}
	switch {
	case ct == "multipart/form-data":
		edits = rd.multipart(b, params["boundary"], edits)
	case ct == "text/event-stream" || strings.Contains(ct, "ndjson") || strings.Contains(ct, "jsonl") || ct == "application/json-seq":
		edits = rd.jsonLines(b, edits)
	case ct == "application/x-www-form-urlencoded":
		if out := rd.pairs(string(b), false); out != string(b) {
			b, changed = []byte(out), true
		}
	case ct == "application/json" || strings.HasSuffix(ct, "+json") || looksJSON(b):
		j := jsonScan{rd: rd, b: b}
		j.value(skipWS(b, 0), false, 0)
		edits = j.edits
	}
	if len(edits) > 0 {
		b, changed = rd.apply(b, edits), true
	}
	if !mayHoldTokenBytes(b) {
		return b, changed
	}
	if tok := findTokens(b, truncated, nil); len(tok) > 0 {
		b, changed = rd.apply(b, tok), true
	}
	return b, changed
}

func looksJSON(b []byte) bool {
	i := skipWS(b, 0)
	return i < len(b) && (b[i] == '{' || b[i] == '[')
}

// jsonLines redacts the JSON payload of every SSE "data:" line and of every
// NDJSON line, and the text the lines spread over several events
// (joinedEdits). Where a joined edit overlaps an edit of a single event,
// the joined one wins.
func (rd *redactor) jsonLines(b []byte, edits []edit) []edit {
	var st streamText
	var own []edit
	for i := 0; i < len(b); {
		end := bytes.IndexByte(b[i:], '\n')
		if end < 0 {
			end = len(b)
		} else {
			end += i
		}
		line := i
		data := bytes.HasPrefix(b[i:end], []byte("data:"))
		if data {
			line += len("data:")
		}
		if p := skipWS(b[:end], line); p < end && (b[p] == '{' || b[p] == '[') {
			j := jsonScan{rd: rd, b: b[:end], edits: own, text: &st, path: eventPlace(b[:end], p)}
			j.value(p, false, 0)
			own = j.edits
		} else if data {
			// Text data: one leading space is the field's separator.
			if line < end && b[line] == ' ' {
				line++
			}
			e := end
			if e > line && b[e-1] == '\r' {
				e--
			}
			if e > line && string(b[line:e]) != "[DONE]" {
				st.add(nil, fragment{s: line, e: e})
			}
		}
		i = end + 1
	}
	joined := rd.joinedEdits(b, &st, nil)
	if len(joined) == 0 {
		return append(edits, own...)
	}
	// An event's own edit that overlaps one of the joined text's saw only
	// part of what the joined text saw (the first half of a secret in a
	// tool call's arguments, redacted as a string cut short): keeping it
	// would leave the joined edit half made.
	sort.Slice(joined, func(i, k int) bool { return joined[i].start < joined[k].start })
	edits = append(edits, joined...)
	for _, e := range own {
		k := sort.Search(len(joined), func(i int) bool { return joined[i].start >= e.end })
		if k > 0 && overlapsAny(joined[:k], e) {
			continue
		}
		edits = append(edits, e)
	}
	return edits
}

// overlapsAny reports whether e overlaps one of es.
func overlapsAny(es []edit, e edit) bool {
	for _, o := range es {
		if o.start < e.end && e.start < o.end {
			return true
		}
	}
	return false
}

// edit replaces b[start:end] by repl.
type edit struct {
	start, end int
	repl       string // empty: the placeholder of b[start:end]
	drop       bool   // remove b[start:end]
}

// apply makes the edits (sorted or not, overlapping ones merged into the
// first; of two that start together, the one listed first) and returns a
// new slice.
func (rd *redactor) apply(b []byte, edits []edit) []byte {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	out := make([]byte, 0, len(b)+len(edits)*(len(captures.PlaceholderPrefix)+captures.PlaceholderHexLen))
	at := 0
	for _, e := range edits {
		if e.start < at {
			continue // inside an edit already made
		}
		out = append(out, b[at:e.start]...)
		if e.drop {
			// nothing
		} else if e.repl == "" {
			out = append(out, rd.placeholder(string(b[e.start:e.end]))...)
		} else {
			out = append(out, e.repl...)
		}
		at = e.end
	}
	return append(out, b[at:]...)
}

// jsonScan finds the values of credential-named fields in a JSON document
// without decoding it, so that every other byte stays as it was. It is
// lenient: a document cut short (a truncated body) is scanned as far as it
// goes.
type jsonScan struct {
	rd    *redactor
	b     []byte
	edits []edit

	// text, when set, collects every string value that is not a secret,
	// by its path (object keys and array indices from the document's
	// root): the pieces of the text a stream spreads over its events.
	text *streamText
	path []byte
}

// maxJSONDepth bounds the nesting followed; deeper values are only
// searched for token shapes.
const maxJSONDepth = 128

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// value scans the value at i and returns the index after it. secret: the
// value (every scalar in it) belongs to a credential-named field.
func (j *jsonScan) value(i int, secret bool, depth int) int {
	b := j.b
	if i >= len(b) || depth > maxJSONDepth {
		return len(b)
	}
	switch c := b[i]; {
	case c == '{':
		i = skipWS(b, i+1)
		for i < len(b) && b[i] != '}' {
			if b[i] != '"' {
				return len(b)
			}
			ks, ke := i, j.str(i)
			if ke > len(b) {
				return len(b)
			}
			named := secret
			if !named {
				if raw := b[ks+1 : ke-1]; bytes.IndexByte(raw, '\\') < 0 {
					named = secretName(raw)
				} else {
					named = secretName(j.decode(ks, ke))
				}
			}
			i = skipWS(b, ke)
			if i >= len(b) || b[i] != ':' {
				return len(b)
			}
			n := len(j.path)
			if j.text != nil {
				j.path = append(append(j.path, '.'), b[ks+1:ke-1]...)
			}
			i = j.value(skipWS(b, i+1), named, depth+1)
			j.path = j.path[:n]
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		return i + 1
	case c == '[':
		i = skipWS(b, i+1)
		n := len(j.path)
		for k := 0; i < len(b) && b[i] != ']'; k++ {
			if j.text != nil {
				j.path = strconv.AppendInt(append(j.path[:n], '['), elementIndex(b, i, k), 10)
			}
			i = skipWS(b, j.value(i, secret, depth+1))
			j.path = j.path[:n]
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		return i + 1
	case c == '"':
		e := j.str(i)
		if e > len(b) {
			// Cut inside the string: a secret's beginning is still one.
			if secret && len(b)-i > 1 {
				j.edits = append(j.edits, edit{start: i + 1, end: len(b)})
			}
			return len(b)
		}
		if secret {
			if v := j.decode(i, e); v != "" {
				j.edits = append(j.edits, edit{start: i, end: e, repl: `"` + j.rd.placeholder(v) + `"`})
			}
		} else {
			if e-i > 8 && bytes.Contains(b[i:e], []byte(`\"`)) {
				j.nested(i, e, depth)
			}
			if j.text != nil && e-i > 2 {
				j.text.add(j.path, fragment{s: i, e: e, json: true, esc: bytes.IndexByte(b[i:e], '\\') >= 0})
			}
		}
		return e
	default:
		s := i
		for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
			i++
		}
		if secret && s < i && (b[s] == '-' || '0' <= b[s] && b[s] <= '9') {
			j.edits = append(j.edits, edit{start: s, end: i, repl: `"` + j.rd.placeholder(string(b[s:i])) + `"`})
		}
		if i == s {
			return len(b) // not JSON
		}
		return i
	}
}

// elementIndex is where a stream's array element belongs across events:
// its "index" member when it is an object with an integer one (OpenAI's
// choices, legacy completions' choices and tool calls each carry theirs,
// since an event holds the deltas of some of them, each at position 0 when
// n > 1 sends one choice per event), else its position k. So the text of
// each choice, or of each tool call, is joined apart from the others.
func elementIndex(b []byte, i, k int) int64 {
	if b[i] != '{' {
		return int64(k)
	}
	e := skipValue(b, i)
	if e < 0 {
		return int64(k) // cut short: its members cannot be told
	}
	idx := int64(k)
	eachField(b[i:e], func(key, val []byte) bool {
		if string(key) != "index" {
			return true
		}
		if v, err := strconv.ParseInt(string(val), 10, 32); err == nil && v >= 0 {
			idx = v
		}
		return false
	})
	return idx
}

// eventPlace is the start of the paths of an event whose top level says
// which part of the answer it continues: Anthropic's content_block_delta
// carries the block's "index", OpenAI's Responses API events their
// "output_index" and "content_index". Each block's text (or a tool's
// partial JSON) is joined apart from the others'.
func eventPlace(b []byte, i int) []byte {
	if b[i] != '{' {
		return nil
	}
	e := skipValue(b, i)
	if e < 0 {
		return nil
	}
	var place []byte
	eachField(b[i:e], func(key, val []byte) bool {
		switch string(key) {
		case "index", "output_index", "content_index":
			if v, err := strconv.ParseInt(string(val), 10, 32); err == nil && v >= 0 {
				place = strconv.AppendInt(append(append(place, '#'), key...), v, 10)
			}
		}
		return true
	})
	return place
}

// nested redacts a JSON document held in a string (tool-call arguments,
// a JSON-RPC payload carried as text) and re-encodes the string when it
// changed.
func (j *jsonScan) nested(s, e, depth int) {
	v := j.decode(s, e)
	if !looksJSON([]byte(v)) {
		return
	}
	inner := jsonScan{rd: j.rd, b: []byte(v)}
	inner.value(skipWS(inner.b, 0), false, depth+1)
	if len(inner.edits) == 0 {
		return
	}
	out := j.rd.apply(inner.b, inner.edits)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(string(out)) != nil {
		return
	}
	j.edits = append(j.edits, edit{start: s, end: e, repl: strings.TrimSuffix(buf.String(), "\n")})
}

// str returns the index after the string that starts at i (a quote), or
// len(b)+1 when the document ends inside it.
func (j *jsonScan) str(i int) int {
	b := j.b
	for k := i + 1; k < len(b); k++ {
		switch b[k] {
		case '\\':
			k++
		case '"':
			return k + 1
		}
	}
	return len(b) + 1
}

// decode is the text of the JSON string b[s:e] (quotes included).
func (j *jsonScan) decode(s, e int) string {
	raw := j.b[s:e]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return string(raw[1 : len(raw)-1])
	}
	return v
}

// decode inflates a body of a known Content-Encoding. complete is false
// when the data ended early (a truncated body) or hit maxDecoded.
func decode(enc string, b []byte) (out []byte, complete, ok bool) {
	var r io.Reader
	switch enc {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, false, false
		}
		r = zr
	case "deflate":
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, false, false
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecoded))
		if err != nil {
			return nil, false, false
		}
		defer zr.Close()
		r = zr
	default:
		return nil, false, false
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecoded+1))
	if len(out) == 0 && err != nil {
		return nil, false, false
	}
	return out[:min(len(out), maxDecoded)], err == nil && len(out) <= maxDecoded, true
}

// encode compresses a redacted body back into its Content-Encoding, so the
// body still matches its headers.
func encode(enc string, b []byte) ([]byte, bool) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip", "x-gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, false
		}
		w = zw
	default:
		return nil, false
	}
	if _, err := w.Write(b); err != nil {
		return nil, false
	}
	if err := w.Close(); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
