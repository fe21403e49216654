package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/loopback"
	"github.com/loadtape/loadtape/internal/nodefixture"
)

// upload is one multipart/form-data request as a server read it.
type upload struct {
	contentType string
	raw         []byte
	fields      map[string]string // plain fields
	files       map[string][]byte // file parts by field
	err         error
}

// uploadServer keeps every multipart upload it receives, parsed with Go's
// multipart reader, and answers {"ok":true}.
type uploadServer struct {
	*httptest.Server
	mu  sync.Mutex
	got []upload
}

func startUploadServer(t *testing.T) *uploadServer {
	s := &uploadServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/health" {
			return
		}
		u := upload{contentType: r.Header.Get("Content-Type"), raw: raw, fields: map[string]string{}, files: map[string][]byte{}}
		_, params, err := mime.ParseMediaType(u.contentType)
		if err == nil {
			mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
			for {
				p, perr := mr.NextPart()
				if perr == io.EOF {
					break
				}
				if perr != nil {
					err = perr
					break
				}
				b, _ := io.ReadAll(p)
				if p.FileName() != "" {
					u.files[p.FormName()] = b
				} else {
					u.fields[p.FormName()] = string(b)
				}
			}
		}
		u.err = err
		s.mu.Lock()
		s.got = append(s.got, u)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *uploadServer) uploads() []upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]upload(nil), s.got...)
}

// The credentials the uploads carry, and what a replay gives for them.
const (
	mpRecordedKey  = "S3CR3T-recorded-upload-key-3f9a"
	mpRecordedPass = "S3CR3T-recorded-upload-pass-77c1"
	mpLiveKey      = "live-upload-key-5b20"
	mpLivePass     = "live upload pass; with = & \" quotes"
	mpPurpose      = "fine-tune"
)

