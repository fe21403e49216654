package runspec

import (
	"net"
	"net/url"
)

// HostPort is the host:port that a URL's requests go to, in one form for
// matching a scrape URL with a service's base URL: the scheme's default
// port filled in (80 for http, 443 for https), and the loopback names
// (localhost, ::1, 0.0.0.0 as a listen address) all written 127.0.0.1.
// It is "" when raw has no host.
func HostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return HostPortOf(u)
}

// HostPortOf is HostPort of a parsed URL.
func HostPortOf(u *url.URL) string {
	if u == nil || u.Host == "" {
		return ""
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}[u.Scheme]
	}
	switch host {
	case "localhost", "::1", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	if port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}
