package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSandboxResolve: whatever the path, an accepted one names a file
// inside the root once symlinks are resolved.
func FuzzSandboxResolve(f *testing.F) {
	for _, p := range []string{"README.md", "../x", "links/secret.txt", "a/../../b", "%2e%2e/x", "links/up/x", "services/./rag/../rag/app.py"} {
		f.Add(p)
	}
	dir, cleanup, err := newWorkspace("")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(cleanup)
	real, _ := filepath.EvalSymlinks(dir)
	root, err := os.OpenRoot(real)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	box := &sandbox{dir: real, root: root, refusals: map[string]int64{}}
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := box.resolve(p)
		if err != nil {
			return
		}
		full := filepath.Join(real, rel)
		if r, err := filepath.EvalSymlinks(full); err == nil {
			full = r
		}
		if full != real && !strings.HasPrefix(full, real+string(filepath.Separator)) {
			t.Fatalf("resolve(%q) accepted %q, outside %q", p, full, real)
		}
	})
}

// FuzzChatRequest: any body gets 200 or an OpenAI error object, never a panic.
func FuzzChatRequest(f *testing.F) {
	f.Add(`{"model":"chat-7b","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)
	f.Add(`{"model":"chat-7b","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true}`)
	f.Add(`{"model":"x","messages":null}`)
	f.Add(`{`)
	cfg := DefaultConfig()
	cfg.TimeScale = 0.0001
	h := newGateway(cfg).handler()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			return
		}
		var e struct {
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Message == "" {
			t.Fatalf("status %d body %q: not an OpenAI error", rec.Code, rec.Body.String())
		}
	})
}
