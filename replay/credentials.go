package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/loadtape/loadtape/captures"
)

// ErrMissingCredentials is the error of a run whose requests hold redacted
// credentials that neither --header nor --secret supplies.
var ErrMissingCredentials = errors.New("replay: requests hold redacted credentials that no --header or --secret supplies")

// credentials put live credentials where the recorder left placeholders:
// a redacted header is replaced by the --header of that name, a redacted
// query parameter or body field by the --secret of that name. Whatever is
// left is missing: the run is refused, or with allowMissing the
// placeholder's field is removed. Either way no placeholder is ever sent.
type credentials struct {
	headers      http.Header
	secrets      map[string]string
	allowMissing bool
}

// missing counts the requests that need one credential, by where it goes.
type missing struct {
	where    string // "header", "query parameter", "body field", "body"
	name     string
	requests int
	services map[string]bool
}

// isPlaceholder is true for a header or query value the recorder redacted:
// the placeholder in any encoding, or the bare prefix of an older capture.
func isPlaceholder(v string) bool {
	return strings.Contains(v, RedactedPrefix) || captures.ContainsPlaceholder(v)
}

// apply returns xs with every placeholder in the exchanges of the wanted
// services replaced or removed. Unless owned, xs itself is never modified
// (a caller's exchanges may be shared): the first change copies the slice.
// Exchanges read from capture files are owned, and changed in place rather
// than held twice in memory.
func (c credentials) apply(xs []captures.Exchange, want map[string]bool, owned bool) ([]captures.Exchange, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	need := map[string]*missing{}
	note := func(where, name, svc string) {
		k := where + "\x00" + name
		m := need[k]
		if m == nil {
			m = &missing{where: where, name: name, services: map[string]bool{}}
			need[k] = m
		}
		m.requests++
		m.services[svc] = true
	}
	var out []captures.Exchange // copy on first change
	drop := map[int]bool{}
	for i := range xs {
		x := &xs[i]
		if !want[x.Service] || !c.holdsPlaceholder(x) {
			continue
		}
		if out == nil {
			out = xs
			if !owned {
				out = append([]captures.Exchange(nil), xs...)
			}
		}
		orig := *x // y may be x itself
		x = &orig
		y := &out[i]
		y.ReqHeaders = nil
		for _, h := range x.ReqHeaders {
			if !isPlaceholder(h.Value) {
				y.ReqHeaders = append(y.ReqHeaders, h)
				continue
			}
			// Left out: headers() sets the --header of this name.
			if _, ok := c.headers[http.CanonicalHeaderKey(h.Name)]; !ok {
				note("header", http.CanonicalHeaderKey(h.Name), x.Service)
			}
		}
		y.Query = c.fillForm(x.Query, func(name string) { note("query parameter", name, x.Service) })
		if captures.ContainsPlaceholder(string(x.ReqBody)) {
			body, ct, err := c.fillBody(x, func(name string) { note("body field", name, x.Service) })
			if err != nil {
				note("body", x.Operation+"\x00"+err.Error(), x.Service)
				drop[i] = true
			}
			y.ReqBody = body
			if ct != "" {
				y.ReqHeaders = withContentType(y.ReqHeaders, ct)
			}
		}
	}
	if len(need) > 0 && !c.allowMissing {
		return nil, badInput(missingError(need))
	}
	if out == nil {
		return xs, nil
	}
	if len(drop) > 0 {
		kept := out[:0]
		for i := range out {
			if !drop[i] {
				kept = append(kept, out[i])
			}
		}
		out = kept
	}
	return out, nil
}

// check refuses flag values that are themselves placeholders, copied from
// a capture by mistake.
func (c credentials) check() error {
	for k, vs := range c.headers {
		for _, v := range vs {
			if isPlaceholder(v) {
				return badInput(fmt.Errorf("--header %s: the value is a redaction placeholder from a capture; give the real credential", k))
			}
		}
	}
	for k, v := range c.secrets {
		if isPlaceholder(v) {
			return badInput(fmt.Errorf("--secret %s: the value is a redaction placeholder from a capture; give the real credential", k))
		}
	}
	return nil
}

func (c credentials) holdsPlaceholder(x *captures.Exchange) bool {
	for _, h := range x.ReqHeaders {
		if isPlaceholder(h.Value) {
			return true
		}
	}
	return isPlaceholder(x.Query) || captures.ContainsPlaceholder(string(x.ReqBody))
}

