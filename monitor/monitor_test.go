package monitor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

type memWriter struct {
	mu   sync.Mutex
	rows []captures.Sample
}

func (m *memWriter) Write(rows ...captures.Sample) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, rows...)
	return nil
}
func (m *memWriter) Close() error { return nil }

func TestSamplerSources(t *testing.T) {
	t.Parallel()
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, `# HELP vllm:num_requests_running Requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 7
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0"} 93
# TYPE sim_requests_total counter
sim_requests_total 42
# TYPE lat histogram
lat_bucket{le="1"} 3
lat_bucket{le="+Inf"} 4
lat_sum 2.5
lat_count 4
`)
	}))
	defer prom.Close()
	var logs []string
	var logMu sync.Mutex
	w := &memWriter{}
	s, err := Start(context.Background(), Options{Sources: []string{"host,nvml", "prom=" + prom.URL + "/metrics"}, Every: 50 * time.Millisecond, Writer: w,
		Log: func(f string, a ...any) { logMu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); logMu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	got := map[string]float64{}
	for _, r := range w.rows {
		got[r.Source+" "+r.Metric] = r.Value
		if r.Source == "prom" && r.Device != prom.URL+"/metrics" {
			t.Errorf("prom device %q, want the URL", r.Device)
		}
	}
	for k, v := range map[string]float64{
		`prom vllm:num_requests_running{model_name="m"}`: 7, `prom DCGM_FI_DEV_GPU_UTIL{gpu="0"}`: 93,
		"prom sim_requests_total": 42, "prom lat_sum": 2.5, "prom lat_count": 4,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for _, k := range []string{"host cpu_util", "host mem_used_bytes", "host mem_total_bytes", "host net_rx_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %s sample (have %v)", k, got)
		}
	}
	// Without a GPU driver NVML says so once and the others go on; with one
	// it samples every GPU.
	if _, gpu := got["nvml gpu_util"]; !gpu {
		n := 0
		for _, l := range logs {
			if strings.Contains(l, "nvml") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("nvml without a driver logged %d times, want once: %v", n, logs)
		}
	}
	srcs := s.Sources()
	if len(srcs) != 3 || srcs[2].Source != "prom" || srcs[2].HostPort != strings.TrimPrefix(prom.URL, "http://") {
		t.Errorf("sources %+v", srcs)
	}
}

func TestParseSourcesErrors(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"gpu", "prom=localhost:9400", "prom="} {
		if _, err := ParseSources([]string{spec}, func(string, ...any) {}); err == nil || !strings.Contains(err.Error(), "--monitor") {
			t.Errorf("%q: err %v, want one naming --monitor", spec, err)
		}
	}
}
