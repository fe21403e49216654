package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/internal/nodefixture"
	"github.com/loadtape/loadtape/replay"
)

func TestRedactMultipart(t *testing.T) {
	t.Parallel()
	rd := newRedactor(false, nil)
	p := rd.placeholder
	h := http.Header{"Content-Type": {`multipart/form-data; boundary="b1"`}}
	part := func(disp, v string) string {
		return "--b1\r\nContent-Disposition: form-data; " + disp + "\r\n\r\n" + v + "\r\n"
	}
	cases := []struct {
		why, in, want string
		truncated     bool
	}{
		{"credential fields by name, the rest as it was",
			part(`name="purpose"`, "fine-tune") + part(`name="api_key"`, "k1") + part(`name="DB_Password"`, "p w") + "--b1--\r\n",
			part(`name="purpose"`, "fine-tune") + part(`name="api_key"`, p("k1")) + part(`name="DB_Password"`, p("p w")) + "--b1--\r\n", false},
		{"a file named like a credential is a file", part(`name="token"; filename="t.txt"`, "plain text") + "--b1--\r\n", "", false},
		{"a token shape in a file", part(`name="f"; filename="k.txt"`, "key sk-abcdefghijklmnopqrstuvwxyz end") + "--b1--\r\n",
			part(`name="f"; filename="k.txt"`, "key "+p("sk-abcdefghijklmnopqrstuvwxyz")+" end") + "--b1--\r\n", false},
		{"a preamble and part headers kept", "preamble\r\n--b1\r\nContent-Type: text/plain\r\nContent-Disposition: form-data; name=secret\r\n\r\nxyz\r\n--b1--\r\nepilogue",
			"preamble\r\n--b1\r\nContent-Type: text/plain\r\nContent-Disposition: form-data; name=secret\r\n\r\n" + p("xyz") + "\r\n--b1--\r\nepilogue", false},
		{"a body cut inside the secret", part(`name="a"`, "1") + "--b1\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter",
			part(`name="a"`, "1") + "--b1\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n" + p("hunter"), true},
		{"no boundary: left alone", "--b2\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nx\r\n--b2--\r\n", "", false},
	}
	for _, c := range cases {
		got := string(rd.body([]byte(c.in), h, c.truncated))
		want := c.want
		if want == "" {
			want = c.in
		}
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", c.why, got, want)
		}
	}
}

// multipartSecrets are the credential fields every client sends, by name.
var multipartSecrets = map[string]string{
	"password":      "S3CR3T-mp-password-51a0",
	"api_key":       "S3CR3T-mp-apikey-7c2e",
	"client_secret": "S3CR3T-mp-client-9d41",
}

const (
	mpFileKey  = "sk-proj-MultipartFileKey0123456789abcdef"
	mpNotes    = "notes named like a credential are still a file"
	mpPurpose  = "fine-tune"
	mpBinarySz = 4096
)

