package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestForwardRefusesOpenListen: a forward address beyond loopback needs a
// client allow-list or authentication.
func TestForwardRefusesOpenListen(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.internal:0"} {
		if _, err := New(Options{Forward: addr, sink: sink}); !errors.Is(err, ErrOpenProxy) {
			t.Errorf("--forward %s with no policy: %v, want ErrOpenProxy", addr, err)
		}
	}
	allow, _ := ParseCIDRs([]string{"10.0.0.0/8"})
	for _, o := range []Options{
		{Forward: "127.0.0.1:0"}, {Forward: "localhost:0"}, {Forward: "[::1]:0"},
		{Forward: "0.0.0.0:0", ForwardAllow: allow}, {Forward: "0.0.0.0:0", ForwardAuth: "u:p"},
	} {
		o.sink = sink
		if _, err := New(o); err != nil {
			t.Errorf("%+v: %v, want accepted", o, err)
		}
	}
	if _, err := New(Options{Forward: "127.0.0.1:0", ForwardAuth: "nocolon", sink: sink}); err == nil {
		t.Error("--forward-auth without a colon accepted")
	}
}

func TestParseForwardLists(t *testing.T) {
	t.Parallel()
	p, err := ParseCIDRs([]string{"10.1.2.3/8", "192.168.0.7", "::1"})
	if err != nil || len(p) != 3 || p[0].String() != "10.0.0.0/8" || p[1].String() != "192.168.0.7/32" || p[2].String() != "::1/128" {
		t.Errorf("ParseCIDRs: %v %v", p, err)
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a /33 accepted")
	}
	d, err := ParseDestinations([]string{"API.example.com:443"})
	if err != nil || d[0] != "api.example.com:443" {
		t.Errorf("ParseDestinations: %v %v", d, err)
	}
	for _, bad := range []string{"example.com", ":443", "example.com:"} {
		if _, err := ParseDestinations([]string{bad}); err == nil {
			t.Errorf("destination %q accepted", bad)
		}
	}
}

// connect sends CONNECT for dest through the proxy at addr and returns the
// status code.
func connect(t *testing.T, addr, dest, auth string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", dest, dest, auth)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// TestForwardAllowList: a client outside --forward-allow is refused, plain
// requests and CONNECT alike, and nothing is recorded for it.
func TestForwardAllowList(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	allow, _ := ParseCIDRs([]string{"10.0.0.0/8"})
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0", ForwardAllow: allow})
	addr := r.Addrs()["forward"]
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+addr))}}
	resp, err := c.Get(up.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("client 127.0.0.1 outside 10.0.0.0/8: %d, want 403", resp.StatusCode)
	}
	if code := connect(t, addr, strings.TrimPrefix(up.URL, "http://"), ""); code != http.StatusForbidden {
		t.Errorf("CONNECT from outside the allow-list: %d, want 403", code)
	}
	if rows := stop(); len(rows) != 0 {
		t.Errorf("recorded %d rows for refused clients", len(rows))
	}

	// The same proxy admitting loopback serves.
	allow, _ = ParseCIDRs([]string{"127.0.0.0/8"})
	r2, _, _ := recorder(t, "", Options{Forward: "127.0.0.1:0", ForwardAllow: allow})
	c = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+r2.Addrs()["forward"]))}}
	resp, err = c.Get(up.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("admitted client: %d %q", resp.StatusCode, b)
	}
}

// TestForwardAuth: without the right Proxy-Authorization a client gets 407
// with a Basic challenge; with it, it is served, and the credentials are
// redacted in the row.
func TestForwardAuth(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Error("Proxy-Authorization reached the upstream")
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0", ForwardAuth: "alice:s3cret-pw"})
	addr := r.Addrs()["forward"]
	for _, userinfo := range []string{"", "alice:wrong@", "bob:s3cret-pw@"} {
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+userinfo+addr))}}
		resp, err := c.Get(up.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusProxyAuthRequired || !strings.HasPrefix(resp.Header.Get("Proxy-Authenticate"), "Basic") {
			t.Errorf("credentials %q: %d %q, want 407 with a Basic challenge", userinfo, resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
		}
	}
	if code := connect(t, addr, strings.TrimPrefix(up.URL, "http://"), ""); code != http.StatusProxyAuthRequired {
		t.Errorf("CONNECT without credentials: %d, want 407", code)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://alice:s3cret-pw@"+addr))}}
	resp, err := c.Get(up.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("right credentials: %d %q", resp.StatusCode, b)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1 (refused clients are not recorded)", len(rows))
	}
	if v := header(rows[0].ReqHeaders, "Proxy-Authorization"); !strings.HasPrefix(v, "Basic redacted:") {
		t.Errorf("Proxy-Authorization recorded as %q", v)
	}
}

// TestForwardTo: destinations outside --forward-to are refused, CONNECT
// included; the refused request is recorded with the reason.
func TestForwardTo(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer ok.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a refused destination was reached")
	}))
	defer other.Close()
	to, _ := ParseDestinations([]string{strings.TrimPrefix(ok.URL, "http://")})
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0", ForwardTo: to})
	addr := r.Addrs()["forward"]
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+addr))}}
	resp, err := c.Get(ok.URL + "/a")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("listed destination: %d %q", resp.StatusCode, b)
	}
	resp, err = c.Get(other.URL + "/b")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unlisted destination: %d, want 403", resp.StatusCode)
	}
	if code := connect(t, addr, strings.TrimPrefix(other.URL, "http://"), ""); code != http.StatusForbidden {
		t.Errorf("CONNECT to an unlisted destination: %d, want 403", code)
	}
	rows := stop()
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	if !strings.Contains(rows[1].Error, "not in --forward-to") || rows[1].Path != "/b" {
		t.Errorf("refused row: path %q error %q", rows[1].Path, rows[1].Error)
	}
}

// TestForwardToInsideTunnel: a tunnel CONNECT opened to a listed
// destination cannot carry requests for another host: intercepted requests
// are checked by their own Host.
func TestForwardToInsideTunnel(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer ok.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a refused destination was reached through a tunnel")
	}))
	defer other.Close()
	okHost, otherHost := strings.TrimPrefix(ok.URL, "http://"), strings.TrimPrefix(other.URL, "http://")
	to, _ := ParseDestinations([]string{okHost})
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0", ForwardTo: to, MITMCADir: t.TempDir()})
	c, err := net.Dial("tcp", r.Addrs()["forward"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", okHost, okHost)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT to the listed destination: %v %v", resp, err)
	}
	// Plain HTTP inside the tunnel (the interception reads it as is).
	for _, host := range []string{okHost, otherHost} {
		fmt.Fprintf(c, "GET /in HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := http.StatusOK
		if host == otherHost {
			want = http.StatusForbidden
		}
		if resp.StatusCode != want {
			t.Errorf("Host %s inside a tunnel to %s: %d, want %d", host, okHost, resp.StatusCode, want)
		}
	}
	c.Close()
	rows := stop()
	if len(rows) != 2 || rows[1].Error == "" || rows[0].Error != "" {
		t.Errorf("rows %+v, want the served request and the refused one", rows)
	}
}
