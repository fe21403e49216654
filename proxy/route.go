package proxy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// Route is one reverse-proxy listener: requests arriving on Listen go to
// Upstream and are recorded with Name as their service.
type Route struct {
	Name     string   // service name of every exchange on this route
	Listen   string   // host:port; port 0 picks a free one
	Upstream *url.URL // scheme://host[:port][/base]; the base path prefixes every request path
}

// String renders the route in the flag syntax ParseRoute reads.
func (r Route) String() string {
	up := ""
	if r.Upstream != nil {
		up = r.Upstream.String()
	}
	return r.Name + "@" + r.Listen + "=" + up
}

var routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseRoute reads NAME@LISTEN=UPSTREAM, for example
// gateway@127.0.0.1:18000=http://127.0.0.1:8000.
func ParseRoute(s string) (Route, error) {
	const want = "want NAME@LISTEN=UPSTREAM, e.g. gateway@127.0.0.1:18000=http://127.0.0.1:8000"
	name, rest, ok := strings.Cut(s, "@")
	if !ok {
		return Route{}, fmt.Errorf("route %q: missing '@': %s", s, want)
	}
	listen, upstream, ok := strings.Cut(rest, "=")
	if !ok {
		return Route{}, fmt.Errorf("route %q: missing '=': %s", s, want)
	}
	if !routeName.MatchString(name) {
		return Route{}, fmt.Errorf("route %q: name %q must be letters, digits, '_', '.' or '-': %s", s, name, want)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return Route{}, fmt.Errorf("route %q: listen address %q is not host:port: %s", s, listen, want)
	}
	if !validPort(port) {
		return Route{}, fmt.Errorf("route %q: listen port %q is not a number from 0 to 65535", s, port)
	}
	_ = host // empty host means every interface, as net.Listen reads it
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Route{}, fmt.Errorf("route %q: upstream %q must be an http:// or https:// URL with a host: %s", s, upstream, want)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Route{}, fmt.Errorf("route %q: upstream %q must not carry a query, fragment or user info", s, upstream)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return Route{Name: name, Listen: listen, Upstream: u}, nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}