// TestMultipartSecrets uploads a form with credential fields, a file whose
// field is named like one, a text file holding an sk- key and a binary
// file, from Go's mime/multipart writer, curl -F and Node's fetch with
// FormData. In the capture (our reader and DuckDB) the credential fields
// hold placeholders, the key in the file is redacted, the other fields and
// files are byte for byte as sent, and the body still parses as multipart.
// A replay of the capture is refused until the credentials are given.
func TestMultipartSecrets(t *testing.T) {
	t.Parallel()
	binary := make([]byte, mpBinarySz)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range binary {
		binary[i] = byte(rng.IntN(256))
	}
	files := t.TempDir()
	writeFile := func(name string, b []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notesPath := writeFile("notes.txt", []byte(mpNotes))
	keyPath := writeFile("key.txt", []byte("key "+mpFileKey+" end"))
	binPath := writeFile("blob.bin", binary)

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil || r.FormValue("password") != multipartSecrets["password"] {
			http.Error(w, fmt.Sprintf("upstream did not get the form as sent: %v", err), 400)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	dir := t.TempDir()
	_, base, stop := recorder(t, up.URL, Options{Out: dir})
	url := base + "/v1/files"

	clients := map[string]func() error{
		"go": func() error {
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			mw.WriteField("purpose", mpPurpose)
			for _, k := range []string{"password", "api_key", "client_secret"} {
				mw.WriteField(k, multipartSecrets[k])
			}
			for _, f := range []struct {
				field, name string
				b           []byte
			}{{"token", "notes.txt", []byte(mpNotes)}, {"file", "key.txt", []byte("key " + mpFileKey + " end")}, {"blob", "blob.bin", binary}} {
				fw, _ := mw.CreateFormFile(f.field, f.name)
				fw.Write(f.b)
			}
			mw.Close()
			resp, err := client().Post(url+"?client=go", mw.FormDataContentType(), &body)
			if err != nil {
				return err
			}
			if b := readAll(t, resp); resp.StatusCode != 200 {
				return fmt.Errorf("status %d: %s", resp.StatusCode, b)
			}
			return nil
		},
		"curl": func() error {
			curl, err := exec.LookPath("curl")
			if err != nil {
				return errSkip
			}
			args := []string{"-sS", "--fail-with-body", "-F", "purpose=" + mpPurpose}
			for _, k := range []string{"password", "api_key", "client_secret"} {
				args = append(args, "-F", k+"="+multipartSecrets[k])
			}
			args = append(args, "-F", "token=@"+notesPath, "-F", "file=@"+keyPath, "-F", "blob=@"+binPath, url+"?client=curl")
			if out, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("curl: %v: %s", err, out)
			}
			return nil
		},
		"node": func() error {
			_, node := nodefixture.Dir(t, "@duckdb/node-api")
			script := `
import { readFileSync } from "node:fs";
const [url, notes, key, bin, secrets] = process.argv.slice(1);
const form = new FormData();
form.append("purpose", "` + mpPurpose + `");
for (const [k, v] of Object.entries(JSON.parse(secrets))) form.append(k, v);
form.append("token", new Blob([readFileSync(notes)]), "notes.txt");
form.append("file", new Blob([readFileSync(key)]), "key.txt");
form.append("blob", new Blob([readFileSync(bin)]), "blob.bin");
const resp = await fetch(url, { method: "POST", body: form });
if (!resp.ok) { console.error(resp.status, await resp.text()); process.exit(1); }
`
			sec := fmt.Sprintf(`{"password":%q,"api_key":%q,"client_secret":%q}`, multipartSecrets["password"], multipartSecrets["api_key"], multipartSecrets["client_secret"])
			cmd := exec.Command(node, "--input-type=module", "-e", script, url+"?client=node", notesPath, keyPath, binPath, sec)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("node fetch: %v: %s", err, out)
			}
			return nil
		},
	}
	sent := 0
	for name, send := range clients {
		err := send()
		if errors.Is(err, errSkip) {
			// Node's fetch (required in CI) is the real client that must
			// run; curl is used where it is installed.
			t.Logf("%s is not installed: its upload is left out", name)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sent++
	}
	stop()

	rows := capturetest.Read[captures.Exchange](t, dir)
	if len(rows) != sent {
		t.Fatalf("read back %d rows, want %d", len(rows), sent)
	}
	secrets := []string{mpFileKey}
	for _, s := range multipartSecrets {
		secrets = append(secrets, s)
	}
	texts := duckDump(t, dir)
	for _, e := range rows {
		texts = append(texts, rowText(t, e))
		checkMultipartRow(t, e, binary)
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the secret %q is in the capture", s)
			}
		}
	}

	prof, err := replay.ParseProfile([]byte(`
scenarios: {s: {service: svc, stages: [{users: 1, duration: 200ms}], mix: {"POST /v1/files": 1}}}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			t.Errorf("a refused replay sent %s %s", r.Method, r.URL)
		}
	}))
	defer target.Close()
	_, err = replay.Run(context.Background(), replay.Options{Exchanges: rows, Profile: prof, Out: t.TempDir(), Targets: map[string]string{"svc": target.URL}})
	if !errors.Is(err, replay.ErrMissingCredentials) {
		t.Errorf("replaying redacted uploads: %v, want ErrMissingCredentials", err)
	}
}

var errSkip = errors.New("not installed")

// checkMultipartRow parses a recorded upload with Go's multipart reader:
// placeholders in the credential fields and in place of the file's key,
// everything else as sent.
func checkMultipartRow(t *testing.T, e captures.Exchange, binary []byte) {
	t.Helper()
	_, params, err := mime.ParseMediaType(header(e.ReqHeaders, "Content-Type"))
	if err != nil {
		t.Fatalf("%s: content type: %v", e.Query, err)
	}
	if e.ReqTruncated {
		t.Errorf("%s: upload stored as truncated", e.Query)
	}
	mr := multipart.NewReader(bytes.NewReader(e.ReqBody), params["boundary"])
	got := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: the stored body no longer parses: %v", e.Query, err)
		}
		b, _ := io.ReadAll(p)
		got[p.FormName()] = string(b)
	}
	for k := range multipartSecrets {
		if !captures.ContainsPlaceholder(got[k]) || !strings.HasPrefix(got[k], captures.PlaceholderPrefix) {
			t.Errorf("%s: field %s stored as %q, want a placeholder", e.Query, k, got[k])
		}
	}
	if got["purpose"] != mpPurpose || got["token"] != mpNotes || got["blob"] != string(binary) {
		t.Errorf("%s: purpose %q, token file %q, binary file equal %v: want them as sent", e.Query, got["purpose"], got["token"], got["blob"] == string(binary))
	}
	if f := got["file"]; !strings.HasPrefix(f, "key "+captures.PlaceholderPrefix) || !strings.HasSuffix(f, " end") {
		t.Errorf("%s: key file stored as %q, want the key replaced in place", e.Query, f)
	}
}
