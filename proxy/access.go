package proxy

// Who may use the forward proxy, and where it may go. A forward proxy that
// anyone can reach is an open proxy: it tunnels to any host and hides who
// asked. So it listens on loopback unless the user says which clients may
// use it (--forward-allow) or makes them authenticate (--forward-auth), and
// the destinations can be limited (--forward-to), CONNECT included.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ErrOpenProxy is New's answer to a forward address beyond loopback with
// neither a client allow-list nor authentication.
var ErrOpenProxy = errors.New("proxy: a --forward address beyond loopback needs --forward-allow CIDR,... or --forward-auth USER:PASS, or anyone who reaches it can use it")

// ParseCIDRs parses client address ranges: "10.0.0.0/8", "192.168.1.7"
// (one address), "::1".
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want an address or CIDR range such as 10.0.0.0/8", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ParseDestinations checks HOST:PORT destinations and returns them in the
// form they are compared in (host lower-case).
func ParseDestinations(list []string) ([]string, error) {
	var out []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		h, p, err := net.SplitHostPort(s)
		if err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("%q: want HOST:PORT, e.g. api.openai.com:443", s)
		}
		out = append(out, net.JoinHostPort(strings.ToLower(h), p))
	}
	return out, nil
}

// loopbackOnly reports whether a listen address accepts loopback clients
// only. An empty host (":8080") means every interface.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// forwardAccess is the compiled forward-proxy policy.
type forwardAccess struct {
	allow []netip.Prefix
	auth  [32]byte // SHA-256 of "user:pass"; compared in constant time
	authn bool
	to    map[string]bool
}

func newForwardAccess(o *Options) (*forwardAccess, error) {
	a := &forwardAccess{allow: o.ForwardAllow}
	if o.ForwardAuth != "" {
		if u, _, ok := strings.Cut(o.ForwardAuth, ":"); !ok || u == "" {
			return nil, errors.New("proxy: --forward-auth: want USER:PASS")
		}
		a.auth, a.authn = sha256.Sum256([]byte(o.ForwardAuth)), true
	}
	if len(o.ForwardTo) > 0 {
		a.to = map[string]bool{}
		for _, d := range o.ForwardTo {
			a.to[d] = true
		}
	}
	if !loopbackOnly(o.Forward) && len(a.allow) == 0 && !a.authn {
		return nil, fmt.Errorf("%w (listening on %s)", ErrOpenProxy, o.Forward)
	}
	return a, nil
}

// admit answers a client the policy refuses (403 outside the allow-list,
// 407 without valid credentials) and reports whether it may go on.
func (a *forwardAccess) admit(w http.ResponseWriter, req *http.Request) bool {
	if len(a.allow) > 0 {
		ip, err := netip.ParseAddrPort(req.RemoteAddr)
		if err != nil || !a.allowed(ip.Addr().Unmap()) {
			http.Error(w, "loadtape record: this client address may not use the proxy (--forward-allow)", http.StatusForbidden)
			return false
		}
	}
	if a.authn && !a.authorized(req.Header.Get("Proxy-Authorization")) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="loadtape record"`)
		http.Error(w, "loadtape record: proxy authentication required", http.StatusProxyAuthRequired)
		return false
	}
	return true
}

func (a *forwardAccess) allowed(ip netip.Addr) bool {
	for _, p := range a.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (a *forwardAccess) authorized(h string) bool {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	sum := sha256.Sum256(dec)
	return subtle.ConstantTimeCompare(sum[:], a.auth[:]) == 1
}

// destinationOK reports whether host:port may be reached.
func (a *forwardAccess) destinationOK(hostport string) bool {
	return a.to == nil || a.to[strings.ToLower(hostport)]
}

// destination is the host:port a request goes to, the scheme's port filled in.
func destination(u *url.URL, host string) string {
	if u != nil && u.Host != "" {
		host = u.Host
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if u != nil && u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// checkDestination refuses, with a recorded 403, a forward-proxy request to
// a destination outside --forward-to. It also covers requests read inside
// an intercepted tunnel, whose Host need not be the one CONNECT named.
func (r *Recorder) checkDestination(req *http.Request, x *exchange) *http.Response {
	if r.access == nil || r.access.to == nil {
		return nil
	}
	dest := destination(req.URL, req.Host)
	if r.access.destinationOK(dest) {
		return nil
	}
	msg := "refused: destination " + dest + " is not in --forward-to"
	x.fail(req, msg)
	return errorResponse(req, http.StatusForbidden, "destination_refused", "loadtape record: "+msg)
}