// TestMultipartSecretReplay, end to end through the loadtape binary:
// uploads with credential fields, made with curl -F and with Node's fetch
// and FormData, are recorded by `loadtape record`; `loadtape replay` of
// that capture is refused without --secret (exit 2, naming the flags), and
// with --secret for each field the target receives the live values in
// their parts, every other field and file byte for byte as recorded, and no
// placeholder anywhere.
func TestMultipartSecretReplay(t *testing.T) {
	t.Parallel()
	bin := buildLoadtape(t)
	ndir, node := nodefixture.Dir(t, "openai")
	blob := make([]byte, 2048)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range blob {
		blob[i] = byte(rng.IntN(256))
	}
	blobPath := filepath.Join(t.TempDir(), "blob.bin")
	if err := os.WriteFile(blobPath, blob, 0o600); err != nil {
		t.Fatal(err)
	}

	up := startUploadServer(t)
	capDir := filepath.Join(t.TempDir(), "cap")
	listen := loopback.FreeAddr(t)
	rec := exec.Command(bin, "record", "--out", capDir, "--route", "files@"+listen+"="+up.URL)
	var recLog bytes.Buffer
	rec.Stdout, rec.Stderr = &recLog, &recLog
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	defer rec.Process.Kill()
	waitListening(t, listen)
	url := "http://" + listen + "/v1/files"

	sent := 0
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--fail-with-body", "-F", "purpose="+mpPurpose, "-F", "api_key="+mpRecordedKey,
			"-F", "password="+mpRecordedPass, "-F", "file=@"+blobPath, url+"?client=curl").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		sent++
	} else {
		t.Log("curl is not installed: only Node's upload is recorded")
	}
	script := `
import { readFileSync } from "node:fs";
const [url, blob, key, pass] = process.argv.slice(1);
const form = new FormData();
form.append("purpose", "` + mpPurpose + `");
form.append("api_key", key);
form.append("file", new Blob([readFileSync(blob)]), "blob.bin");
form.append("password", pass);
const resp = await fetch(url, { method: "POST", body: form });
if (!resp.ok) { console.error(resp.status, await resp.text()); process.exit(1); }
`
	cmd := exec.Command(node, "--input-type=module", "-e", script, url+"?client=node", blobPath, mpRecordedKey, mpRecordedPass)
	cmd.Dir = ndir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node fetch: %v: %s", err, out)
	}
	sent++
	if err := rec.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v\n%s", err, recLog.String())
	}
	if n := len(up.uploads()); n != sent {
		t.Fatalf("the upstream received %d uploads while recording, want %d", n, sent)
	}

	prof := filepath.Join(t.TempDir(), "profile.yaml")
	if err := os.WriteFile(prof, []byte(`
scenarios: {s: {service: files, stages: [{users: 1, duration: 400ms}], think: {constant: 20ms}, mix: {"POST /v1/files": 1}}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	target := startUploadServer(t)
	replayCmd := func(extra ...string) (string, error) {
		args := append([]string{"replay", "--captures", capDir, "--profile", prof, "--target", "files=" + target.URL,
			"--out", filepath.Join(t.TempDir(), "run")}, extra...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}

	out, err := replayCmd()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("replay without --secret: %v, want exit 2\n%s", err, out)
	}
	for _, want := range []string{"body field api_key", "body field password", "--secret api_key=...", "--secret password=..."} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal lacks %q:\n%s", want, out)
		}
	}
	if n := len(target.uploads()); n != 0 {
		t.Fatalf("a refused replay sent %d uploads", n)
	}

	if out, err := replayCmd("--secret", "api_key="+mpLiveKey, "--secret", "password="+mpLivePass); err != nil {
		t.Fatalf("replay with --secret: %v\n%s", err, out)
	}
	got := target.uploads()
	if len(got) < 2 {
		t.Fatalf("the target received %d uploads, want the recorded ones replayed", len(got))
	}
	for _, u := range got {
		if u.err != nil {
			t.Fatalf("the target could not read a replayed upload: %v\n%s", u.err, u.raw)
		}
		if captures.ContainsPlaceholder(string(u.raw)) || strings.Contains(string(u.raw), captures.PlaceholderPrefix) || captures.ContainsPlaceholder(u.contentType) {
			t.Fatalf("the target received a placeholder:\n%s", u.raw)
		}
		if bytes.Contains(u.raw, []byte(mpRecordedKey)) || bytes.Contains(u.raw, []byte(mpRecordedPass)) {
			t.Fatalf("the target received a recorded secret:\n%s", u.raw)
		}
		if u.fields["api_key"] != mpLiveKey || u.fields["password"] != mpLivePass || u.fields["purpose"] != mpPurpose || !bytes.Equal(u.files["file"], blob) {
			t.Fatalf("replayed upload: fields %q, file equal %v; want the live credentials, the rest as recorded", u.fields, bytes.Equal(u.files["file"], blob))
		}
	}
}

// TestFillMultipart: the parts around a filled field keep every byte; a
// secret holding the boundary gets the body a new one (and the request a
// new Content-Type); a field without its secret is left out with
// allowMissing, reported otherwise; a redacted token inside a file, or a
// body cut short, cannot be sent.
func TestFillMultipart(t *testing.T) {
	t.Parallel()
	ph := captures.Placeholder([]byte("key"), "recorded")
	const b = "xYz"
	form := func(b, secret string) string {
		part := func(name, file, value string) string {
			h := `Content-Disposition: form-data; name="` + name + `"`
			if file != "" {
				h += `; filename="` + file + `"` + "\r\nContent-Type: application/octet-stream"
			}
			return "--" + b + "\r\n" + h + "\r\n\r\n" + value + "\r\n"
		}
		return "preamble\r\n" + part("purpose", "", "a") + part("api_key", "", secret) + part("data", "d.bin", "\x00\xff raw --xY") + "--" + b + "--\r\nepilogue"
	}
	body := form(b, ph)
	x := captures.Exchange{Operation: "POST /v1/files", ReqBody: []byte(body),
		ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "multipart/form-data; boundary=" + b}}}

	var missed []string
	miss := func(n string) { missed = append(missed, n) }
	c := credentials{secrets: map[string]string{"api_key": "live"}}
	got, ct, err := c.fillBody(&x, miss)
	want := strings.Replace(body, ph, "live", 1)
	if err != nil || ct != "" || string(got) != want || missed != nil {
		t.Fatalf("filled: %q, content type %q, %v, missed %v\nwant %q", got, ct, err, missed, want)
	}

	c.secrets["api_key"] = "live\r\n--" + b + "\r\nmore"
	got, ct, err = c.fillBody(&x, miss)
	_, params, perr := mime.ParseMediaType(ct)
	if err != nil || perr != nil || params["boundary"] == b || params["boundary"] == "" {
		t.Fatalf("a secret holding the boundary: content type %q (%v), %v", ct, perr, err)
	}
	nb := params["boundary"]
	if want := form(nb, c.secrets["api_key"]); string(got) != want {
		t.Errorf("with a new boundary: %q\nwant %q", got, want)
	}
	mr := multipart.NewReader(bytes.NewReader(got), nb)
	for _, w := range []string{"a", c.secrets["api_key"], "\x00\xff raw --xY"} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := io.ReadAll(p); string(v) != w {
			t.Errorf("part %s: %q, want %q", p.FormName(), v, w)
		}
	}
	if h := withContentType(x.ReqHeaders, ct); h[0].Value != ct {
		t.Errorf("content type header %q, want %q", h[0].Value, ct)
	}

	c.secrets = map[string]string{}
	got, _, err = c.fillBody(&x, miss)
	if err != nil || strings.Contains(string(got), "api_key") || !strings.Contains(string(got), "d.bin") || fmt.Sprint(missed) != "[api_key]" {
		t.Errorf("without its secret: %q, %v, missed %v; want the field left out and reported", got, err, missed)
	}

	for why, bad := range map[string]string{
		"a token inside a file": strings.Replace(body, "raw", "key "+ph, 1),
		"cut short":             body[:len(body)-20],
	} {
		y := x
		y.ReqBody = []byte(bad)
		if _, _, err := c.fillBody(&y, miss); err == nil {
			t.Errorf("%s: filled, want refused", why)
		}
	}
}

// buildLoadtape compiles cmd/loadtape into the test's temporary directory.
func buildLoadtape(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "loadtape")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/loadtape")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitListening waits (at most 20 s) until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s", addr)
}
