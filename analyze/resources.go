package analyze

import (
	"math"
	"slices"
	"strings"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Resource names in Stage.Resources. Monitor metrics keep their names;
// derived ones are below; Prometheus names map onto them (promMap).
const (
	ResGPUUtil      = "gpu_util"        // %
	ResGPUMemPct    = "gpu_mem_pct"     // % of the GPU's memory in use
	ResGPUMemUsedMB = "gpu_mem_used_mb" // MiB
	ResMemPct       = "mem_pct"         // % of host memory in use
	ResCPUSteal     = "cpu_steal"       // % of the host's CPU time the hypervisor gave to other machines
	ResQueueRunning = "queue_running"   // requests the inference server is running
	ResQueueWaiting = "queue_waiting"   // requests waiting in its queue
	ResKVCachePct   = "kv_cache_pct"    // % of the inference server's KV cache in use
)

// resourceUnits names the unit of each resource the report shows.
var resourceUnits = map[string]string{
	ResGPUUtil: "%", ResGPUMemPct: "%", ResGPUMemUsedMB: "MiB", "gpu_power_w": "W",
	"cpu_util": "%", ResCPUSteal: "%", ResMemPct: "%", "disk_read_iops": "IOPS", "disk_write_iops": "IOPS",
	"gpu_sm_clock_mhz": "MHz", ResQueueRunning: "requests", ResQueueWaiting: "requests",
	ResKVCachePct: "%",
}

// promMap maps scraped Prometheus names (labels stripped) onto resources.
var promMap = map[string]string{
	"DCGM_FI_DEV_GPU_UTIL":      ResGPUUtil,
	"DCGM_FI_DEV_POWER_USAGE":   "gpu_power_w",
	"vllm:num_requests_running": ResQueueRunning,
	"vllm:num_requests_waiting": ResQueueWaiting,
	"vllm_num_requests_running": ResQueueRunning,
	"vllm_num_requests_waiting": ResQueueWaiting,
	"vllm:gpu_cache_usage_perc": ResKVCachePct, // a 0–1 share; vLLM V1 renamed it kv_cache_usage_perc
	"vllm:kv_cache_usage_perc":  ResKVCachePct,
	"vllm_gpu_cache_usage_perc": ResKVCachePct,
	"vllm_kv_cache_usage_perc":  ResKVCachePct,
	"DCGM_FI_DEV_SM_CLOCK":      "gpu_sm_clock_mhz",
	"nv_gpu_utilization":        ResGPUUtil, // Triton reports a 0–1 share
	"nv_gpu_memory_used_bytes":  "gpu_mem_used_bytes",
	"nv_gpu_memory_total_bytes": "gpu_mem_total_bytes",
	"DCGM_FI_DEV_FB_USED":       "fb_used",
	"DCGM_FI_DEV_FB_FREE":       "fb_free",
}

// point is one normalised resource sample.
type point struct {
	t      int64
	device string
	name   string
	value  float64
	prom   string // scrape URL for prom samples, "" for nvml/host
}

// normalise turns raw samples into resource points: names mapped, memory
// turned into shares, and GPU utilisation kept in percent.
func normalise(samples []captures.Sample) []point {
	type devT struct {
		dev string
		t   int64
	}
	totals := map[string]float64{} // nvml device → memory total
	hostTotal := 0.0               // host memory total
	fbUsed := map[devT]float64{}   // DCGM framebuffer, paired per scrape
	fbFree := map[devT]float64{}
	var out []point
	for _, s := range samples {
		switch s.Metric {
		case "gpu_mem_total_bytes":
			totals[s.Device] = math.Max(totals[s.Device], s.Value)
		case "mem_total_bytes":
			hostTotal = math.Max(hostTotal, s.Value)
		}
	}
	for _, s := range samples {
		name := s.Metric
		dev := s.Device
		prom := ""
		if s.Source == "prom" {
			prom = s.Device
			base, labels, _ := strings.Cut(name, "{")
			dev = s.Device + "{" + labels
			mapped, ok := promMap[base]
			if !ok {
				continue
			}
			name = mapped
			switch name {
			case "fb_used":
				fbUsed[devT{dev, s.TNS}] = s.Value
				continue
			case "fb_free":
				fbFree[devT{dev, s.TNS}] = s.Value
				continue
			}
			if (base == "nv_gpu_utilization" || name == ResKVCachePct) && s.Value <= 1 {
				s.Value *= 100
			}
		}
		out = append(out, point{t: s.TNS, device: dev, name: name, value: s.Value, prom: prom})
		switch name {
		case "gpu_mem_used_bytes":
			if tot := totals[s.Device]; tot > 0 {
				out = append(out, point{t: s.TNS, device: dev, name: ResGPUMemPct, value: 100 * s.Value / tot, prom: prom})
			}
			out = append(out, point{t: s.TNS, device: dev, name: ResGPUMemUsedMB, value: s.Value / (1 << 20), prom: prom})
		case "mem_used_bytes":
			if hostTotal > 0 {
				out = append(out, point{t: s.TNS, device: dev, name: ResMemPct, value: 100 * s.Value / hostTotal, prom: prom})
			}
		}
	}
	for k, used := range fbUsed {
		free, ok := fbFree[k]
		if !ok || used+free <= 0 {
			continue
		}
		url, _, _ := strings.Cut(k.dev, "{")
		out = append(out,
			point{t: k.t, device: k.dev, name: ResGPUMemPct, value: 100 * used / (used + free), prom: url},
			point{t: k.t, device: k.dev, name: ResGPUMemUsedMB, value: used, prom: url})
	}
	slices.SortFunc(out, func(a, b point) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// attribution decides which scenarios a scraped URL belongs to: those whose
// service's base URL shares its host:port, or those run.json names for it.
// The demo runs the gateway, RAG and MCP at once; without this the RAG
// scenario would be charged with the gateway's GPU.
type attribution struct {
	byScrape map[string]map[string]bool // scrape host:port → scenarios
}

func newAttribution(info *RunInfo) *attribution {
	a := &attribution{byScrape: map[string]map[string]bool{}}
	add := func(hp, scenario string) {
		if a.byScrape[hp] == nil {
			a.byScrape[hp] = map[string]bool{}
		}
		a.byScrape[hp][scenario] = true
	}
	for name, sc := range info.Profile.Scenarios {
		service := sc.Service
		if service == "" {
			service = name
		}
		if base, ok := info.Targets[service]; ok {
			if hp := runspec.HostPort(base); hp != "" {
				add(hp, name)
			}
		}
		for _, m := range info.Monitor {
			if m.Source == "prom" && m.Service != "" && m.Service == service {
				add(runspec.HostPort(m.URL), name)
			}
		}
	}
	return a
}

func (a *attribution) belongs(p point, scenario string) bool {
	if p.prom == "" {
		return true
	}
	return a.byScrape[runspec.HostPort(p.prom)][scenario]
}

// addResources fills each stage's Resources from the points inside its
// measured window. Per device the mean is taken; the busiest device's
// mean is the stage's mean (a mean across GPUs would hide one saturated).
func addResources(stages []*Stage, pts []point, attr *attribution) {
	type acc struct {
		sum, max float64
		n        int
	}
	for _, st := range stages {
		ws := st.startNS + int64(st.WarmUpS*1e9)
		lo, _ := slices.BinarySearchFunc(pts, ws, func(p point, t int64) int {
			switch {
			case p.t < t:
				return -1
			case p.t > t:
				return 1
			}
			return 0
		})
		per := map[[2]string]*acc{}
		for i := lo; i < len(pts) && pts[i].t < st.endNS; i++ {
			p := pts[i]
			if !attr.belongs(p, st.Scenario) || math.IsNaN(p.value) {
				continue
			}
			k := [2]string{p.name, p.device}
			a := per[k]
			if a == nil {
				a = &acc{max: math.Inf(-1)}
				per[k] = a
			}
			a.sum += p.value
			a.n++
			a.max = math.Max(a.max, p.value)
		}
		for k, a := range per {
			name := k[0]
			if name == "gpu_mem_total_bytes" || name == "mem_total_bytes" {
				continue
			}
			cur, ok := st.Resources[name]
			mean := a.sum / float64(a.n)
			if !ok {
				cur = ResourceAgg{Mean: mean, Max: a.max, Unit: resourceUnits[name]}
			} else {
				cur.Mean = math.Max(cur.Mean, mean)
				cur.Max = math.Max(cur.Max, a.max)
			}
			cur.Mean, cur.Max = round(cur.Mean, 3), round(cur.Max, 3)
			st.Resources[name] = cur
		}
	}
}
