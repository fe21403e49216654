package replay

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Go's timers wake a goroutine up to a millisecond late when the process
// is otherwise idle: a processor with nothing to run waits for the next
// timer in the network poller (epoll_wait on Linux), whose timeout is in
// whole milliseconds. At 5,000 arrivals per second the open-mode
// dispatcher's wake-up measured 0.4 ms late at the median and 1.1 ms at
// p99 from that alone, three quarters of the whole send lag. A busy process
// is not affected: its processors run due timers whenever they switch
// goroutines.
//
// The waker keeps Go's timers but makes the poller wake on time: beside
// each timer that must be on time it arms one kernel timer (a timerfd the
// poller watches, timed in microseconds), so the poller returns when the
// Go timer is due and the runtime runs it then. Without the kernel timer
// (another OS, or timerfd refused) the Go timer alone decides, as before.

// kickLate is how long after a Go timer's due time the kernel timer fires:
// a kernel timer that fired first would find the Go timer not yet due and
// the poller would go back to its millisecond sleep.
const kickLate = 15 * time.Microsecond

// waker holds the due times of the timers it watches, earliest first, and
// keeps the kernel timer armed for the earliest one ahead.
type waker struct {
	mu    sync.Mutex
	due   dueHeap       // since epoch
	armed time.Duration // what the kernel timer is armed for; 0 none
	epoch time.Time
	set   func(d time.Duration) // arms the kernel timer for d from now; 0 disarms
	// budget counts the kicks of the current millisecond (kickSome):
	// millisecond<<16 | count.
	budget atomic.Int64
}

var (
	wakerOnce sync.Once
	theWaker  *waker
)

// processWaker is the process's waker, started on first use; nil where no
// kernel timer can be had. Its goroutine (kernelTimer's) lives as long as
// the process: it costs one file descriptor and a goroutine parked in the
// poller.
func processWaker() *waker {
	wakerOnce.Do(func() {
		w := &waker{epoch: time.Now()}
		k, ok := newKernelTimer(w.fired)
		if !ok {
			return
		}
		w.set = k.set
		theWaker = w
	})
	return theWaker
}

// kick makes sure the process is awake at t (a Go timer's due time).
func (w *waker) kick(t time.Time) {
	if w == nil {
		return
	}
	at := t.Sub(w.epoch) + kickLate
	w.mu.Lock()
	heap.Push(&w.due, at)
	if w.armed == 0 || at < w.armed {
		w.arm(at)
	}
	w.mu.Unlock()
}

// kicksPerMS bounds the kicks closed users ask for (kickSome). Each kick
// costs a wake-up of the process, about 50 µs of CPU on a 2-core machine
// (open mode at 5,000 arrivals/s: 1.9 s of CPU in 3 s where 1.15 s went
// without), and many users waking within the same millisecond keep the
// process awake anyway: their timers are run on time without a kick.
const kicksPerMS = 2

// kickSome is kick within the budget of kicksPerMS: beyond it, nothing.
func (w *waker) kickSome(t time.Time) {
	if w == nil {
		return
	}
	ms := int64(time.Since(w.epoch) / time.Millisecond)
	for {
		old := w.budget.Load()
		n := old & 0xffff
		if old>>16 != ms {
			n = 0
		}
		if n >= kicksPerMS {
			return
		}
		if w.budget.CompareAndSwap(old, ms<<16|(n+1)) {
			break
		}
	}
	w.kick(t)
}

// arm sets the kernel timer for at, or disarms it (at 0). w.mu is held.
func (w *waker) arm(at time.Duration) {
	w.armed = at
	if at == 0 {
		w.set(0)
		return
	}
	w.set(max(at-time.Since(w.epoch), time.Microsecond))
}

// fired runs on the kernel timer's goroutine after it expired: it forgets
// the due times that passed and arms for the next.
func (w *waker) fired() {
	now := time.Since(w.epoch)
	w.mu.Lock()
	for len(w.due) > 0 && w.due[0] <= now {
		heap.Pop(&w.due)
	}
	var next time.Duration
	if len(w.due) > 0 {
		next = w.due[0]
	}
	w.arm(next)
	w.mu.Unlock()
}

type dueHeap []time.Duration

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(time.Duration)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// pacer times one open-mode dispatcher: it sleeps until each arrival's due
// time on one reused Go timer, with the process's waker kicking the poller
// awake for it.
type pacer struct {
	w  *waker
	tm *time.Timer

	last time.Time     // the due time of the wait before
	gap  time.Duration // moving mean of the gaps between due times (spinGap)
}

func newPacer() *pacer {
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	return &pacer{w: processWaker(), tm: tm}
}

// paceNow: an arrival this close to its due time goes at once; sleeping
// and waking would take longer.
const paceNow = 10 * time.Microsecond

// paceKickMin: a shorter wait goes on Go's timer alone. It comes right
// after the arrival before, while the process is still busy sending that
// one, and the runtime runs timers whenever it switches goroutines; at
// tens of thousands of arrivals per second a kick per arrival would only
// cost CPU.
const paceKickMin = 50 * time.Microsecond

// spinGap: while the due times are this far apart on average (fewer than
// about 6,700 arrivals a second), a wait shorter than paceKickMin spins
// instead of sleeping on Go's timer. At those rates the process often has
// nothing to run between two arrivals, and a Go timer alone then wakes a
// whole millisecond late (the poller's granularity): at 5,000 Poisson
// arrivals a second a fifth of the waits are that short, and they were
// the 1.1 ms floor under the send-lag p99. Spinning costs at most
// paceKickMin of one core per such wait (under 5 % of a core at this
// rate); at higher rates the process stays busy, Go's timers are run on
// time as it switches goroutines, and a spin would take a core the
// requests need.
const spinGap = 150 * time.Microsecond

// gapMean is how many gaps the moving mean spans. Poisson gaps vary as
// much as their mean, so over 8 gaps the mean of 200 µs gaps (5,000
// arrivals/s) fell under spinGap a sixth of the time, and the short waits
// of those moments slept on Go's timer alone: 160–370 arrivals of each
// 3 s run at 5,000/s lagged 1–1.4 ms. Over 64 gaps it stays within about
// a tenth of the mean.
const gapMean = 64

// observe moves the mean gap on by the due time at.
func (p *pacer) observe(at time.Time) {
	if !p.last.IsZero() && at.After(p.last) {
		p.gap += (at.Sub(p.last) - p.gap) / gapMean
	}
	p.last = at
}

// wait returns at at, or at once when at has passed: an arrival that is
// late goes now, and the ones after it keep their own due times, so a late
// wake-up sends what is due but never moves later arrivals closer together.
// It never returns before at. false when ctx ended first.
func (p *pacer) wait(ctx context.Context, at time.Time) bool {
	p.observe(at)
	d := time.Until(at)
	if d <= paceNow || (d < paceKickMin && p.gap >= spinGap) {
		for d > 0 { // microseconds: not worth a timer
			d = time.Until(at)
		}
		return ctx.Err() == nil
	}
	if d >= paceKickMin {
		p.w.kick(at)
	}
	p.tm.Reset(d)
	select {
	case <-p.tm.C:
	case <-ctx.Done():
		p.tm.Stop()
		return false
	}
	// Go's timer fires at or after at; the loop only guards the promise.
	for time.Until(at) > 0 {
	}
	return ctx.Err() == nil
}
