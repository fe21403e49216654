package monitor

import (
	"context"
	"strconv"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/loadtape/loadtape/captures"
)

// nvmlSource samples every GPU. Calling any NVML function after a failed
// Init kills the process (NOTES.md), so every call is gated on ok.
type nvmlSource struct {
	ok      bool
	devices []nvml.Device
	names   []string
}

func newNVML(log func(string, ...any)) *nvmlSource {
	s := &nvmlSource{}
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		log("monitor: nvml: no GPU driver (%s); GPU metrics are not sampled", nvml.ErrorString(ret))
		return s
	}
	s.ok = true
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		log("monitor: nvml: cannot count devices: %s", nvml.ErrorString(ret))
		return s
	}
	for i := 0; i < n; i++ {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		name := strconv.Itoa(i)
		if uuid, ret := d.GetUUID(); ret == nvml.SUCCESS {
			name += ":" + uuid
		}
		s.devices = append(s.devices, d)
		s.names = append(s.names, name)
	}
	return s
}

func (s *nvmlSource) Info() SourceInfo { return SourceInfo{Source: "nvml"} }

func (s *nvmlSource) Sample(_ context.Context, t time.Time, out []captures.Sample) []captures.Sample {
	if !s.ok {
		return out
	}
	ts := t.UnixNano()
	add := func(dev, metric string, v float64) {
		out = append(out, captures.Sample{TNS: ts, Source: "nvml", Device: dev, Metric: metric, Value: v})
	}
	for i, d := range s.devices {
		dev := s.names[i]
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			add(dev, "gpu_util", float64(u.Gpu))
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			add(dev, "gpu_mem_used_bytes", float64(m.Used))
			add(dev, "gpu_mem_total_bytes", float64(m.Total))
		}
		if p, ret := d.GetPowerUsage(); ret == nvml.SUCCESS {
			add(dev, "gpu_power_w", float64(p)/1000)
		}
		if c, ret := d.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
			add(dev, "gpu_sm_clock_mhz", float64(c))
		}
	}
	return out
}

func (s *nvmlSource) Close() {
	if s.ok {
		nvml.Shutdown()
		s.ok = false
	}
}
