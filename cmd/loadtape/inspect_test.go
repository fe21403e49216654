package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInspectCommand runs `loadtape inspect` on a capture, and on paths
// that hold nothing readable, through the binary.
func TestInspectCommand(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := writeCapture(t, sampleExchanges())
	out, stderr, code := loadtape(t, bin, "inspect", dir)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"recorded exchanges", "chat.completions", "2xx 31, 4xx 1", "m 31, nope 1", "1 exchange(s) failed when recorded"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "RESULTS") {
		t.Errorf("a capture shows a results column:\n%s", out)
	}
	out, _, code = loadtape(t, bin, "inspect", "--json", dir)
	var inv struct {
		Operations []struct {
			Operation string `json:"operation"`
			Recorded  *struct {
				P50MS   float64 `json:"p50_ms"`
				Streams int     `json:"streams"`
			} `json:"recorded"`
		} `json:"operations"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil || code != 0 {
		t.Fatalf("inspect --json: exit %d, %v", code, err)
	}
	for _, o := range inv.Operations {
		if o.Operation == "chat.completions" && (o.Recorded == nil || o.Recorded.P50MS != 300 || o.Recorded.Streams != 20) {
			t.Errorf("chat.completions recorded %+v, want p50 300 ms and 20 streams", o.Recorded)
		}
	}

	named := filepath.Join(t.TempDir(), "x.parquet")
	os.Mkdir(named, 0o755)
	for _, p := range []string{t.TempDir(), named, filepath.Join(t.TempDir(), "missing")} {
		if _, stderr, code := loadtape(t, bin, "inspect", p); code != exitBadInput || !strings.Contains(stderr, p) {
			t.Errorf("inspect %s: exit %d, stderr %q; want exit 2 naming it", p, code, stderr)
		}
	}
}
