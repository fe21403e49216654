package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTrailersPassThrough: trailers the upstream announced and trailers it
// did not both reach the client after the whole body, as goproxy and
// httputil.ReverseProxy pass them.
func TestTrailersPassThrough(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	resp, err := client().Get(base + "/v1/files/1")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); string(body) != "part one, part two" {
		t.Errorf("body %q", body)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
		t.Errorf("trailer X-Checksum = %q, want abc123 (trailers %v)", got, resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Late"); got != "late" {
		t.Errorf("unannounced trailer X-Late = %q, want late (trailers %v)", got, resp.Trailer)
	}
	if rows := stop(); len(rows) != 1 || rows[0].RespSize != int64(len("part one, part two")) {
		t.Errorf("rows %+v, want one of %d body bytes", rows, len("part one, part two"))
	}
}

// TestProxyHeadersStayOnTheirHop: a client's proxy headers on a reverse
// route go no further, while the rest of its headers pass unchanged and
// nothing is added (no X-Forwarded-For: the recorder passes traffic as it
// is); the request URI reaches the upstream as sent.
func TestProxyHeadersStayOnTheirHop(t *testing.T) {
	t.Parallel()
	seen := make(chan *http.Request, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	req, _ := http.NewRequest("GET", base+"/v1/a%2Fb/models?x=1&y=2", nil)
	req.Header.Set("Proxy-Authorization", "Basic dXNlcjpwYXNz")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Accept-Encoding", "br")
	req.Header.Set("X-Custom", "kept")
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	got := <-seen
	for _, h := range []string{"Proxy-Authorization", "Proxy-Connection", "X-Forwarded-For"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
	if got.Header.Get("X-Custom") != "kept" || got.Header.Get("Accept-Encoding") != "br" {
		t.Errorf("upstream headers %v, want X-Custom and Accept-Encoding as sent", got.Header)
	}
	if got.RequestURI != "/v1/a%2Fb/models?x=1&y=2" {
		t.Errorf("upstream request URI %q", got.RequestURI)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	if v := header(rows[0].ReqHeaders, "Proxy-Authorization"); !strings.HasPrefix(v, "Basic redacted:") {
		t.Errorf("Proxy-Authorization recorded as %q, want it redacted", v)
	}
}
