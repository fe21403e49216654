package replay

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// countWriter counts rows and keeps none, so that a memory benchmark
// measures the users, not the rows they wrote.
type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(rows ...captures.Result) error {
	w.n.Add(int64(len(rows)))
	return nil
}
func (w *countWriter) Close() error { return nil }

// raiseOpenFiles lifts the soft RLIMIT_NOFILE to the hard one, for the
// connections of the helper upstream, which inherits it.
func raiseOpenFiles(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClosedUsersThinking measures what closed-model users that
// think cost the replaying process: LOADTAPE_BENCH_USERS users (20,000 by
// default) think 2–5 s between requests to an upstream in another process
// that answers at once, started over the first 5 s of a 20 s stage (past
// the open files limit they take turns: TestUsersPastConnectionCapTakeTurns). It
// reports the peak RSS and, at that peak, goroutine stacks and heap in
// use, each also per user. LOADTAPE_BENCH_HEAPPROFILE=FILE writes a heap
// profile 15 s in (every user started and thinking).
func BenchmarkClosedUsersThinking(b *testing.B) {
	users := 20000
	if v := os.Getenv("LOADTAPE_BENCH_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("LOADTAPE_BENCH_USERS=%q: expected a positive whole number", v)
		}
		users = n
	}
	raiseOpenFiles(b)
	up := startSlowUpstream(b, 0)
	xs := gatewayCapture(20, 9)
	prof := mustProfile(b, fmt.Sprintf(`
scenarios:
  many:
    service: gateway
    stages: [{users: %d, duration: 20s}]
    spawn_rate: %d
    think: {uniform: [2s, 5s]}
    mix: {models.list: 80, health: 20}
`, users, users/5))
	for i := 0; i < b.N; i++ {
		var peakRSS, peakStack, peakHeap, peakG atomic.Int64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			began := time.Now()
			profiled := false
			var ms runtime.MemStats
			for {
				if rss := rssBytes(); rss > peakRSS.Load() {
					peakRSS.Store(rss)
					runtime.ReadMemStats(&ms)
					peakStack.Store(int64(ms.StackInuse))
					peakHeap.Store(int64(ms.HeapInuse))
				}
				peakG.Store(max(peakG.Load(), int64(runtime.NumGoroutine())))
				if os.Getenv("LOADTAPE_BENCH_TRACE") != "" {
					fds, _ := os.ReadDir("/proc/self/fd")
					fmt.Fprintf(os.Stderr, "%5.1fs rss %4d MiB goroutines %6d fds %6d\n", time.Since(began).Seconds(), rssBytes()>>20, runtime.NumGoroutine(), len(fds))
				}
				if f := os.Getenv("LOADTAPE_BENCH_HEAPPROFILE"); f != "" && !profiled && time.Since(began) > 15*time.Second {
					profiled = true
					if out, err := os.Create(f); err == nil {
						_ = pprof.WriteHeapProfile(out)
						out.Close()
					}
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		w := &countWriter{}
		info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up},
			Out: b.TempDir(), resultWriter: w})
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		if info.Errors > info.CutOff {
			b.Fatalf("%d users: %d errors besides cut-offs", users, info.Errors-info.CutOff)
		}
		mib := func(v int64) float64 { return float64(v) / (1 << 20) }
		kib := func(v int64) float64 { return float64(v) / 1024 / float64(users) }
		b.ReportMetric(mib(peakRSS.Load()), "peak-RSS-MiB")
		b.ReportMetric(kib(peakRSS.Load()), "RSS-KiB/user")
		b.ReportMetric(kib(peakStack.Load()), "stack-KiB/user")
		b.ReportMetric(kib(peakHeap.Load()), "heap-KiB/user")
		b.ReportMetric(float64(peakG.Load()), "goroutines")
		b.ReportMetric(float64(w.n.Load())/20, "rows/s")
	}
}
