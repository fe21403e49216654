package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/internal/nodefixture"
)

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
	rows := capturetest.Read[captures.Exchange](t, dir)
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

// plantedSecrets are the secrets TestSecretsEverywhere plants, by place:
// named fields and parameters hold arbitrary text, token shapes hold what
// the shape looks like.
func plantedSecrets() map[string]string {
	named := func(where string) string { return "S3CR3T-" + where + "-4e2d" }
	return map[string]string{
		"query-api_key":     named("q-apikey"),
		"query-token":       named("q-token"),
		"query-key":         named("q-key"),
		"req-json-api_key":  named("req-json"),
		"req-json-password": named("req-nested-pw"),
		"req-json-secret":   "918273645",
		"req-sk":            "sk-proj-ReqBodyKey0123456789abcdefXYZ",
		"req-nested-json":   named("req-args-token"),
		"form-secret":       named("form"),
		"hdr-x-auth-token":  named("hdr-xauth"),
		"hdr-bearer":        "Tok3nForTheHeader-9a8b7c",
		"resp-json-api_key": named("resp-json"),
		"resp-nested":       named("resp-nested"),
		"resp-sk":           "sk-ant-api03-RespBodyKey0123456789abcdefXYZ",
		"sse-sk":            "sk-SseStreamKey0123456789abcdef",
		"sse-token":         named("sse-token"),
		"gzip-password":     named("gzip-pw"),
		"gzip-aws":          "AKIAIOSFODNN7EXAMPL3",
		"plain-bearer":      "plainBearer.Tok3n_0123456789",
		"plain-ghp":         "ghp_PlainGitHubToken0123456789abcdefABCD",
		"plain-pat":         "github_pat_11PLAINPAT0123456789_abcdefghijklmnopqrstuvwxyz",
		"plain-jwt":         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
		"path-sk":           "sk-PathSegmentKey0123456789abcdef",
	}
}

