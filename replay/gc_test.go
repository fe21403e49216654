package replay

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestMemoryLimitFollowsHeap: during a run the collector is off and the
// soft memory limit alone starts a collection; the limit is twice what
// the run holds live, at least runMemoryFloor, at most the users' share
// unless that leaves less than runMemoryFloor above what is held, and it
// is left alone once something else (endGC) set it. Not parallel: the
// settings are the process's.
func TestMemoryLimitFollowsHeap(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		t.Skip("GOMEMLIMIT or GOGC set: tuneGC leaves the collector alone")
	}
	beforeLimit := debug.SetMemoryLimit(-1)
	beforePercent := debug.SetGCPercent(100)
	debug.SetGCPercent(beforePercent)
	settle := func() int64 {
		runtime.GC()
		time.Sleep(3 * gcTuneEvery)
		return debug.SetMemoryLimit(-1)
	}
	const mib = 1 << 20
	within := func(what string, got, lo, hi int64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s: limit %d MiB, want %d–%d MiB", what, got/mib, lo/mib, hi/mib)
		}
	}
	live := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}

	const users = 10000
	ceiling := int64(runMemoryFloor + users*userMemory) // 256 MiB + 10,000 × 64 KiB = 881 MiB
	restore := tuneGC(users)
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC during the run: %d, want off (-1)", p)
	}
	within("small heap", settle(), runMemoryFloor, runMemoryFloor)
	held := live(300 * mib) // twice what is held
	within("300 MiB live", settle(), 600*mib, 700*mib)
	held2 := live(300 * mib) // twice 600 MiB is past the ceiling
	within("600 MiB live", settle(), ceiling, ceiling)
	held3 := live(300 * mib) // the ceiling would leave too little room
	within("900 MiB live", settle(), 900*mib+runMemoryFloor, 1000*mib+runMemoryFloor)
	runtime.KeepAlive(held)
	runtime.KeepAlive(held2)
	runtime.KeepAlive(held3)

	debug.SetMemoryLimit(math.MaxInt64) // as endGC does
	if got := settle(); got != math.MaxInt64 {
		t.Errorf("after endGC's setting: limit %d, want it left alone", got)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != beforeLimit {
		t.Errorf("restored limit %d, want %d", got, beforeLimit)
	}
	if got := debug.SetGCPercent(beforePercent); got != beforePercent {
		t.Errorf("restored GOGC %d, want %d", got, beforePercent)
	}
}

// TestGCPercentWithUserLimit: with GOMEMLIMIT set by the user the run does
// not turn the collector off (the user's limit may be far above what the
// run should hold), it only raises GOGC; with GOGC set it leaves GOGC be.
func TestGCPercentWithUserLimit(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		t.Skip("GOMEMLIMIT or GOGC set in the test's own environment")
	}
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	for _, c := range []struct {
		env, val string
		want     int
	}{
		{"GOMEMLIMIT", "4GiB", runGCPercent},
		{"GOGC", "100", 100},
	} {
		t.Setenv(c.env, c.val)
		restore := tuneGC(10)
		if got := debug.SetGCPercent(-1); got != c.want {
			t.Errorf("%s=%s: GOGC during the run %d, want %d", c.env, c.val, got, c.want)
		}
		debug.SetGCPercent(c.want) // what tuneGC set, for restore to undo
		restore()
		if got := debug.SetGCPercent(100); got != 100 {
			t.Errorf("%s=%s: GOGC after the run %d, want 100 again", c.env, c.val, got)
		}
		os.Unsetenv(c.env)
	}
}
