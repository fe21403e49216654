package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/captures"
)

// readCapture reads every exchange of the Parquet files in dir.
func readCapture(t testing.TB, dir string) []captures.Exchange {
	t.Helper()
	rd, err := captures.NewReader[captures.Exchange]([]string{dir}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []captures.Exchange
	for rd.Next() {
		out = append(out, rd.Batch()...)
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSecretsNeverReachTheCapture plants a distinct secret in every place
// that is redacted (request and response headers, rule-named headers and
// query parameters, the text of an error) and looks for each in every byte
// of the capture directory and in every field of every row read back.
func TestSecretsNeverReachTheCapture(t *testing.T) {
	t.Parallel()
	secret := func(where string) string { return "S3CR3T-" + where + "-7f1c9a" }
	places := []string{"authorization", "proxyauth", "cookie", "setcookie", "xapikey", "apikey", "internal", "respinternal", "query", "errquery"}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "session="+secret("setcookie")+"; HttpOnly")
		w.Header().Set("X-Internal-Token", secret("respinternal"))
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()

	rules, err := ParseRules("inline", []byte("redact: {headers: [X-Internal-Token], query: [api_key]}"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r, _, stop := recorder(t, "", Options{Out: dir, Rules: rules, Routes: []Route{
		{Name: "up", Listen: "127.0.0.1:0", Upstream: mustURL(t, up.URL)},
		{Name: "down", Listen: "127.0.0.1:0", Upstream: mustURL(t, dead)},
	}})
	c := client()
	send := func(route, q string) {
		req, _ := http.NewRequest("POST", "http://"+r.Addrs()[route]+"/v1/chat/completions?"+q, strings.NewReader(`{"model":"m"}`))
		req.Header.Set("Authorization", "Bearer "+secret("authorization"))
		req.Header.Set("Proxy-Authorization", "Basic "+secret("proxyauth"))
		req.Header.Set("Cookie", "sid="+secret("cookie"))
		req.Header.Set("X-Api-Key", secret("xapikey"))
		req.Header.Set("api-key", secret("apikey"))
		req.Header.Set("X-Internal-Token", secret("internal"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	send("up", "a=1&api_key="+secret("query")+"&b=2")
	send("down", "api_key="+secret("errquery"))
	stop()

	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) < 2 {
		t.Fatalf("capture dir holds %v, want Parquet files and capture.json", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range places {
			if bytes.Contains(b, []byte(secret(p))) {
				t.Errorf("%s holds the %s secret", filepath.Base(f), p)
			}
		}
	}
	rows := readCapture(t, dir)
	if len(rows) != 2 {
		t.Fatalf("read back %d rows, want 2", len(rows))
	}
	// The counts travel in the files' metadata too.
	infos, err := captures.List(dir)
	if err != nil || len(infos) == 0 {
		t.Fatalf("listing the capture: %v", err)
	}
	if m := infos[len(infos)-1].Metadata; m["loadtape.record.exchanges"] != "2" || m["loadtape.record.written"] != "2" || m["loadtape.record.dropped"] != "0" {
		t.Errorf("last file's metadata %v, want exchanges 2, written 2, dropped 0", m)
	}
	for _, e := range rows {
		text := fmt.Sprintf("%+v %s %s", e, e.ReqBody, e.RespBody)
		for _, p := range places {
			if strings.Contains(text, secret(p)) {
				t.Errorf("row %s holds the %s secret", e.Service, p)
			}
		}
		if got, want := header(e.ReqHeaders, "Authorization"), "Bearer "+r.redact.placeholder(secret("authorization")); got != want {
			t.Errorf("Authorization recorded as %q, want %q", got, want)
		}
		if e.Service == "up" && !strings.Contains(e.Query, "a=1&api_key=redacted%3A") {
			t.Errorf("query recorded as %q, want the secret parameter redacted in place", e.Query)
		}
		if e.Service == "down" && e.Error == "" {
			t.Errorf("the unreachable upstream left no error")
		}
	}
}

// TestKeepSecrets: --keep-secrets stores credentials as they were.
func TestKeepSecrets(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{KeepSecrets: true})
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Header.Set("Authorization", "Bearer kept")
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	rows := stop()
	if len(rows) != 1 || header(rows[0].ReqHeaders, "Authorization") != "Bearer kept" {
		t.Fatalf("rows %+v: Authorization not kept", rows)
	}
}
