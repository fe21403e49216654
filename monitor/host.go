package monitor

import (
	"context"
	"runtime"
	"strings"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
)

// hostSource samples the machine replay runs on. Disk and network figures
// are rates over the last interval (IOPS, bytes per second), so the first
// sample has none of them.
type hostSource struct {
	last              time.Time
	reads, writes     uint64
	rx, tx            uint64
	haveDisk, haveNet bool
	cpuTimes          *cpu.TimesStat // the last sample's, for cpu_util and cpu_steal
}

func newHost() *hostSource {
	// CPU shares are over the interval since the last sample: prime it.
	h := &hostSource{}
	if ts, err := cpu.Times(false); err == nil && len(ts) == 1 {
		h.cpuTimes = &ts[0]
	}
	return h
}

func (h *hostSource) Info() SourceInfo { return SourceInfo{Source: "host"} }

func (h *hostSource) Sample(ctx context.Context, t time.Time, out []captures.Sample) []captures.Sample {
	ts := t.UnixNano()
	add := func(metric string, v float64) {
		out = append(out, captures.Sample{TNS: ts, Source: "host", Metric: metric, Value: v})
	}
	// One read of the cores' times gives both shares, over the interval
	// since the last sample and this source's own (cpu.Percent keeps the
	// last reading in one variable for the whole process).
	if ts, err := cpu.TimesWithContext(ctx, false); err == nil && len(ts) == 1 {
		if prev := h.cpuTimes; prev != nil {
			if total := cpuTotal(ts[0]) - cpuTotal(*prev); total > 0 {
				// Busy as gopsutil's cpu.Percent counts it: all but idle and I/O wait.
				busy := total - (ts[0].Idle - prev.Idle) - (ts[0].Iowait - prev.Iowait)
				add("cpu_util", min(100, max(0, 100*busy/total)))
				// cpu_steal: the share of the cores' time the hypervisor
				// gave to other virtual machines while this one had work
				// to run. cpu_util counts it as busy and no process's CPU
				// time holds it, yet it delays the replayer's sends as much
				// as its own load would; on a shared 2-vCPU host it took up
				// to 2.5 s of a 3 s benchmark run and 5–25 s of an 80 s demo.
				if runtime.GOOS == "linux" {
					add("cpu_steal", 100*max(ts[0].Steal-prev.Steal, 0)/total)
				}
			}
		}
		h.cpuTimes = &ts[0]
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		add("mem_used_bytes", float64(vm.Used))
		add("mem_total_bytes", float64(vm.Total))
	}
	dt := t.Sub(h.last).Seconds()
	if ios, err := disk.IOCountersWithContext(ctx); err == nil {
		var r, w uint64
		for name, c := range ios {
			if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") {
				continue
			}
			r += c.ReadCount
			w += c.WriteCount
		}
		if h.haveDisk && dt > 0 {
			add("disk_read_iops", float64(r-h.reads)/dt)
			add("disk_write_iops", float64(w-h.writes)/dt)
		}
		h.reads, h.writes, h.haveDisk = r, w, true
	}
	if ns, err := net.IOCountersWithContext(ctx, false); err == nil && len(ns) == 1 {
		if h.haveNet && dt > 0 {
			add("net_rx_bytes", float64(ns[0].BytesRecv-h.rx)/dt)
			add("net_tx_bytes", float64(ns[0].BytesSent-h.tx)/dt)
		}
		h.rx, h.tx, h.haveNet = ns[0].BytesRecv, ns[0].BytesSent, true
	}
	h.last = t
	return out
}

func (h *hostSource) Close() {}

// cpuTotal is the cores' time in all states. Linux counts a guest's time
// in user and nice too, so it is left out here rather than counted twice
// (as cpu.Percent does).
func cpuTotal(t cpu.TimesStat) float64 {
	return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
}
