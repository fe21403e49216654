package captures_test

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// TestInspectOperations: per service and operation, the status classes,
// recorded failures, nearest-rank p50/p95 of the durations, streams, models
// and tokens of exchanges, and of results kept apart.
func TestInspectOperations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var xs []captures.Exchange
	for i := 1; i <= 20; i++ {
		x := captures.Exchange{ID: fmt.Sprint(i), StartNS: int64(i) * 1e9, Service: "gateway", Operation: "chat.completions",
			Session: fmt.Sprint("s", i%3), Status: 200, DurationNS: int64(i) * 10e6, Model: "small", PromptTokens: 3, CompletionTokens: 2}
		switch {
		case i%5 == 0:
			x.Model, x.Stream = "large", true
		case i == 7:
			x.Status = 404
		case i == 8:
			x.Status, x.Error = 0, "upstream: connection refused"
		case i == 9:
			x.ClientAborted = true
		}
		xs = append(xs, x)
	}
	xs = append(xs, captures.Exchange{ID: "h", StartNS: 1e9, Service: "gateway", Operation: "health", Session: "s0", Status: 200, DurationNS: 1e6})
	// MCP: a client's standalone GET stream it ended by going away, and
	// one a server without streams answered 405: neither failed. The same
	// GET on a path no MCP message went to, aborted, did.
	sse := []captures.Header{{Name: "Accept", Value: "text/event-stream"}}
	xs = append(xs,
		captures.Exchange{ID: "m1", StartNS: 1e9, Service: "mcp", Operation: "mcp.initialize", RPCMethod: "initialize", Method: "POST", Path: "/mcp", Status: 200},
		captures.Exchange{ID: "m2", StartNS: 2e9, Service: "mcp", Operation: "GET /mcp", Method: "GET", Path: "/mcp", Status: 200, ReqHeaders: sse, ClientAborted: true},
		captures.Exchange{ID: "m3", StartNS: 3e9, Service: "mcp", Operation: "GET /mcp", Method: "GET", Path: "/mcp", Status: 405, ReqHeaders: sse},
		captures.Exchange{ID: "m4", StartNS: 4e9, Service: "mcp", Operation: "GET /events", Method: "GET", Path: "/events", Status: 200, ReqHeaders: sse, ClientAborted: true},
		captures.Exchange{ID: "m5", StartNS: 5e9, Service: "mcp", Operation: "mcp.initialize", RPCMethod: "initialize", Method: "POST", Path: "/mcp", Status: 200, ReqTruncated: true, ReqSize: 9},
	)
	writeRows(t, dir, xs)

	inv, err := captures.Inspect([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Operations) != 5 {
		t.Fatalf("operations %+v, want chat.completions, health and three of mcp", inv.Operations)
	}
	chat := inv.Operations[0]
	s := chat.Recorded
	if chat.Operation != "chat.completions" || chat.Exchanges != 20 || chat.Results != 0 || chat.Replayed != nil || s == nil {
		t.Fatalf("chat row %+v", chat)
	}
	// Durations 10, 20, ..., 200 ms: nearest rank p50 is the 10th, p95 the 19th.
	if s.P50MS != 100 || s.P95MS != 190 {
		t.Errorf("p50 %v p95 %v, want 100 and 190", s.P50MS, s.P95MS)
	}
	if s.StatusClasses["2xx"] != 18 || s.StatusClasses["4xx"] != 1 || s.StatusClasses["none"] != 1 || s.Failed != 3 || inv.FailedWhenRecorded != 4 || inv.TruncatedRequests != 1 {
		t.Errorf("status %v failed %d (total %d), want 18 2xx, one 4xx, one none, 3 failed", s.StatusClasses, s.Failed, inv.FailedWhenRecorded)
	}
	if s.Streams != 4 || s.Models["large"] != 4 || s.Models["small"] != 16 || s.PromptTokens != 60 || s.CompletionTokens != 40 {
		t.Errorf("streams %d models %v tokens %d/%d, want 4, large 4 small 16, 60/40", s.Streams, s.Models, s.PromptTokens, s.CompletionTokens)
	}
	for _, o := range inv.Operations[2:] {
		if want := map[string]int64{"GET /events": 1}[o.Operation]; o.Recorded.Failed != want {
			t.Errorf("mcp %s: %d failed, want %d", o.Operation, o.Recorded.Failed, want)
		}
	}
	var text bytes.Buffer
	if err := inv.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"2xx 18, 4xx 1, none 1", "small 16, large 4", "60/40", "100ms", "190ms", "4 exchange(s) failed when recorded", "1 exchange(s) with a request body cut"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// A capture has no results: no results column of zeros.
	if strings.Contains(out, "RESULTS") {
		t.Errorf("a capture's inventory shows a results column:\n%s", out)
	}
}

// TestInspectNothingReadable: an empty directory, a directory named like a
// Parquet file, or only leftovers of a writer are errors, not empty tables.
func TestInspectNothingReadable(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	named := filepath.Join(t.TempDir(), "x.parquet")
	os.Mkdir(named, 0o755)
	leftovers := t.TempDir()
	os.WriteFile(filepath.Join(leftovers, "exchanges-1.parquet.inprogress"), []byte("PAR1"), 0o644)
	for _, p := range []string{empty, named, leftovers} {
		if _, err := captures.Inspect([]string{p}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("inspect %s: %v, want an error naming it", p, err)
		}
	}
	// One good path beside an empty one: still an error for the empty one.
	good := t.TempDir()
	writeRows(t, good, []captures.Exchange{{ID: "1", StartNS: 1, Service: "s", Operation: "o", Status: 200}})
	if _, err := captures.Inspect([]string{good}); err != nil {
		t.Errorf("a good capture: %v", err)
	}
	if _, err := captures.Inspect([]string{good, empty}); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("good and empty: %v, want an error naming %s", err, empty)
	}
}

func writeRows[T captures.Row](t *testing.T, dir string, rows []T) {
	t.Helper()
	w, err := captures.NewWriter[T](captures.WriterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