// TestSecretsEverywhere plants secrets in every place they travel (query
// parameters, named JSON fields at any depth and inside JSON held in a
// string, form fields, credential-named headers, token shapes in request,
// response, stream and compressed bodies and in the path) and finds none in
// the capture's decoded values, read back by our reader and by DuckDB.
// Bodies without secrets stay byte for byte; equal secrets get equal
// placeholders.
func TestSecretsEverywhere(t *testing.T) {
	t.Parallel()
	s := plantedSecrets()
	cleanReq := `{"model":"m","max_tokens":5,"stream":false}`
	cleanResp := `{"model":"m","choices":[{"message":{"content":"a \u003c b, task-list"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},"next_page_token":"p2"}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/json"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"model":"m","api_key":%q,"data":{"items":[{"client_secret":%q}]},"note":"use %s please","usage":{"prompt_tokens":3,"completion_tokens":4}}`,
				s["resp-json-api_key"], s["resp-nested"], s["resp-sk"])
		case r.URL.Path == "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"key %s\"}}]}\n\n", s["sse-sk"])
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, "data: {\"choices\":[],\"token\":%q}\n\ndata: [DONE]\n\n", s["sse-token"])
		case r.URL.Path == "/gzip":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			fmt.Fprintf(zw, `{"password":%q,"text":"aws %s"}`, s["gzip-password"], s["gzip-aws"])
			zw.Close()
		case r.URL.Path == "/clean":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, cleanResp)
		default:
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "Authorization: Bearer %s\ntoken %s\npat %s\njwt %s\n", s["plain-bearer"], s["plain-ghp"], s["plain-pat"], s["plain-jwt"])
		}
	}))
	defer up.Close()
	dir := t.TempDir()
	r, base, stop := recorder(t, up.URL, Options{Out: dir})
	c := client()
	do := func(method, path, ct, body string, hdr ...string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	jsonBody := fmt.Sprintf(`{"model":"m","api_key":%q,"auth":{"inner":[{"password":%q}]},"secret":%s,`+
		`"messages":[{"role":"user","content":"my key is %s"}],"tools":[{"function":{"arguments":%q}}]}`,
		s["req-json-api_key"], s["req-json-password"], s["req-json-secret"], s["req-sk"],
		fmt.Sprintf(`{"access_token":%q,"n":1}`, s["req-nested-json"]))
	q := "x=1&api_key=" + url.QueryEscape(s["query-api_key"]) + "&token=" + s["query-token"] + "&key=" + s["query-key"]
	do("POST", "/json?"+q, "application/json", jsonBody, "Authorization", "Bearer "+s["hdr-bearer"])
	do("POST", "/json/form", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_secret="+url.QueryEscape(s["form-secret"])+"&client_id=abc")
	do("GET", "/sse", "", "", "X-Auth-Token", s["hdr-x-auth-token"], "Authorization", "Bearer "+s["hdr-bearer"])
	do("GET", "/gzip", "", "", "Accept-Encoding", "gzip")
	do("GET", "/files/"+s["path-sk"], "", "")
	do("POST", "/clean", "application/json", cleanReq)
	stop()

	rows := capturetest.Read[captures.Exchange](t, dir)
	if len(rows) != 6 {
		t.Fatalf("read back %d rows, want 6", len(rows))
	}
	texts := []string{}
	for _, e := range rows {
		texts = append(texts, rowText(t, e))
	}
	texts = append(texts, duckDump(t, dir)...)
	for where, secret := range s {
		for _, text := range texts {
			if strings.Contains(text, secret) {
				t.Errorf("the %s secret %q is in the capture", where, secret)
				break
			}
		}
	}
	byPath := map[string]captures.Exchange{}
	for _, e := range rows {
		byPath[e.Path] = e
	}
	clean := byPath["/clean"]
	if string(clean.ReqBody) != cleanReq || string(clean.RespBody) != cleanResp {
		t.Errorf("bodies without secrets changed:\n%s\n%s", clean.ReqBody, clean.RespBody)
	}
	js := byPath["/json"]
	if js.ReqSize != int64(len(jsonBody)) || js.ReqTruncated {
		t.Errorf("redacted request body: size %d truncated %v, want the true size %d", js.ReqSize, js.ReqTruncated, len(jsonBody))
	}
	if js.PromptTokens != 3 || js.Model != "m" {
		t.Errorf("model %q prompt tokens %d, want them read before redaction", js.Model, js.PromptTokens)
	}
	var doc struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(js.ReqBody, &doc); err != nil {
		t.Fatalf("redacted request body is not JSON: %v\n%s", err, js.ReqBody)
	}
	if !captures.ContainsPlaceholder(doc.APIKey) || !captures.ContainsPlaceholder(js.Query) {
		t.Errorf("api_key %q, query %q: want placeholders", doc.APIKey, js.Query)
	}
	// Equal secrets group: the bearer token of two requests, bare in one
	// place and in a header in the other, and a value in two places.
	if a, b := header(js.ReqHeaders, "Authorization"), header(byPath["/sse"].ReqHeaders, "Authorization"); a != b || a != "Bearer "+r.redact.placeholder(s["hdr-bearer"]) {
		t.Errorf("the same Authorization recorded as %q and %q", a, b)
	}
	if q, _ := url.ParseQuery(js.Query); q.Get("api_key") != r.redact.placeholder(s["query-api_key"]) {
		t.Errorf("query api_key recorded as %q", q.Get("api_key"))
	}
	if js.Session != byPath["/sse"].Session || strings.Contains(js.Session, hex.EncodeToString(sha256Of("Bearer " + s["hdr-bearer"]))[:16]) {
		t.Errorf("sessions %q / %q: want equal, keyed", js.Session, byPath["/sse"].Session)
	}
}

func sha256Of(s string) []byte { b := sha256.Sum256([]byte(s)); return b[:] }

// rowText is every value of a row as text, bodies decoded (percent-escapes
// undone, gzip inflated), for looking secrets up in.
func rowText(t *testing.T, e captures.Exchange) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%+v\n%s\n%s\n", e, e.ReqBody, e.RespBody)
	if q, err := url.QueryUnescape(e.Query); err == nil {
		b.WriteString(q + "\n")
	}
	if q, err := url.QueryUnescape(string(e.ReqBody)); err == nil {
		b.WriteString(q + "\n")
	}
	for _, body := range [][]byte{e.ReqBody, e.RespBody} {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Errorf("stored gzip body does not inflate: %v", err)
			}
			b.Write(plain)
		}
	}
	return b.String()
}

// duckDump has DuckDB read every capture file and returns what it printed,
// bodies decoded from base64 and inflated when gzipped; nil without node
// and DuckDB (outside CI).
func duckDump(t *testing.T, dir string) []string {
	t.Helper()
	nd, node := nodefixture.Dir(t, "@duckdb/node-api")
	files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	var out []string
	for _, f := range files {
		cmd := exec.Command(node, filepath.Join(nd, "captures-duckdb.mjs"), f,
			"SELECT * REPLACE (to_base64(req_body) AS req_body, to_base64(resp_body) AS resp_body) FROM f")
		cmd.Dir = nd
		raw, err := cmd.Output()
		if err != nil {
			t.Fatalf("duckdb on %s: %v", f, err)
		}
		out = append(out, string(raw))
		var got struct {
			Rows []map[string]any
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		for _, row := range got.Rows {
			for _, col := range []string{"req_body", "resp_body"} {
				body, _ := base64.StdEncoding.DecodeString(fmt.Sprint(row[col]))
				out = append(out, rowText(t, captures.Exchange{RespBody: body}))
			}
		}
	}
	if len(files) > 0 && len(out) == 0 {
		t.Fatal("DuckDB printed nothing")
	}
	return out
}

// TestKeepSecretsBodies: --keep-secrets also leaves bodies as they were.
func TestKeepSecretsBodies(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"api_key":"sk-KeptKey0123456789abcdefgh"}`)
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{KeepSecrets: true})
	resp, err := client().Get(base + "/?api_key=kept")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	rows := stop()
	if len(rows) != 1 || rows[0].Query != "api_key=kept" || string(rows[0].RespBody) != `{"api_key":"sk-KeptKey0123456789abcdefgh"}` {
		t.Fatalf("rows %+v: secrets not kept", rows)
	}
}
