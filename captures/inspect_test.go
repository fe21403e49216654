package captures_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/captures"
)

// TestInspectSample inspects the committed sample capture (made by
// `go run ./captures/testdata/gen`) plus a leftover .inprogress file and a
// bad file beside it.
func TestInspectSample(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sample, _ := filepath.Glob(filepath.Join("testdata", "sample", "*.parquet"))
	if len(sample) != 3 {
		t.Fatalf("testdata/sample holds %d files, want 3 (run go run ./captures/testdata/gen)", len(sample))
	}
	for _, f := range sample {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
	}

	inv, err := captures.Inspect([]string{dir})
	if err != nil {
		t.Fatalf("sample: %v", err)
	}
	rows := map[captures.Kind]int64{}
	for _, f := range inv.Files {
		rows[f.Kind] += f.Rows
		if f.First == nil || f.Last.Before(*f.First) {
			t.Errorf("%s: time span %v..%v", f.Path, f.First, f.Last)
		}
	}
	if rows[captures.KindExchanges] != 300 || rows[captures.KindResults] != 400 || rows[captures.KindSamples] != 80 {
		t.Errorf("rows per kind %v, want 300 exchanges, 400 results, 80 samples", rows)
	}
	var ex, res int64
	services := map[string]bool{}
	for _, o := range inv.Operations {
		ex += o.Exchanges
		res += o.Results
		services[o.Service] = true
	}
	if ex != 300 || res != 400 || len(services) != 3 {
		t.Errorf("operations count %d exchanges, %d results over %v; want 300, 400 over gateway, rag, mcp", ex, res, services)
	}
	if inv.Sessions["gateway"] == 0 || inv.Sessions["mcp"] == 0 {
		t.Errorf("sessions %v", inv.Sessions)
	}
	if inv.StatusClasses["2xx"] == 0 || inv.StatusClasses["5xx"] == 0 || inv.StatusClasses["none"] == 0 {
		t.Errorf("status classes %v, want 2xx, 5xx and none", inv.StatusClasses)
	}
	if inv.Metrics["nvml/gpu_util"] != 20 {
		t.Errorf("metrics %v, want 20 nvml/gpu_util", inv.Metrics)
	}

	// A crashed writer's leftover and a bad file: listed, not fatal to the rest.
	os.WriteFile(filepath.Join(dir, "exchanges-20261127T100000Z-000002.parquet.inprogress"), []byte("PAR1"), 0o644)
	bad := filepath.Join(dir, "zz-broken.parquet")
	os.WriteFile(bad, []byte("not parquet"), 0o644)
	inv, err = captures.Inspect([]string{dir})
	if err == nil || !strings.Contains(err.Error(), bad) || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("error %v, want one line naming %s", err, bad)
	}
	var text bytes.Buffer
	if err := inv.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"exchanges-20261127T100000Z-000001.parquet", "incomplete", "unreadable", "chat.completions", "mcp.tools.call/read_file", "1 incomplete file", "sessions:", "status classes:", "error: " + bad} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	var js bytes.Buffer
	if err := inv.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back captures.Inventory
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Files) != 5 || len(back.Errors) != 1 || back.Operations[0].Service == "" {
		t.Errorf("JSON round trip: %d files, %d errors, want 5 and 1", len(back.Files), len(back.Errors))
	}
}
