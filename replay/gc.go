package replay

import (
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Garbage-collection settings for the length of a run. A replayer's live
// heap is small (rows leave for the writer in batches) but it allocates
// per request, so with Go's default GOGC=100 it collects every few
// milliseconds at thousands of requests per second, and the collector's
// assists delay the goroutines that should be sending: at 5,000 req/s the
// steady send-lag p99 measured 3.9–25 ms with the default and 1.2–1.4 ms
// with GOGC=400 (BenchmarkSendLag5000, 2 cores). The soft memory limit
// (512 MiB plus what the users hold) makes the collector work harder again
// before a run grows past what it should hold. GOGC or GOMEMLIMIT in the
// environment win.
const (
	runGCPercent   = 400
	runMemoryLimit = 512 << 20
)

// tuneGC applies the run's settings for a run of users users (all
// scenarios together) and returns a func restoring the previous ones.
//
// The memory limit follows what the run holds: twice its live heap and
// stacks, at least runMemoryLimit, at most runMemoryLimit plus userMemory
// per user (which the capacity check made sure this machine has). A fixed
// 512 MiB was too little: 15,000 users held 290 MiB of goroutine stacks and
// 250 MiB of heap, and the collector then ran without pause for the whole
// run. The users' full share as the limit was too much: GOGC=400 then let
// garbage grow to it, and 10,000 SSE streams peaked at 972 MiB of RSS,
// 100,000 thinking users at 1.7 GiB, whatever they held. The limit is
// recomputed every gcTuneEvery; between, a fast-growing run only makes
// the collector work harder for a moment. Below what the run holds the
// limit would keep the collector running without pause (at up to half
// the CPU, Go's cap), as a capture of a few GiB replayed by a few users
// would under the users' share: so it leaves at least runMemoryLimit of
// room above what is held.
func tuneGC(users int) (restore func()) {
	var undo []func()
	if os.Getenv("GOGC") == "" {
		prev := debug.SetGCPercent(runGCPercent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		ceiling := runMemoryLimit + int64(users)*userMemory
		prev := debug.SetMemoryLimit(runMemoryLimit)
		stop, done := make(chan struct{}), make(chan struct{})
		go followHeap(ceiling, stop, done)
		undo = append(undo, func() {
			close(stop)
			<-done
			debug.SetMemoryLimit(prev)
		})
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}
}

// gcTuneEvery is how often followHeap recomputes the memory limit.
const gcTuneEvery = 250 * time.Millisecond

// followHeap sets the memory limit from the live heap and stacks until
// stop closes, then closes done; it stops early, leaving the limit alone,
// once something else set it (endGC at the run's end).
func followHeap(ceiling int64, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	samples := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	set := int64(runMemoryLimit)
	t := time.NewTicker(gcTuneEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		rtmetrics.Read(samples)
		var held int64
		for _, s := range samples {
			if s.Value.Kind() == rtmetrics.KindUint64 {
				held += int64(s.Value.Uint64())
			}
		}
		limit := memoryLimit(held, ceiling)
		if debug.SetMemoryLimit(-1) != set {
			return // set elsewhere
		}
		if limit != set {
			debug.SetMemoryLimit(limit)
			set = limit
		}
	}
}

// memoryLimit is the soft limit for a run holding held bytes live whose
// users' share ends at ceiling: twice what it holds, at least
// runMemoryLimit, at most the ceiling, but never less than runMemoryLimit
// of room above what it holds.
func memoryLimit(held, ceiling int64) int64 {
	return min(max(2*held, runMemoryLimit), max(ceiling, held+runMemoryLimit))
}
