package replay

import (
	"os"
	"runtime/debug"
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
// scenarios together) and returns a func restoring the previous ones. The
// memory limit grows by what the users hold (userMemory each, which the
// capacity check made sure this machine has): 15,000 users held 290 MiB of
// goroutine stacks and 250 MiB of heap, past a fixed 512 MiB, and the
// collector then ran without pause for the whole run.
func tuneGC(users int) (restore func()) {
	var undo []func()
	if os.Getenv("GOGC") == "" {
		prev := debug.SetGCPercent(runGCPercent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		prev := debug.SetMemoryLimit(runMemoryLimit + int64(users)*userMemory)
		undo = append(undo, func() { debug.SetMemoryLimit(prev) })
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}
}