// fillForm replaces redacted values of a query string or form body by the
// secret of their name, or leaves the parameter out and calls miss. The
// other parameters keep their bytes.
func (c credentials) fillForm(q string, miss func(name string)) string {
	if !isPlaceholder(q) {
		return q
	}
	parts := strings.Split(q, "&")
	kept := parts[:0:0]
	for _, part := range parts {
		k, v, _ := strings.Cut(part, "=")
		if !isPlaceholder(v) {
			kept = append(kept, part)
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if s, ok := c.secrets[name]; ok {
			kept = append(kept, k+"="+url.QueryEscape(s))
			continue
		}
		miss(name)
	}
	return strings.Join(kept, "&")
}

// Why a body with a placeholder cannot be sent, whatever --secret says.
var (
	errNotForm      = errors.New("the body is neither JSON nor a form")
	errBadMultipart = errors.New("the multipart/form-data body does not parse")
)

// fillBody replaces redacted fields of a JSON, form or multipart/form-data
// body. contentType is the request's new Content-Type when it had to
// change (a multipart boundary that the filled-in value holds); err says
// why no field can be named, so the exchange cannot be sent.
func (c credentials) fillBody(x *captures.Exchange, miss func(name string)) (body []byte, contentType string, err error) {
	ct := ""
	var params map[string]string
	for _, h := range x.ReqHeaders {
		if strings.EqualFold(h.Name, "Content-Type") {
			ct, params, _ = mime.ParseMediaType(h.Value)
		}
	}
	switch ct {
	case "application/x-www-form-urlencoded":
		return []byte(c.fillForm(string(x.ReqBody), miss)), "", nil
	case "multipart/form-data":
		return c.fillMultipart(x.ReqBody, params, miss)
	}
	dec := json.NewDecoder(bytes.NewReader(x.ReqBody))
	dec.UseNumber()
	var out bytes.Buffer
	if _, err := c.fillJSON(dec, &out, "", miss); err != nil {
		return nil, "", errNotForm
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", errNotForm // trailing data: not one JSON value
	}
	return out.Bytes(), "", nil
}

// rawPart is one part of a multipart body as recorded: head runs from its
// delimiter line through the blank line after its headers, value is the
// content up to the next delimiter.
type rawPart struct {
	head, value []byte
	name, file  string // form field name; file name
	isFile      bool   // a file part (a filename parameter, even empty)
}

// fillMultipart fills the fields of a multipart/form-data body whose value
// holds a placeholder with the --secret of the field's name; a field with
// no secret is left out (and reported through miss). Every other byte stays
// as recorded: preamble, part headers, files, the closing delimiter. The
// boundary changes only when a filled-in value holds it; then every
// delimiter is rewritten and the new Content-Type returned. A placeholder
// inside a file (a token the recorder found in its content) or in a part's
// headers has no name a --secret could give: the body cannot be sent.
func (c credentials) fillMultipart(body []byte, params map[string]string, miss func(string)) ([]byte, string, error) {
	boundary := params["boundary"]
	pre, parts, epilogue, ok := splitMultipart(body, boundary)
	if !ok {
		return nil, "", errBadMultipart
	}
	for _, p := range parts {
		switch {
		case captures.ContainsPlaceholder(string(p.head)):
			return nil, "", fmt.Errorf("a part's headers hold a redaction placeholder")
		case p.isFile && captures.ContainsPlaceholder(string(p.value)):
			return nil, "", fmt.Errorf("file part %s (%s) holds a redacted token that no --secret can name", p.name, p.file)
		}
	}
	kept := parts[:0:0]
	clash := false
	for _, p := range parts {
		if !p.isFile && captures.ContainsPlaceholder(string(p.value)) {
			s, ok := c.secrets[p.name]
			if !ok {
				miss(p.name)
				continue // left out, as a JSON field would be
			}
			p.value = []byte(s)
			clash = clash || bytes.Contains(p.value, []byte("--"+boundary))
		}
		kept = append(kept, p)
	}
	newBoundary := boundary
	if clash {
		newBoundary = freeBoundary(kept)
	}
	var out bytes.Buffer
	out.Write(pre)
	for _, p := range kept {
		out.Write(bytes.Replace(p.head, []byte("--"+boundary), []byte("--"+newBoundary), 1))
		out.Write(p.value)
		out.WriteString("\r\n")
	}
	out.WriteString("--" + newBoundary + "--")
	out.Write(epilogue)
	ct := ""
	if newBoundary != boundary {
		params = maps.Clone(params)
		params["boundary"] = newBoundary
		ct = mime.FormatMediaType("multipart/form-data", params)
	}
	// The body a server reads: every kept part, the filled values in place.
	mr := multipart.NewReader(bytes.NewReader(out.Bytes()), newBoundary)
	for _, want := range kept {
		p, err := mr.NextPart()
		if err != nil {
			return nil, "", fmt.Errorf("%w after filling it in: %v", errBadMultipart, err)
		}
		got, err := io.ReadAll(p)
		if err != nil || p.FormName() != want.name || !bytes.Equal(got, want.value) {
			return nil, "", fmt.Errorf("%w after filling in part %s", errBadMultipart, want.name)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		return nil, "", fmt.Errorf("%w after filling it in: more parts than recorded", errBadMultipart)
	}
	return out.Bytes(), ct, nil
}

// splitMultipart cuts a multipart body into its parts as raw bytes, the
// bytes before the first delimiter (pre) and those after the closing one.
// ok is false for a body that does not end with its closing delimiter (cut
// at the recorder's body cap, or not multipart at all).
func splitMultipart(b []byte, boundary string) (pre []byte, parts []rawPart, epilogue []byte, ok bool) {
	if boundary == "" {
		return nil, nil, nil, false
	}
	delim := []byte("--" + boundary)
	next := []byte("\r\n--" + boundary)
	i := 0
	if !bytes.HasPrefix(b, delim) {
		k := bytes.Index(b, next)
		if k < 0 {
			return nil, nil, nil, false
		}
		i = k + 2
	}
	pre = b[:i]
	for len(parts) < 10000 {
		start := i
		i += len(delim)
		if bytes.HasPrefix(b[i:], []byte("--")) {
			return pre, parts, b[i+2:], true
		}
		eol := bytes.Index(b[i:], []byte("\r\n"))
		if eol < 0 {
			return nil, nil, nil, false
		}
		hs := i + eol + 2
		vs := hs + 2 // a part without headers
		if !bytes.HasPrefix(b[hs:], []byte("\r\n")) {
			he := bytes.Index(b[hs:], []byte("\r\n\r\n"))
			if he < 0 {
				return nil, nil, nil, false
			}
			vs = hs + he + 4
		}
		ve := bytes.Index(b[vs:], next)
		if ve < 0 {
			return nil, nil, nil, false
		}
		ve += vs
		p := rawPart{head: b[start:vs], value: b[vs:ve]}
		p.name, p.file, p.isFile = captures.FormPartName(b[hs:vs])
		parts = append(parts, p)
		i = ve + 2
	}
	return nil, nil, nil, false
}

// freeBoundary is a new random boundary that no part holds.
func freeBoundary(parts []rawPart) string {
	for {
		nb := multipart.NewWriter(io.Discard).Boundary()
		if !slices.ContainsFunc(parts, func(p rawPart) bool {
			return bytes.Contains(p.head, []byte(nb)) || bytes.Contains(p.value, []byte(nb))
		}) {
			return nb
		}
	}
}

// withContentType is hs with its Content-Type set to ct.
func withContentType(hs []captures.Header, ct string) []captures.Header {
	out := make([]captures.Header, 0, len(hs))
	for _, h := range hs {
		if strings.EqualFold(h.Name, "Content-Type") {
			h.Value = ct
		}
		out = append(out, h)
	}
	return out
}

// fillJSON copies one JSON value from dec to out token by token, keeping
// the order of keys; a string holding a placeholder becomes the secret
// named by its field (name: the nearest key above it) or is left out with
// its key. keep is false for a value that was left out.
func (c credentials) fillJSON(dec *json.Decoder, out *bytes.Buffer, name string, miss func(string)) (keep bool, err error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	switch t := tok.(type) {
	case json.Delim:
		open, end := byte(t), byte('}')
		if t == '[' {
			end = ']'
		}
		out.WriteByte(open)
		first := true
		for dec.More() {
			var item bytes.Buffer
			field := name
			if open == '{' {
				k, err := dec.Token()
				if err != nil {
					return false, err
				}
				field, _ = k.(string)
				writeJSONString(&item, field)
				item.WriteByte(':')
			}
			keep, err := c.fillJSON(dec, &item, field, miss)
			if err != nil {
				return false, err
			}
			if keep {
				if !first {
					out.WriteByte(',')
				}
				out.Write(item.Bytes())
				first = false
			}
		}
		if _, err := dec.Token(); err != nil {
			return false, err
		}
		out.WriteByte(end)
	case string:
		if captures.ContainsPlaceholder(t) {
			s, ok := c.secrets[name]
			if !ok {
				miss(name)
				return false, nil
			}
			t = s
		}
		writeJSONString(out, t)
	case json.Number:
		out.WriteString(t.String())
	case bool:
		fmt.Fprint(out, t)
	case nil:
		out.WriteString("null")
	}
	return true, nil
}

func writeJSONString(out *bytes.Buffer, s string) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out.Truncate(out.Len() - 1) // Encode's newline
}

// missingError lists what is missing, most requests first, with the flag
// that supplies each.
func missingError(need map[string]*missing) error {
	ms := make([]*missing, 0, len(need))
	for _, m := range need {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].requests != ms[j].requests {
			return ms[i].requests > ms[j].requests
		}
		return ms[i].where+ms[i].name < ms[j].where+ms[j].name
	})
	var parts []string
	for _, m := range ms {
		var give string
		what := m.where + " " + m.name
		switch m.where {
		case "header":
			give = fmt.Sprintf("--header '%s: ...'", m.name)
		case "body":
			op, why, _ := strings.Cut(m.name, "\x00")
			what = "the body of " + op
			give = "cannot be supplied: " + why
		default:
			give = fmt.Sprintf("--secret %s=...", m.name)
		}
		parts = append(parts, fmt.Sprintf("%s (%d requests of %s): %s", what, m.requests, strings.Join(sortedKeys(m.services), ", "), give))
	}
	return fmt.Errorf("%w: %s; or --allow-missing-credentials to send them without", ErrMissingCredentials, strings.Join(parts, "; "))
}
