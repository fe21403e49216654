package sim

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// gpu is the simulated device behind the gateway: batch slots, memory
// (reserved + model weights + KV cache of requests in flight) and a
// utilisation meter. One gpu is shared by every served model, as on a small stack's single card
// where chat-7b and code-7b share one 6 GB card.
type gpu struct {
	cfg   GatewayConfig
	scale float64
	slots chan struct{}

	mu       sync.Mutex
	running  map[string]int // by model
	waiting  map[string]int
	kvMiB    float64
	models   map[string]*modelState
	util     busyMeter
	ooms     int64
	requests int64
}

type modelState struct {
	cfg      ModelConfig
	loaded   bool
	loading  chan struct{} // closed when a load in progress ends
	lastUsed time.Time
	active   int
}

// errOOM is a CUDA out-of-memory failure, worded as PyTorch words it.
type errOOM struct {
	want, total, free float64
}

func (e *errOOM) Error() string {
	return fmt.Sprintf("CUDA out of memory. Tried to allocate %.2f MiB. GPU 0 has a total capacity of %.2f GiB of which %.2f MiB is free. "+
		"Of the allocated memory %.2f GiB is allocated by PyTorch. If reserved but unallocated memory is large try setting "+
		"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.",
		e.want, e.total/1024, e.free, (e.total-e.free)/1024)
}

func newGPU(cfg GatewayConfig, scale float64) *gpu {
	g := &gpu{
		cfg:     cfg,
		scale:   scale,
		slots:   make(chan struct{}, cfg.BatchSlots),
		running: map[string]int{},
		waiting: map[string]int{},
		models:  map[string]*modelState{},
	}
	g.util.window = time.Second
	for _, m := range cfg.Models {
		st := &modelState{cfg: m}
		if m.Load == "startup" {
			st.loaded = true
		}
		g.models[m.Name] = st
	}
	return g
}

// usedLocked is the memory in use in MiB.
func (g *gpu) usedLocked() float64 {
	used := g.cfg.ReservedMiB + g.kvMiB
	for _, m := range g.models {
		if m.loaded || m.loading != nil {
			used += m.cfg.WeightsMiB
		}
	}
	return used
}

// memory returns used and free MiB.
func (g *gpu) memory() (used, free float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	used = g.usedLocked()
	return used, max(0, g.cfg.GPUMemoryMiB-used)
}

// memoryShare is the share of GPU memory in use, 0–1.
func (g *gpu) memoryShare() float64 {
	used, free := g.memory()
	return used / max(used+free, 1e-9)
}

// alloc takes KV-cache memory or fails with a CUDA OOM error.
func (g *gpu) alloc(mib float64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	used := g.usedLocked()
	if used+mib > g.cfg.GPUMemoryMiB {
		g.ooms++
		return &errOOM{want: mib, total: g.cfg.GPUMemoryMiB, free: max(0, g.cfg.GPUMemoryMiB-used)}
	}
	g.kvMiB += mib
	return nil
}

func (g *gpu) free(mib float64) {
	g.mu.Lock()
	g.kvMiB -= mib
	if g.kvMiB < 1e-9 {
		g.kvMiB = 0
	}
	g.mu.Unlock()
}

