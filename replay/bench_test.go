package replay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// instantUpstream answers every HTTP/1.1 request on a kept-alive connection
// at once with a small JSON body, without net/http's server overhead, so a
// benchmark measures the replayer.
func instantUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Add(1)
			go func() { // ends when the client closes the connection
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReaderSize(c, 4<<10)
				w := bufio.NewWriterSize(c, 4<<10)
				for {
					cl := 0
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if len(line) > 16 && bytes.EqualFold(line[:15], []byte("content-length:")) {
							cl, _ = strconv.Atoi(strings.TrimSpace(string(line[15:])))
						}
					}
					if cl > 0 {
						if _, err := r.Discard(cl); err != nil {
							return
						}
					}
					w.Write(resp)
					if r.Buffered() == 0 {
						if w.Flush() != nil {
							return
						}
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return "http://" + ln.Addr().String()
}

var accepted atomic.Int64

// slowWriter stands for a slow disk: every Write takes 50 ms.
type slowWriter struct{ n atomic.Int64 }

func (s *slowWriter) Write(rows ...captures.Result) error {
	time.Sleep(50 * time.Millisecond)
	s.n.Add(int64(len(rows)))
	return nil
}
func (s *slowWriter) Close() error { return nil }

// lagStats returns the p50 and p99 send lag and the successes.
func lagStats(rows []captures.Result) (p50, p99 time.Duration, ok int) {
	var lags []int64
	for _, r := range rows {
		if r.ErrorKind == "" {
			ok++
			lags = append(lags, r.StartNS-r.IntendedNS)
		}
	}
	if len(lags) == 0 {
		return 0, 0, 0
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	return time.Duration(lags[len(lags)/2]), time.Duration(lags[len(lags)*99/100]), ok
}

func openProfile(tb testing.TB, rate int, d time.Duration, arrivals string) *Profile {
	return mustProfile(tb, fmt.Sprintf(`
scenarios:
  open:
    service: gateway
    mode: open
    arrivals: %s
    max_in_flight: 20000
    workers: 32
    stages: [{rate: %d, duration: %s}]
    mix: {models.list: 1}
`, arrivals, rate, d))
}

// BenchmarkOpenModeThroughput offers 25,000 arrivals per second for 3 s to
// an upstream that answers at once and reports what was sent per second,
// results written to Parquet as in a real run.
func BenchmarkOpenModeThroughput(b *testing.B) {
	up := instantUpstream(b)
	xs := gatewayCapture(1, 3)
	for i := 0; i < b.N; i++ {
		const d = 3 * time.Second
		out := b.TempDir()
		cpu0 := cpuTime()
		_, err := Run(context.Background(), Options{Exchanges: xs, Profile: openProfile(b, 25000, d, "constant"),
			Targets: map[string]string{"gateway": up}, Out: out})
		if err != nil {
			b.Fatal(err)
		}
		cpu := cpuTime() - cpu0
		rows := readResults(b, out)
		p50, p99, ok := lagStats(rows)
		b.ReportMetric(float64(ok)/d.Seconds(), "req/s")
		// CPU per request (replayer, result writing and the upstream
		// together) does not depend on what else the machine runs: it
		// bounds the rate 2 cores can sustain.
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(rows)), "cpu-µs/req")
		b.ReportMetric(float64(accepted.Load()), "conns")
		b.ReportMetric(float64(p50)/1e6, "lag-p50-ms")
		b.ReportMetric(float64(p99)/1e6, "lag-p99-ms")
	}
}

