package replay

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/loadtape/loadtape/captures"
)

// RedactedPrefix starts every secret the proxy redacted ("redacted:1a2b3c4d").
// Replay never sends such a value: credentials.go puts the --header or
// --secret of its name in its place, or refuses the run.
const RedactedPrefix = captures.PlaceholderPrefix

// dropHeaders are recorded headers replay never copies: hop-by-hop ones, the
// ones Go computes (Host, Content-Length), Accept-Encoding (replay asks for
// identity so it can time chunks) and MCP session state, which is live.
var dropHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Connection": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Proxy-Authorization": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Accept-Encoding": true,
	"Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Last-Event-Id": true,
}

// target is a parsed --target URL.
type target struct {
	base *url.URL
}

// ParseTargets parses NAME=URL flags; a URL needs a scheme and a host.
func ParseTargets(flags []string) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range flags {
		name, u, ok := strings.Cut(f, "=")
		if !ok || name == "" || u == "" {
			return nil, badInput(fmt.Errorf("--target %q: want NAME=URL, e.g. gateway=http://127.0.0.1:8000", f))
		}
		m[name] = u
	}
	return m, nil
}

func parseTarget(name, raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, badInput(fmt.Errorf("--target %s=%s: want an http:// or https:// URL with a host", name, raw))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &target{base: u}, nil
}

// ParseHeaders parses 'Name: value' flags into the headers set on every
// request (replacing recorded ones of the same name).
func ParseHeaders(flags []string) (http.Header, error) {
	h := http.Header{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, badInput(fmt.Errorf("--header %q: want 'Name: value'", f))
		}
		h.Set(k, strings.TrimSpace(v))
	}
	return h, nil
}

// ParseSecrets parses NAME=VALUE flags: the live values of redacted query
// parameters and body fields, by name.
func ParseSecrets(flags []string) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range flags {
		name, v, ok := strings.Cut(f, "=")
		if !ok || name == "" || v == "" || strings.ContainsAny(name, " \t") {
			return nil, badInput(fmt.Errorf("--secret %q: want NAME=VALUE, the query parameter or body field NAME and its live value", strings.SplitN(f, "=", 2)[0]+"=..."))
		}
		m[name] = v
	}
	return m, nil
}

// url joins the target's base with the recorded path and query, dropping
// redacted query values. The recorded host is never used.
func (t *target) url(x *captures.Exchange) string {
	u := *t.base
	u.Path = t.base.Path + x.Path
	u.RawPath = ""
	u.RawQuery = cleanQuery(x.Query)
	return u.String()
}

func cleanQuery(q string) string {
	if !strings.Contains(q, RedactedPrefix) {
		return q
	}
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		_, v, _ := strings.Cut(p, "=")
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		if !strings.HasPrefix(v, RedactedPrefix) {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "&")
}

// headers copies the recorded request headers, drops what must not be
// replayed and any redacted secret, then applies the --header overrides.
func headers(x *captures.Exchange, extra http.Header) http.Header {
	h := make(http.Header, len(x.ReqHeaders)+len(extra))
	for _, kv := range x.ReqHeaders {
		k := http.CanonicalHeaderKey(kv.Name)
		if dropHeaders[k] || strings.Contains(kv.Value, RedactedPrefix) {
			continue
		}
		if _, over := extra[k]; over {
			continue
		}
		h[k] = append(h[k], kv.Value)
	}
	for k, vs := range extra {
		h[k] = append([]string(nil), vs...)
	}
	return h
}