// ensureLoaded makes sure the model's weights are in memory, loading an
// on-demand model (taking its memory first, then waiting LoadTime). It marks
// the model active until release is called.
func (g *gpu) ensureLoaded(ctx context.Context, name string) (release func(), err error) {
	for {
		g.mu.Lock()
		st := g.models[name]
		if st.loaded {
			st.active++
			st.lastUsed = time.Now()
			g.mu.Unlock()
			return func() {
				g.mu.Lock()
				st.active--
				st.lastUsed = time.Now()
				g.mu.Unlock()
			}, nil
		}
		if st.loading != nil {
			ch := st.loading
			g.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		used := g.usedLocked()
		if used+st.cfg.WeightsMiB > g.cfg.GPUMemoryMiB {
			g.ooms++
			g.mu.Unlock()
			return nil, &errOOM{want: st.cfg.WeightsMiB, total: g.cfg.GPUMemoryMiB, free: max(0, g.cfg.GPUMemoryMiB-used)}
		}
		ch := make(chan struct{})
		st.loading = ch
		g.mu.Unlock()
		// The load runs to its end even if this caller leaves: others may wait on it.
		time.Sleep(time.Duration(float64(st.cfg.LoadTime) * g.scale))
		g.mu.Lock()
		st.loaded = true
		st.loading = nil
		st.lastUsed = time.Now()
		g.mu.Unlock()
		close(ch)
	}
}

// unloadIdle unloads on-demand models idle for longer than their UnloadIdle.
func (g *gpu) unloadIdle(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, st := range g.models {
		idle := time.Duration(float64(st.cfg.UnloadIdle) * g.scale)
		if st.cfg.Load == "on_demand" && st.loaded && st.active == 0 && idle > 0 && now.Sub(st.lastUsed) > idle {
			st.loaded = false
		}
	}
}

// acquire waits for a batch slot; the request counts as waiting meanwhile.
func (g *gpu) acquire(ctx context.Context, model string) error {
	g.mu.Lock()
	g.waiting[model]++
	g.requests++
	g.mu.Unlock()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		g.mu.Lock()
		g.waiting[model]--
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Lock()
	g.waiting[model]--
	g.running[model]++
	g.util.set(time.Now(), g.levelLocked())
	g.mu.Unlock()
	return nil
}

func (g *gpu) release(model string) {
	g.mu.Lock()
	g.running[model]--
	g.util.set(time.Now(), g.levelLocked())
	g.mu.Unlock()
	<-g.slots
}

func (g *gpu) totalRunningLocked() int {
	n := 0
	for _, r := range g.running {
		n += r
	}
	return n
}

func (g *gpu) levelLocked() float64 {
	return min(1, float64(g.totalRunningLocked())/float64(g.cfg.UtilFullBatch))
}

// tokenTime is the current duration of one decode step.
func (g *gpu) tokenTime() time.Duration {
	g.mu.Lock()
	n := g.totalRunningLocked()
	g.mu.Unlock()
	f := 1 + g.cfg.BatchSlowdown*float64(max(0, n-1))
	return time.Duration(float64(g.cfg.DecodePerToken) * f * g.scale)
}

// gpuSnapshot is what /metrics reports.
type gpuSnapshot struct {
	util               float64
	usedMiB, freeMiB   float64
	kvMiB              float64
	running, waiting   map[string]int
	loaded             map[string]bool
	ooms, requestsSeen int64
}

func (g *gpu) snapshot() gpuSnapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	used := g.usedLocked()
	s := gpuSnapshot{
		util:    100 * g.util.fraction(time.Now()),
		usedMiB: used, freeMiB: max(0, g.cfg.GPUMemoryMiB-used), kvMiB: g.kvMiB,
		running: map[string]int{}, waiting: map[string]int{}, loaded: map[string]bool{},
		ooms: g.ooms, requestsSeen: g.requests,
	}
	for name, st := range g.models {
		s.running[name] = g.running[name]
		s.waiting[name] = g.waiting[name]
		s.loaded[name] = st.loaded
	}
	return s
}

// busyMeter integrates a level in [0,1] over a sliding window, the way NVML
// reports utilisation as the share of the last sample period the GPU was busy.
type busyMeter struct {
	window time.Duration
	steps  []levelStep // ascending; the first may start before the window
	level  float64
}

type levelStep struct {
	at    time.Time
	level float64
}

func (b *busyMeter) set(now time.Time, level float64) {
	b.steps = append(b.steps, levelStep{now, level})
	b.level = level
	// Keep one step older than the window: it gives the level at the window's start.
	cut := now.Add(-b.window)
	i := 0
	for i+1 < len(b.steps) && !b.steps[i+1].at.After(cut) {
		i++
	}
	b.steps = b.steps[i:]
}

func (b *busyMeter) fraction(now time.Time) float64 {
	start := now.Add(-b.window)
	var area float64
	for i, s := range b.steps {
		from := s.at
		if from.Before(start) {
			from = start
		}
		to := now
		if i+1 < len(b.steps) {
			to = b.steps[i+1].at
		}
		if to.After(from) {
			area += s.level * to.Sub(from).Seconds()
		}
	}
	return min(1, area/b.window.Seconds())
}
