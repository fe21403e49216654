package monitor

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
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
	want := []string{"host cpu_util", "host mem_used_bytes", "host mem_total_bytes", "host net_rx_bytes"}
	if runtime.GOOS == "linux" {
		want = append(want, "host cpu_steal")
	}
	for _, k := range want {
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

// TestHostStealShare: cpu_steal is the hypervisor's share of the cores'
// time between two samples (and cpu_util the busy share, from the same
// reading), from /proc/stat (here a file under HOST_PROC,
// which gopsutil reads instead of /proc), with guest time not counted
// twice: between the two files below 400 ticks passed in all (user 100, of
// which 50 guest, system 50, idle 150, steal 100), so steal is 25 % (22 % if
// guest time were counted twice).
func TestHostStealShare(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("steal is read from Linux's /proc/stat")
	}
	dir := t.TempDir()
	stat := func(user, system, idle, steal, guest int) {
		t.Helper()
		body := fmt.Sprintf("cpu  %d 0 %d %d 0 0 0 %d %d 0\ncpu0 %d 0 %d %d 0 0 0 %d %d 0\n",
			user, system, idle, steal, guest, user, system, idle, steal, guest)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOST_PROC", dir)
	stat(1000, 500, 8000, 300, 200)
	h := newHost()
	now := time.Now()
	if got := steal(h.Sample(context.Background(), now, nil)); got != nil {
		t.Errorf("first sample: cpu_steal %v, want none (no interval yet)", *got)
	}
	stat(1100, 550, 8150, 400, 250)
	second := h.Sample(context.Background(), now.Add(time.Second), nil)
	if got := steal(second); got == nil || math.Abs(*got-25) > 1e-9 {
		t.Errorf("cpu_steal %v, want 25 %%", got)
	}
	// cpu_util from the same reading: all but the 150 idle ticks of 400.
	if got := hostMetric(second, "cpu_util"); got == nil || math.Abs(*got-62.5) > 1e-9 {
		t.Errorf("cpu_util %v, want 62.5 %%", got)
	}
	stat(1100, 550, 8150, 400, 250) // no time passed: no share to give
	if got := steal(h.Sample(context.Background(), now.Add(2*time.Second), nil)); got != nil {
		t.Errorf("no ticks between samples: cpu_steal %v, want none", *got)
	}
}

func steal(samples []captures.Sample) *float64 { return hostMetric(samples, "cpu_steal") }

func hostMetric(samples []captures.Sample, metric string) *float64 {
	for _, s := range samples {
		if s.Source == "host" && s.Metric == metric {
			return &s.Value
		}
	}
	return nil
}
