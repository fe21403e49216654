package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
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
			body, ok := c.fillBody(x, func(name string) { note("body field", name, x.Service) })
			if !ok {
				note("body", x.Operation, x.Service)
				drop[i] = true
			}
			y.ReqBody = body
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

// fillBody replaces redacted fields of a JSON or form body. false when the
// body is neither, so no field can be named: the exchange cannot be sent.
func (c credentials) fillBody(x *captures.Exchange, miss func(name string)) ([]byte, bool) {
	ct := ""
	for _, h := range x.ReqHeaders {
		if strings.EqualFold(h.Name, "Content-Type") {
			ct, _, _ = mime.ParseMediaType(h.Value)
		}
	}
	if ct == "application/x-www-form-urlencoded" {
		return []byte(c.fillForm(string(x.ReqBody), miss)), true
	}
	dec := json.NewDecoder(bytes.NewReader(x.ReqBody))
	dec.UseNumber()
	var out bytes.Buffer
	if _, err := c.fillJSON(dec, &out, "", miss); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data: not one JSON value
	}
	return out.Bytes(), true
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
		switch m.where {
		case "header":
			give = fmt.Sprintf("--header '%s: ...'", m.name)
		case "body":
			give = "cannot be supplied: the body is neither JSON nor a form"
		default:
			give = fmt.Sprintf("--secret %s=...", m.name)
		}
		what := m.where + " " + m.name
		if m.where == "body" {
			what = "the body of " + m.name
		}
		parts = append(parts, fmt.Sprintf("%s (%d requests of %s): %s", what, m.requests, strings.Join(sortedKeys(m.services), ", "), give))
	}
	return fmt.Errorf("%w: %s; or --allow-missing-credentials to send them without", ErrMissingCredentials, strings.Join(parts, "; "))
}