// BenchmarkSendLag5000 sends 5,000 req/s (Poisson) for 3 s and reports the
// send lag; then the same with a results writer that stalls 50 ms per
// batch, to show that writing never delays sending.
func BenchmarkSendLag5000(b *testing.B) {
	up := instantUpstream(b)
	xs := gatewayCapture(1, 3)
	for _, slow := range []bool{false, true} {
		b.Run(fmt.Sprintf("slow-writer=%v", slow), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				mw := &memWriter{}
				opts := Options{Exchanges: xs, Profile: openProfile(b, 5000, 3*time.Second, "poisson"),
					Targets: map[string]string{"gateway": up}, Out: b.TempDir(), resultWriter: mw}
				var sw *slowWriter
				if slow {
					sw = &slowWriter{}
					opts.resultWriter = &teeWriter{mw, sw}
				}
				if _, err := Run(context.Background(), opts); err != nil {
					b.Fatal(err)
				}
				p50, p99, ok := lagStats(mw.rows)
				// The same without the first half second (dials, workers
				// starting), to tell a warm-up from a steady tail.
				var first int64 = math.MaxInt64
				for _, r := range mw.rows {
					first = min(first, r.IntendedNS)
				}
				var steady []captures.Result
				for _, r := range mw.rows {
					if r.IntendedNS-first >= int64(500*time.Millisecond) {
						steady = append(steady, r)
					}
				}
				_, sp99, _ := lagStats(steady)
				// The worst of the tail, which a p99 alone hides: a stall
				// of the whole process (a collection's mark phase) delayed
				// up to 440 arrivals by up to 28 ms, under 3 % of a run's.
				var late, worst int64
				for _, r := range mw.rows {
					if l := r.StartNS - r.IntendedNS; r.ErrorKind == "" {
						worst = max(worst, l)
						if l > int64(2*time.Millisecond) {
							late++
						}
					}
				}
				b.ReportMetric(float64(late), "late-over-2ms")
				b.ReportMetric(float64(worst)/1e6, "lag-max-ms")
				b.ReportMetric(float64(sp99)/1e6, "steady-lag-p99-ms")
				b.ReportMetric(float64(ok)/3, "req/s")
				b.ReportMetric(float64(p50)/1e6, "lag-p50-ms")
				b.ReportMetric(float64(p99)/1e6, "lag-p99-ms")
			}
		})
	}
}

type teeWriter struct {
	a *memWriter
	b *slowWriter
}

func (t *teeWriter) Write(rows ...captures.Result) error {
	t.a.Write(rows...)
	return t.b.Write(rows...)
}
func (t *teeWriter) Close() error { return nil }

// BenchmarkClosedUsers10k runs 10,000 closed-model users thinking 2–5 s for
// 12 s (all spawned in the first 2 s) and reports the process's peak
// resident memory, the upstream included.
func BenchmarkClosedUsers10k(b *testing.B) {
	up := instantUpstream(b)
	xs := gatewayCapture(20, 9)
	prof := mustProfile(b, `
scenarios:
  many:
    service: gateway
    stages: [{users: 10000, duration: 12s}]
    spawn_rate: 5000
    think: {uniform: [2s, 5s]}
    mix: {chat.completions: 70, models.list: 20, health: 10}
`)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		stop := make(chan struct{})
		var peak, heap, stack atomic.Int64
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				if rss := rssBytes(); rss > peak.Load() {
					peak.Store(rss)
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					heap.Store(int64(ms.HeapInuse))
					stack.Store(int64(ms.StackInuse))
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		out := b.TempDir()
		conns0 := accepted.Load()
		info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up}, Out: out})
		b.ReportMetric(float64(accepted.Load()-conns0), "conns")
		close(stop)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-RSS-MB")
		b.ReportMetric(float64(heap.Load())/(1<<20), "heap-MB")
		b.ReportMetric(float64(stack.Load())/(1<<20), "stack-MB")
		b.ReportMetric(float64(info.Requests), "requests")
		b.ReportMetric(float64(info.Errors), "errors")
		kinds := map[string]int{}
		for _, r := range readResults(b, out) {
			if r.ErrorKind != "" {
				kinds[r.ErrorKind]++
			}
		}
		b.Logf("error kinds: %v", kinds)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssBytes reads VmRSS from /proc/self/status (Linux); 0 elsewhere.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkClosedThroughput runs 50 closed users without think for 3 s
// against an upstream that answers at once, results written to Parquet as
// in a real run (the shape of make bench-peers), and reports requests per
// second, CPU and heap allocations per request. The upstream runs in this
// process: cpu-µs/req includes its share, unless LOADTAPE_BENCH_TARGET
// names one outside (e.g. http://127.0.0.1:8080, the nginx of make
// bench-peers), which then answers every path.
func BenchmarkClosedThroughput(b *testing.B) {
	up := os.Getenv("LOADTAPE_BENCH_TARGET")
	if up == "" {
		up = instantUpstream(b)
	}
	xs := gatewayCapture(1, 3)
	prof := mustProfile(b, `
scenarios:
  closed:
    service: gateway
    stages: [{users: 50, duration: 3s}]
    spawn_rate: 0
    mix: {models.list: 1}
`)
	for i := 0; i < b.N; i++ {
		out := b.TempDir()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0 := cpuTime()
		info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof,
			Targets: map[string]string{"gateway": up}, Out: out})
		if err != nil {
			b.Fatal(err)
		}
		cpu := cpuTime() - cpu0
		runtime.ReadMemStats(&ms1)
		n := float64(info.Requests)
		b.ReportMetric(n/3, "req/s")
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/req")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/req")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/n, "B/req")
		b.ReportMetric(float64(info.Errors), "errors")
	}
}
