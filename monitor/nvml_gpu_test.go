package monitor

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// TestNVMLOnGPU runs where LOADTAPE_GPU=1 says an NVIDIA driver and GPU are
// present (testdata/gpu/check.sh sets it on a GPU machine). There NVML must
// start, find every device, and report values a GPU can have; elsewhere the
// no-driver path is covered by TestSamplerSources.
func TestNVMLOnGPU(t *testing.T) {
	if os.Getenv("LOADTAPE_GPU") != "1" {
		t.Skip("LOADTAPE_GPU=1 not set: no GPU expected on this machine")
	}
	var logs []string
	start := time.Now()
	s := newNVML(func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) })
	defer s.Close()
	t.Logf("nvml init and device scan: %v", time.Since(start))
	if !s.ok || len(s.devices) == 0 {
		t.Fatalf("NVML found no GPU: %v", logs)
	}
	var rows []captures.Sample
	for i := range 5 {
		t0 := time.Now()
		rows = s.Sample(context.Background(), t0, rows[:0])
		t.Logf("sample %d of %d device(s): %v, %d rows", i, len(s.devices), time.Since(t0), len(rows))
		time.Sleep(100 * time.Millisecond)
	}
	for _, dev := range s.names {
		got := map[string]float64{}
		for _, r := range rows {
			if r.Device == dev {
				got[r.Metric] = r.Value
			}
		}
		t.Logf("%s: %v", dev, got)
		for metric, ok := range map[string]bool{
			"gpu_util":            got["gpu_util"] >= 0 && got["gpu_util"] <= 100,
			"gpu_mem_total_bytes": got["gpu_mem_total_bytes"] >= 1<<30,
			"gpu_mem_used_bytes":  got["gpu_mem_used_bytes"] > 0 && got["gpu_mem_used_bytes"] <= got["gpu_mem_total_bytes"],
			"gpu_power_w":         got["gpu_power_w"] > 0 && got["gpu_power_w"] < 2000,
			"gpu_sm_clock_mhz":    got["gpu_sm_clock_mhz"] > 0 && got["gpu_sm_clock_mhz"] < 5000,
		} {
			if _, present := got[metric]; !present || !ok {
				t.Errorf("%s: %s = %v (present %v), outside what a GPU reports", dev, metric, got[metric], present)
			}
		}
	}
}
