package replay

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestMemoryLimitFollowsHeap: the run's soft memory limit is twice what
// it holds live, at least runMemoryLimit and at most the users' share
// unless that leaves less than runMemoryLimit above what is held, and it
// is left alone once something else (endGC) set it. Not parallel: the
// limit is the process's.
func TestMemoryLimitFollowsHeap(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		t.Skip("GOMEMLIMIT or GOGC set: tuneGC leaves the collector alone")
	}
	before := debug.SetMemoryLimit(-1)
	settle := func() int64 {
		runtime.GC()
		time.Sleep(3 * gcTuneEvery)
		return debug.SetMemoryLimit(-1)
	}
	restore := tuneGC(10000) // ceiling 512 MiB + 10,000 × 64 KiB = 1,137 MiB
	if got := settle(); got != runMemoryLimit {
		t.Errorf("small heap: limit %d MiB, want %d MiB", got>>20, runMemoryLimit>>20)
	}
	held := make([]byte, 400<<20) // 400 MiB live: the limit follows to about 800 MiB
	for i := range held {
		held[i] = byte(i)
	}
	if got := settle(); got < 800<<20 || got > 1000<<20 {
		t.Errorf("400 MiB live: limit %d MiB, want about 800 MiB", got>>20)
	}
	held2 := make([]byte, 200<<20) // 600 MiB live: the ceiling holds
	for i := range held2 {
		held2[i] = byte(i)
	}
	if got := settle(); got != runMemoryLimit+10000*userMemory {
		t.Errorf("600 MiB live: limit %d MiB, want the ceiling %d MiB", got>>20, (runMemoryLimit+10000*userMemory)>>20)
	}
	held3 := make([]byte, 400<<20) // 1,000 MiB live: the ceiling would leave too little room
	for i := range held3 {
		held3[i] = byte(i)
	}
	if got := settle(); got < 1000<<20+runMemoryLimit || got > 1100<<20+runMemoryLimit {
		t.Errorf("1,000 MiB live: limit %d MiB, want %d MiB of room above it", got>>20, runMemoryLimit>>20)
	}
	runtime.KeepAlive(held)
	runtime.KeepAlive(held2)
	runtime.KeepAlive(held3)
	debug.SetMemoryLimit(math.MaxInt64) // as endGC does
	if got := settle(); got != math.MaxInt64 {
		t.Errorf("after endGC's setting: limit %d, want it left alone", got)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("restored limit %d, want %d", got, before)
	}
}
