package diagnose

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// gpu serves a GPU's samples at /metrics in the DCGM exporter's names
// (DCGM_FI_DEV_GPU_UTIL, _FB_USED, _FB_FREE in MiB, _POWER_USAGE), which
// the replay's `--monitor prom=URL` scrapes and the analyser maps onto
// gpu_util and gpu_mem_pct. util nil means an idle GPU (2–6 %).
type gpu struct {
	on   bool
	util func() float64
}

// serve writes the samples; false when this server has no GPU.
func (g *gpu) serve(w http.ResponseWriter) bool {
	if !g.on {
		return false
	}
	u := 2 + 4*rand.Float64()
	if g.util != nil {
		u = g.util()
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	const labels = `{gpu="0",UUID="GPU-00000000-planted",device="nvidia0",modelName="planted"}`
	fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL%s %.1f\n", labels, u)
	fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_FB_USED gauge\nDCGM_FI_DEV_FB_USED%s 20480\n", labels)
	fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_FB_FREE gauge\nDCGM_FI_DEV_FB_FREE%s 61440\n", labels)
	fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\nDCGM_FI_DEV_POWER_USAGE%s %.1f\n", labels, 70+3*u)
	return true
}

// Batch is an inference server with continuous batching: at most slots
// sequences decode together; each step emits one token to every running
// sequence and takes step0 + stepPer·running; a request is tokens steps
// long and streams them as OpenAI chat chunks (SSE). Beyond slots,
// requests wait for a free slot: throughput plateaus at about
// slots/(tokens·(step0+stepPer·slots)). With busyGPU its /metrics reports
// the share of time a step ran as the GPU's utilisation.
type Batch struct {
	slots          int
	tokens         int
	step0, stepPer time.Duration

	mu      sync.Mutex
	waiting []*sequence
	running []*sequence
	wake    chan struct{}
	stop    chan struct{}
	once    sync.Once
	done    chan struct{} // closed when the scheduler ends

	busyNS    atomic.Int64 // total time spent in steps
	lastBusy  int64
	lastAt    time.Time
	scrapeMu  sync.Mutex
	withGPU   bool
	gpuServer gpu
}

type sequence struct {
	left   int
	tokens chan struct{} // one per step; capacity: every token
	gone   atomic.Bool   // the client went away
}

// NewBatch starts the scheduler; Close stops it.
func NewBatch(slots, tokens int, step0, stepPer time.Duration, busyGPU bool) *Batch {
	b := &Batch{slots: slots, tokens: tokens, step0: step0, stepPer: stepPer,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		lastAt: time.Now(), withGPU: busyGPU}
	if busyGPU {
		b.gpuServer = gpu{on: true, util: b.utilisation}
	}
	go b.schedule()
	return b
}

// ChatOp is the operation loadtape records for the batch server.
const ChatOp = "chat.completions"

func (b *Batch) Ops() []Op {
	return []Op{{Method: http.MethodPost, Path: "/v1/chat/completions",
		Body: `{"model":"planted-8b","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"say something"}]}`}}
}

// Close stops the scheduler and waits for it.
func (b *Batch) Close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}

// utilisation is the share of wall time spent in steps since the last
// scrape, in percent.
func (b *Batch) utilisation() float64 {
	b.scrapeMu.Lock()
	defer b.scrapeMu.Unlock()
	now, busy := time.Now(), b.busyNS.Load()
	span := now.Sub(b.lastAt)
	u := 0.0
	if span > 0 {
		u = 100 * float64(busy-b.lastBusy) / float64(span)
	}
	b.lastAt, b.lastBusy = now, busy
	return min(u, 100)
}

// schedule runs steps while sequences run; it ends when Close is called.
func (b *Batch) schedule() {
	defer close(b.done)
	for {
		b.mu.Lock()
		for len(b.running) < b.slots && len(b.waiting) > 0 {
			s := b.waiting[0]
			b.waiting = b.waiting[1:]
			if !s.gone.Load() {
				b.running = append(b.running, s)
			}
		}
		n := len(b.running)
		b.mu.Unlock()
		if n == 0 {
			select {
			case <-b.wake:
				continue
			case <-b.stop:
				return
			}
		}
		began := time.Now()
		t := time.NewTimer(b.step0 + time.Duration(n)*b.stepPer)
		select {
		case <-t.C:
		case <-b.stop:
			t.Stop()
			return
		}
		b.busyNS.Add(int64(time.Since(began))) // a late timer is a longer step
		b.mu.Lock()
		kept := b.running[:0]
		for _, s := range b.running {
			if s.gone.Load() {
				continue
			}
			s.tokens <- struct{}{}
			if s.left--; s.left > 0 {
				kept = append(kept, s)
			}
		}
		clear(b.running[len(kept):])
		b.running = kept
		b.mu.Unlock()
	}
}

func (b *Batch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" && b.gpuServer.serve(w) {
		return
	}
	drain(r)
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	s := &sequence{left: b.tokens, tokens: make(chan struct{}, b.tokens)}
	defer s.gone.Store(true)
	b.mu.Lock()
	b.waiting = append(b.waiting, s)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	const id = "chatcmpl-planted"
	for i := 0; i < b.tokens; i++ {
		select {
		case <-s.tokens:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"chat.completion.chunk\",\"model\":\"planted-8b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", id, i)
		if fl != nil {
			fl.Flush()
		}
	}
	fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"chat.completion.chunk\",\"model\":\"planted-8b\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", id, b.tokens, b.tokens+4)
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}
