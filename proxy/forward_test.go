package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForwardPlainHTTP: a client with HTTP_PROXY set is served and recorded,
// the service taken from the host.
func TestForwardPlainHTTP(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "via "+r.Host)
	}))
	defer up.Close()
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0"})
	proxyURL := mustURL(t, "http://"+r.Addrs()["forward"])
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := c.Get(up.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); string(b) != "via "+strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("got %q", b)
	}
	// A request that is not a proxy request is refused, not looped.
	resp, err = http.Get("http://" + r.Addrs()["forward"] + "/x")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request to the forward proxy: %d, want 400", resp.StatusCode)
	}
	rows := stop()
	if len(rows) != 1 || rows[0].Service != "127.0.0.1" || rows[0].Operation != "models.list" || rows[0].Scheme != "http" {
		t.Fatalf("recorded %+v", rows)
	}
}

// TestForwardMITM: with --mitm-ca the forward proxy intercepts HTTPS; the
// CA is made on first use with its key 0600, and a client that trusts it
// gets the upstream's answer, recorded as https.
func TestForwardMITM(t *testing.T) {
	t.Parallel()
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2}}`)
	}))
	defer up.Close()
	caDir := filepath.Join(t.TempDir(), "ca")
	// The proxy's own transport must trust the test upstream; TLS
	// verification stays on.
	upstreamRoots := x509.NewCertPool()
	upstreamRoots.AddCert(up.Certificate())
	tr := newTransport(false)
	tr.TLSClientConfig = &tls.Config{RootCAs: upstreamRoots}
	r, _, stop := recorder(t, "", Options{Forward: "127.0.0.1:0", MITMCADir: caDir, Transport: tr})

	st, err := os.Stat(filepath.Join(caDir, CAKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v mode %v, want 0600", err, st.Mode().Perm())
	}
	pemBytes, err := os.ReadFile(r.CA().CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("CA file is not PEM")
	}
	proxyURL, _ := url.Parse("http://" + r.Addrs()["forward"])
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Post(up.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); !strings.Contains(string(b), `"usage"`) {
		t.Errorf("got %q", b)
	}
	c.CloseIdleConnections()
	rows := stop()
	if len(rows) != 1 || rows[0].Scheme != "https" || rows[0].Operation != "chat.completions" || rows[0].CompletionTokens != 2 {
		t.Fatalf("recorded %+v", rows)
	}

	// Second use loads the same CA.
	again, err := LoadOrCreateCA(caDir)
	if err != nil || !again.Cert.Leaf.Equal(r.CA().Cert.Leaf) {
		t.Errorf("reloading the CA: %v", err)
	}
	// A key readable by others is refused.
	os.Chmod(filepath.Join(caDir, CAKeyFile), 0o644)
	if _, err := LoadOrCreateCA(caDir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("a 0644 key: %v, want a refusal", err)
	}
}
