package replay

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/syncbuf"
)

// TestLiveLogAndMetrics: off a terminal the live view writes plain lines
// per stage, and --metrics-addr serves the run's counters while it runs.
func TestLiveLogAndMetrics(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var scraped string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(900 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		scraped = string(b)
	}()
	var log syncbuf.Buffer
	_, err = Run(context.Background(), Options{Exchanges: gatewayCapture(2, 6), Profile: mustProfile(t, `
scenarios:
  g:
    service: gateway
    stages: [{users: 2, duration: 700ms, name: warm}, {users: 3, duration: 700ms}]
    think: {constant: 10ms}
    mix: {models.list: 1}
`), Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), MetricsAddr: addr, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	out := log.String()
	for _, want := range []string{"g stage 1/2 (warm): users 2", "g stage 2/2: users 3", "p95", "errors 0/"} {
		if !strings.Contains(out, want) {
			t.Errorf("live log lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`loadtape_requests_total{error_kind="",operation="models.list",scenario="g"}`, "loadtape_request_duration_seconds_bucket", "loadtape_active_users"} {
		if !strings.Contains(scraped, want) {
			t.Errorf("metrics lack %q:\n%s", want, scraped)
		}
	}
}
