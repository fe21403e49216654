package replay

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The endpoint has an index page at /, the replayer's own Go and process
// metrics beside the load's, and, after the run, its final values for
// --metrics-linger, saying the run is over.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	var logged strings.Builder
	stop, err := m.serve(context.Background(), "127.0.0.1:0", 700*time.Millisecond, func(f string, a ...any) { logged.WriteString(f) })
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.addr
	code, page := get(t, base+"/")
	if code != http.StatusOK || !strings.Contains(page, `<a href="/metrics">`) || !strings.Contains(page, "loadtape_run_ended") || !strings.Contains(page, "go_goroutines") || !strings.Contains(page, "in progress") {
		t.Errorf("GET /: %d, want an index linking /metrics and naming the metrics:\n%s", code, page)
	}
	if code, _ := get(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", code)
	}
	_, scrape := get(t, base+"/metrics")
	for _, want := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "loadtape_run_ended 0"} {
		if !strings.Contains(scrape, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	done := make(chan struct{})
	go func() { // ends when stop has lingered and shut the server down
		defer close(done)
		stop()
	}()
	time.Sleep(100 * time.Millisecond)
	if _, scrape := get(t, base+"/metrics"); !strings.Contains(scrape, "loadtape_run_ended 1") {
		t.Error("while lingering: loadtape_run_ended is not 1")
	}
	if _, page := get(t, base+"/"); !strings.Contains(page, "final values") {
		t.Error("while lingering: the index does not say the run is over")
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("stop did not return after its linger")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("the endpoint still answers after stop returned")
	}
	if !strings.Contains(logged.String(), "final values") {
		t.Errorf("no line says how long the final values stay: %q", logged.String())
	}
}

// A signal (the run's context done) cuts the linger short.
func TestMetricsLingerEndsOnSignal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	m := newMetrics()
	stop, err := m.serve(ctx, "127.0.0.1:0", time.Hour, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // ends when stop returns
		defer close(done)
		stop()
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled run still lingers")
	}
}
