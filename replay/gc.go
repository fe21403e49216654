package replay

import (
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Garbage-collection settings for the length of a run. A replayer's live
// heap is small (rows leave for the writer in batches) but it allocates
// per request, so a collector paced by GOGC runs every second or two even
// at GOGC=400 (the live heap is about 4 MB at 5,000 req/s), and each mark
// phase, 3.5–16 ms of wall time on 2 cores, delays the arrivals due in it:
// in BenchmarkSendLag5000 (2 December 2026, the same binary in turn, 5
// runs each) 77–348 arrivals more than 2 ms late and the worst 12.9–20.4 ms
// late in four runs of five at GOGC=400, against 0–46 and 2.3–4.2 ms with
// the collector off; in five of six other runs at GOGC=400 the largest
// cluster of late arrivals sat at the collection's time. The p99 moved
// less (a stall holds a few % of the arrivals at most), and reached 5.0 ms
// once. So during a run GOGC is off and the soft memory
// limit alone starts a collection: at least runMemoryFloor (the memory the
// capacity check keeps for the run, memReserve), which at the benchmark's
// 8 MB of garbage a second is one collection every half minute. GOGC or
// GOMEMLIMIT in the environment win; with GOMEMLIMIT alone set, GOGC is
// runGCPercent, since a collector off with a limit the user chose for
// other reasons could let garbage grow to it.
const (
	runGCPercent   = 400
	runMemoryFloor = memReserve
)

// tuneGC applies the run's settings for a run of users users (all
// scenarios together) and returns a func restoring the previous ones.
//
// The memory limit follows what the run holds: twice its live heap and
// stacks, at least runMemoryFloor, at most runMemoryFloor plus userMemory
// per user (which the capacity check made sure this machine has), or
// runMemoryFloor above what it holds when that is more (a large capture
// replayed by a few users, which a limit below the live heap would keep
// the collector running on). A fixed limit was too little: 15,000 users
// held 290 MiB of goroutine stacks and 250 MiB of heap, and the collector
// then ran without pause for the whole run. The users' full share as the
// limit was too much: garbage grew to it, and 10,000 SSE streams peaked at
// 972 MiB of RSS, 100,000 thinking users at 1.7 GiB, whatever they held.
// The limit is recomputed every gcTuneEvery; between, a fast-growing run
// only makes the collector work harder for a moment.
func tuneGC(users int) (restore func()) {
	var undo []func()
	ownPercent, ownLimit := os.Getenv("GOGC") == "", os.Getenv("GOMEMLIMIT") == "" // the run's to set
	if ownPercent {
		percent := runGCPercent
		if ownLimit {
			percent = -1 // the limit below is the only trigger
		}
		prev := debug.SetGCPercent(percent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
	}
	if ownLimit {
		ceiling := runMemoryFloor + int64(users)*userMemory
		prev := debug.SetMemoryLimit(runMemoryFloor)
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
	set := int64(runMemoryFloor)
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
// runMemoryFloor, at most the ceiling, but never less than runMemoryFloor
// of room above what it holds.
func memoryLimit(held, ceiling int64) int64 {
	return min(max(2*held, runMemoryFloor), max(ceiling, held+runMemoryFloor))
}
