package reports

import (
	"context"
	"encoding/json"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium finds a headless-capable Chromium; outside CI its absence skips
// the test, in CI (which installs Debian's chromium) it fails it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not on PATH; CI must install it (apt-get install chromium)")
	}
	t.Skip("skipping: chromium is not on PATH (apt-get install chromium)")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// The HTML report opened in a real browser: its targets table, findings
// and figures are in the DOM, the first screen (1280×800) shows the failed
// targets, and the page it paints is not blank. The screenshot is kept
// with go test -artifacts.
func TestHTMLInHeadlessChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	dir := t.TempDir()
	s := demoLike(t)
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(dir, "report.html")
	dom := string(runChromium(t, bin, "--dump-dom", url))
	for _, want := range []string{`id="verdict"`, `id="failed-targets"`, `id="targets"`, `class="finding high"`, `class="evidence"`, `class="stages"`, `id="failures-table"`, "serialization", "pool_exhaustion", "gpu_memory_pressure"} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if n := strings.Count(dom, `<img src="data:image/png;base64,`); n < 3*4+1 {
		t.Errorf("DOM has %d inline figures, want at least 13 (4 per scenario and the timeline)", n)
	}
	if n := strings.Count(dom, "<tr"); n < 20 {
		t.Errorf("DOM has %d table rows, want the targets, evidence and stage tables", n)
	}

	// The first screen: the report in a 1280×800 frame of a page that
	// measures where the failed targets end and what the banner says.
	probe := filepath.Join(dir, "probe.html")
	os.WriteFile(probe, []byte(`<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="report.html" style="width:1280px;height:800px;border:0"></iframe>
<script>
document.getElementById("f").onload = function () {
  var d = this.contentDocument, ft = d.getElementById("failed-targets");
  var out = document.createElement("pre");
  out.id = "probe";
  var wide = [];
  d.querySelectorAll("table").forEach(function (t) { if (t.scrollWidth > t.clientWidth + 1 || t.getBoundingClientRect().right > d.documentElement.clientWidth) wide.push(t.className || t.id); });
  out.textContent = JSON.stringify({bottom: ft ? ft.getBoundingClientRect().bottom : -1, banner: d.getElementById("verdict").innerText, wide: wide});
  document.body.appendChild(out);
};
</script></body></html>`), 0o644)
	probed := string(runChromium(t, bin, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom", "file://"+probe))
	i, j := strings.Index(probed, `<pre id="probe">`), strings.Index(probed, "</pre>")
	if i < 0 || j < i {
		t.Fatalf("the probe page measured nothing:\n%.2000s", probed)
	}
	var m struct {
		Bottom float64
		Banner string
		Wide   []string // tables that scroll sideways
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(probed[i+len(`<pre id="probe">`):j])), &m); err != nil {
		t.Fatal(err)
	}
	if m.Bottom <= 0 || m.Bottom > 800 {
		t.Errorf("the failed targets end at y=%v, want within the first screen (800 px)", m.Bottom)
	}
	for _, want := range []string{"FAIL", "3 of 6 targets failed", "gateway error_rate", "rag error_rate[vector_timeout]", "mcp p95", "Explained by gpu_memory_pressure", "Explained by serialization"} {
		if !strings.Contains(m.Banner, want) {
			t.Errorf("first screen's banner lacks %q:\n%s", want, m.Banner)
		}
	}

	if len(m.Wide) > 0 {
		t.Errorf("tables scroll sideways in a 1280 px window: %q", m.Wide)
	}

	shot := filepath.Join(t.ArtifactDir(), "report-first-screen.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,800", "--hide-scrollbars", url)
	runChromium(t, bin, "--screenshot="+filepath.Join(t.ArtifactDir(), "report.png"), "--window-size=1280,1600", "--hide-scrollbars", url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	colors := map[uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[(r>>11)<<10|(g>>11)<<5|bl>>11] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if len(colors) < 20 || nonWhite < total/50 {
		t.Errorf("screenshot looks blank: %d colours, %d of %d pixels not white", len(colors), nonWhite, total)
	}
}
