package analyze

import (
	"fmt"
	"math"
	"strings"
)

// Thresholds of the GPU detectors; docs/analyze.md explains each.
const (
	gpuBusyPct  = 95.0 // GPU utilisation of a saturated GPU
	hostBusyPct = 90.0 // host CPU share worth naming beside a busy GPU
	gpuMemPct   = 95.0 // GPU memory or KV-cache share under pressure
	memRise     = 5.0  // and, for device memory, points it rose over the stages: else it is a reservation
)

// The GPU family: a GPU busy all the time while throughput stops growing,
// and GPU memory that runs out or fills.
func init() {
	register(detector{name: "gpu", detect: func(sc *scenarioCtx) detected {
		var d detected
		for _, f := range []*Finding{detectGPUSaturation(sc), detectGPUMemoryPressure(sc)} {
			if f != nil {
				d.findings = append(d.findings, *f)
			}
		}
		return d
	}, kinds: []kindSpec{
		{kind: KindGPUMemoryPressure, rank: 10},
		{kind: KindGPUSaturation, rank: 30, explains: 1, namesCause: true},
	}})
}

// detectGPUSaturation: throughput flat (or falling) and latency growing
// while the GPU this scenario's service runs on is busy ≥ 95 % of the time.
// Never claimed on low utilisation: NVML utilisation is only the share of
// time a kernel ran.
func detectGPUSaturation(sc *scenarioCtx) *Finding {
	cv := sc.curve
	if !(cv.cap.plateau || cv.cap.retro) {
		return nil
	}
	top := sc.stageOf(cv.clean[len(cv.clean)-1].Stage)
	util, ok := top.Resources[ResGPUUtil]
	if !ok || util.Mean < gpuBusyPct {
		return nil
	}
	ev := sc.capEvidence()
	ev.GPUUtilMeanPct = ptr(util.Mean)
	ev.GPUUtilByUsers = sc.resourceByStage(ResGPUUtil)
	// Seen on an H200 (testdata/gpu): a server whose waiting threads spin
	// in the CUDA runtime took the host's CPU to 96 % along with the GPU.
	// A busy GPU is then not the whole story, and the reader should know.
	cpuNote := ""
	if cpu, ok := top.Resources["cpu_util"]; ok && cpu.Mean >= hostBusyPct {
		ev.CPUUtilMeanPct = ptr(cpu.Mean)
		cpuNote = fmt.Sprintf(" The host CPU is at %.0f %% too: if the service runs on this host, its CPU-side work (tokenising, scheduling, threads busy-waiting on the GPU) is near its limit as well.", cpu.Mean)
	}
	return &Finding{Kind: KindGPUSaturation, Scenario: sc.name, Operation: AllOps, Severity: sc.severity(),
		Summary: fmt.Sprintf("The GPU behind %s is saturated: utilisation %.0f %% at %d users while throughput stays at %.1f req/s from %g users on and mean latency grew %.1f× over that range.%s",
			sc.name, util.Mean, top.Users, cv.clean[len(cv.clean)-1].X, sc.kneeUsers(), cv.cap.rGrowth, cpuNote) + sc.caveat(),
		Action:   "Add GPU capacity or make each request cheaper: larger batches, a smaller or quantised model, shorter max_tokens, or more replicas behind the gateway.",
		Evidence: ev}
}

// detectGPUMemoryPressure: out-of-memory errors, the inference server's KV
// cache ≥ 95 % full (vLLM's gpu_cache_usage_perc), or device memory ≥ 95 %
// that rose with load. Memory that is that full from the fewest users on is
// an allocator's reservation, not pressure: vLLM takes
// gpu_memory_utilization (0.9 by default, often set to 0.95) of the device
// at start, and PyTorch's caching allocator keeps what it once took.
func detectGPUMemoryPressure(sc *scenarioCtx) *Finding {
	var oom int64
	oomBy := map[string]int64{}
	firstUsers, sample := -1, ""
	maxMem, memUsers := 0.0, -1
	minMem := memBaseline(sc.stages)
	maxKV, kvUsers := 0.0, -1
	for _, st := range sc.stages {
		if st.oomErrors > 0 {
			oom += st.oomErrors
			oomBy[fmt.Sprint(st.Users)] += st.oomErrors
			if firstUsers < 0 {
				firstUsers, sample = st.Users, st.oomSample
			}
		}
		if m, ok := st.Resources[ResGPUMemPct]; ok && m.Max > maxMem {
			maxMem, memUsers = m.Max, st.Users
		}
		if k, ok := st.Resources[ResKVCachePct]; ok && k.Max > maxKV {
			maxKV, kvUsers = k.Max, st.Users
		}
	}
	memRose := maxMem >= gpuMemPct && maxMem-minMem >= memRise
	kvFull := maxKV >= gpuMemPct
	if oom == 0 && !memRose && !kvFull {
		return nil
	}
	ev := &GPUMemoryEvidence{OOMErrors: oom}
	if memUsers >= 0 {
		ev.GPUMemMaxPct, ev.GPUMemPctByUsers = ptr(maxMem), sc.resourceByStage(ResGPUMemPct)
	}
	if kvUsers >= 0 {
		ev.KVCacheMaxPct, ev.KVCachePctByUsers = ptr(maxKV), sc.resourceByStage(ResKVCachePct)
	}
	sev := SeverityMedium
	var summary string
	switch {
	case oom > 0:
		sev = SeverityHigh
		ev.OOMErrorsByUsers, ev.FirstOOMUsers, ev.ExampleError = oomBy, ptr(firstUsers), sample
		summary = fmt.Sprintf("%s ran out of GPU memory: %d out-of-memory errors, from %d users on.", sc.name, oom, firstUsers)
		if memUsers >= 0 {
			summary = strings.TrimSuffix(summary, ".") + fmt.Sprintf(" (GPU memory peaked at %.1f %%).", maxMem)
		}
	case kvFull:
		summary = fmt.Sprintf("The KV cache of %s was %.0f %% full at %d users: new requests wait for cache blocks or preempt running ones.", sc.name, maxKV, kvUsers)
	default:
		summary = fmt.Sprintf("GPU memory of %s rose from %.1f %% at the fewest users to %.1f %% at %d users.", sc.name, minMem, maxMem, memUsers)
	}
	return &Finding{Kind: KindGPUMemoryPressure, Scenario: sc.name, Operation: AllOps, Severity: sev, Summary: summary,
		Action:   "Free GPU memory: load only the models in use, lower the KV-cache share or max sequence length, quantise, or cap concurrent requests below the first failing user count.",
		Evidence: ev}
}

// gpuPressed tells whether a stage shows the GPU condition of kind, by the
// rules of the detector that found it: memory counts when it rose memRise
// above its baseline (memBaseline), not when it was reserved that full.
func gpuPressed(st stageData, kind Kind, memBase float64) bool {
	if kind == KindGPUSaturation {
		return st.Resources[ResGPUUtil].Mean >= gpuBusyPct
	}
	mem := st.Resources[ResGPUMemPct].Max
	return st.oomErrors > 0 || st.Resources[ResKVCachePct].Max >= gpuMemPct || (mem >= gpuMemPct && mem-memBase >= memRise)
}

// memBaseline is the GPU memory share at the fewest users that have a
// reading (stages are in order of users); +Inf when none has one.
func memBaseline(stages []stageData) float64 {
	for _, st := range stages {
		if m, ok := st.Resources[ResGPUMemPct]; ok {
			return m.Mean
		}
	}
	return math.Inf(1)
}
