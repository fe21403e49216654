package har_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/har"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/internal/nodefixture"
)

// chatPage is a small chat UI: it lists the models, asks two questions of
// the first one (one answer streamed, as chat UIs show it), checks health,
// and reports the statuses in window.done. Its calls go to its own origin,
// where the test forwards them to the gateway (the sim sends no CORS
// headers, and a UI is usually served beside its API).
const chatPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>chat</title><link rel="icon" href="data:,"></head>
<body><p id="out">…</p><script>
(async () => {
  const auth = { Authorization: "Bearer sk-browser-0123456789abcdef" };
  const r = { chats: [] };
  try {
    const m = await fetch("/v1/models", { headers: auth });
    r.models = m.status;
    const model = (await m.json()).data[0].id;
    r.model = model;
    for (const [content, stream] of [["Hello there", false], ["Explain Python decorators", true]]) {
      const c = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content }], max_tokens: 16, stream,
          ...(stream ? { stream_options: { include_usage: true } } : {}) }),
      });
      const text = await c.text();
      r.chats.push({ status: c.status, stream, events: (text.match(/^data:/gm) || []).length });
    }
    const h = await fetch("/health");
    await h.text();
    r.health = h.status;
  } catch (e) {
    r.error = String(e);
  }
  document.getElementById("out").textContent = JSON.stringify(r);
  window.done = r;
})();
</script></body></html>`

// chromiumPath finds Debian's Chromium; outside CI its absence skips the
// test, in CI (which installs it) it fails it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; CI must install it (apt-get install chromium)")
	}
	t.Skip("skipping: /usr/bin/chromium is missing (apt-get install chromium); the browser's HAR cannot be recorded")
	return ""
}

// TestBrowserRecordedHARReplaysAgainstSim: a HAR written by a real browser
// (Playwright's recordHar driving Chromium) of a page calling the simulated
// gateway is imported through the same code as `loadtape import har`, holds
// the page's models, chat and health calls with their statuses and its
// credentials redacted, and replays against the sim without a failure.
// Not parallel: a browser and load against the sim on a 2-core machine.
func TestBrowserRecordedHARReplaysAgainstSim(t *testing.T) {
	browser := chromiumPath(t)
	dir, node := nodefixture.Dir(t, "playwright-core")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	suite := startSim(t, ctx)
	gw, err := url.Parse(suite.URLs()["gateway"])
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(gw)
	fwd.FlushInterval = -1 // pass the streamed answer on as it comes
	mux := http.NewServeMux()
	mux.Handle("/v1/", fwd)
	mux.Handle("/health", fwd)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(chatPage))
	})
	page := httptest.NewServer(mux)
	defer page.Close()

	harFile := filepath.Join(t.TempDir(), "browser.har")
	began := time.Now()
	nctx, ncancel := context.WithTimeout(ctx, 40*time.Second)
	defer ncancel()
	cmd := exec.CommandContext(nctx, node, filepath.Join(dir, "har-record.mjs"), browser, page.URL+"/", harFile)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node har-record.mjs: %v\n%s%s", err, out, stderr.String())
	}
	t.Logf("browser recorded in %v: %s", time.Since(began).Round(time.Millisecond), bytes.TrimSpace(out))
	var seen struct {
		Models int
		Health int
		Error  string
		Chats  []struct {
			Status int
			Stream bool
			Events int
		}
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("page result %q: %v", out, err)
	}
	if seen.Error != "" || seen.Models != 200 || seen.Health != 200 || len(seen.Chats) != 2 {
		t.Fatalf("the page's calls through the browser: %s", out)
	}
	for _, c := range seen.Chats {
		if c.Status != 200 || c.Stream != (c.Events > 1) {
			t.Fatalf("the page's chats: %s", out)
		}
	}

	// The archive is the browser's, as written: check it, then import it.
	a, err := har.Read(harFile)
	if err != nil {
		t.Fatal(err)
	}
	if c := a.File.Log.Creator.Name; c != "Playwright" {
		t.Errorf("HAR creator %q, want Playwright", c)
	}
	capDir := t.TempDir()
	st, err := har.Import([]string{harFile}, har.ImportOptions{Service: "gateway", Out: capDir})
	if err != nil {
		t.Fatal(err)
	}
	xs := capturetest.Read[captures.Exchange](t, capDir)
	t.Logf("imported %+v", st)
	ops := map[string][]captures.Exchange{}
	for _, x := range xs {
		ops[x.Operation] = append(ops[x.Operation], x)
		for _, h := range x.ReqHeaders {
			if h.Name == "Authorization" && !captures.ContainsPlaceholder(h.Value) {
				t.Errorf("%s: Authorization %q kept, want a placeholder", x.Operation, h.Value)
			}
		}
		if x.Status != 200 || x.Service != "gateway" || x.Error != "" {
			t.Errorf("%s %s: service %q status %d error %q, want gateway 200", x.Method, x.Path, x.Service, x.Status, x.Error)
		}
	}
	if len(xs) != 4 || len(ops["models.list"]) != 1 || len(ops["chat.completions"]) != 2 || len(ops["health"]) != 1 {
		t.Fatalf("imported %d exchanges by operation %v, want models.list 1, chat.completions 2, health 1", len(xs), opCounts(ops))
	}
	streamed := 0
	for _, x := range ops["chat.completions"] {
		if x.Model == "" || x.CompletionTokens == 0 {
			t.Errorf("chat %s: model %q, %d completion tokens, want both from the bodies", x.ID, x.Model, x.CompletionTokens)
		}
		if x.Stream {
			streamed++
		}
	}
	if streamed != 1 {
		t.Errorf("%d chats imported as streamed, want 1", streamed)
	}

	replayOnGateway(t, ctx, capDir, suite.URLs()["gateway"], 2, http.Header{"Authorization": {"Bearer sim"}}) // the browser's was redacted when imported
}

func opCounts(ops map[string][]captures.Exchange) map[string]int {
	n := map[string]int{}
	for k, v := range ops {
		n[k] = len(v)
	}
	return n
}
