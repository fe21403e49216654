package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/loadtape/loadtape/captures"
)

// benchUpstream answers every request with a 1 KiB JSON body.
func benchUpstream(b *testing.B) *httptest.Server {
	body := `{"id":"x","object":"chat.completion","model":"m","choices":[{"message":{"content":"` + strings.Repeat("a", 1024-120) + `"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	up.Config.ErrorLog = nil
	up.Start()
	b.Cleanup(up.Close)
	return up
}

func benchRecorder(b *testing.B, upstream string, discard bool) (*Recorder, string) {
	opts := Options{
		Routes:    []Route{{Name: "gateway", Listen: "127.0.0.1:0", Upstream: mustURL(b, upstream)}},
		Out:       b.TempDir(),
		LiveEvery: -1,
	}
	if discard {
		opts.sink = discardSink{}
	}
	r, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(); err != nil {
		b.Fatal(err)
	}
	return r, "http://" + r.Addrs()["gateway"]
}

const benchReq = `{"model":"m","messages":[{"role":"user","content":"Explain Python decorators"}],"max_tokens":150}`

func do(b *testing.B, c *http.Client, url string) time.Duration {
	t0 := time.Now()
	resp, err := c.Post(url, "application/json", strings.NewReader(benchReq))
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(t0)
}

// BenchmarkAddedLatency1KiB paces 1 KiB exchanges at 1,000/s, alternating
// direct to the upstream and through the recording proxy (to the same
// upstream, same client), and reports the difference of the medians and of
// the 99th percentiles. Run with -benchtime=5000x for a stable p99.
func BenchmarkAddedLatency1KiB(b *testing.B) {
	up := benchUpstream(b)
	r, base := benchRecorder(b, up.URL, false)
	addedLatency(b, r, up.URL, base)
}

// BenchmarkAddedLatency1KiBNoParquet is the same with rows discarded instead
// of encoded: the difference is what Parquet encoding costs the traffic.
func BenchmarkAddedLatency1KiBNoParquet(b *testing.B) {
	up := benchUpstream(b)
	r, base := benchRecorder(b, up.URL, true)
	addedLatency(b, r, up.URL, base)
}

func addedLatency(b *testing.B, r *Recorder, upURL, base string) {
	up := struct{ URL string }{upURL}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for range 200 { // warm connections and code paths
		do(b, c, up.URL+"/v1/chat/completions")
		do(b, c, base+"/v1/chat/completions")
	}
	direct := make([]time.Duration, 0, b.N)
	proxied := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		if i%2 == 0 {
			direct = append(direct, do(b, c, up.URL+"/v1/chat/completions"))
			proxied = append(proxied, do(b, c, base+"/v1/chat/completions"))
		} else {
			proxied = append(proxied, do(b, c, base+"/v1/chat/completions"))
			direct = append(direct, do(b, c, up.URL+"/v1/chat/completions"))
		}
	}
	b.StopTimer()
	tot, err := r.Shutdown(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(direct)
	slices.Sort(proxied)
	q := func(s []time.Duration, p float64) float64 { return float64(s[int(p*float64(len(s)-1))].Microseconds()) }
	b.ReportMetric(q(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(q(proxied, 0.5), "proxy-p50-µs")
	b.ReportMetric(q(proxied, 0.5)-q(direct, 0.5), "added-p50-µs")
	b.ReportMetric(q(proxied, 0.99)-q(direct, 0.99), "added-p99-µs")
	b.ReportMetric(float64(tot.Dropped), "dropped")
}

// BenchmarkThroughputSmall drives small exchanges through the proxy from
// many concurrent keep-alive clients, recording to Parquet, and reports
// exchanges per second and records dropped. Compare with
// BenchmarkThroughputSmallDirect (same upstream, no proxy).
func BenchmarkThroughputSmall(b *testing.B) {
	up := benchUpstream(b)
	r, base := benchRecorder(b, up.URL, false)
	throughput(b, base+"/v1/chat/completions")
	tot, err := r.Shutdown(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(tot.Dropped), "dropped")
	if tot.Written+tot.Dropped != tot.Exchanges {
		b.Errorf("totals %+v do not add up", tot)
	}
}

func BenchmarkThroughputSmallDirect(b *testing.B) {
	up := benchUpstream(b)
	throughput(b, up.URL+"/v1/chat/completions")
}

func throughput(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(url, "application/json", strings.NewReader(benchReq))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exchanges/s")
	c.CloseIdleConnections()
}

// BenchmarkRecordVsGoproxy compares the recorder (recording to Parquet
// through the write-ahead log, the defaults) with bare goproxy (as
// goproxy.NewProxyHttpServer comes, used as a forward proxy) in the same
// run: small exchanges from 16 keep-alive clients to the same upstream, in
// pairs of rounds of LOADTAPE_ROUND (default 2s), LOADTAPE_PAIRS pairs
// (default 7), alternating which side goes first.
//
// The ratio is the median of the pairs' ratios: two rounds side by side
// share the machine's moment (a neighbour's compile, a GC), so a pair's
// ratio moves less than either rate. Each side first runs one round that is
// not counted (connections, code paths and heap warmed alike), and before
// every round the process is brought to the same state: the recorder's
// rows of the round before are on disk (its encoding would otherwise run
// in the next round, which slowed whichever side came after it) and a GC
// has run. The recorder's CPU time per exchange counts that catching up.
func BenchmarkRecordVsGoproxy(b *testing.B) {
	round := 2 * time.Second
	if s := os.Getenv("LOADTAPE_ROUND"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		round = d
	}
	pairs := 7
	if s := os.Getenv("LOADTAPE_PAIRS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("LOADTAPE_PAIRS=%q: want a whole number of at least 1", s)
		}
		pairs = n
	}
	up := benchUpstream(b)
	r, base := benchRecorder(b, up.URL, false)
	gp := httptest.NewServer(goproxy.NewProxyHttpServer())
	b.Cleanup(gp.Close)
	recClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	gpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, Proxy: http.ProxyURL(mustURL(b, gp.URL))}}
	recURL, gpURL := base+"/v1/chat/completions", up.URL+"/v1/chat/completions"
	// settle waits (at most 5 s) until every row the recorder was handed
	// is on disk, then collects garbage.
	settle := func() {
		for t0 := time.Now(); r.Totals().Pending > 0 && time.Since(t0) < 5*time.Second; {
			time.Sleep(2 * time.Millisecond)
		}
		runtime.GC()
	}
	recRound := func(d time.Duration) (perSec, cpuMicros float64) {
		settle()
		cpu0 := cpuTime()
		perSec, n := rate(b, recClient, recURL, d)
		settle() // its rows' encoding is the recorder's work
		return perSec, float64((cpuTime() - cpu0).Microseconds()) / float64(max(n, 1))
	}
	bareRound := func(d time.Duration) (perSec, cpuMicros float64) {
		settle()
		cpu0 := cpuTime()
		perSec, n := rate(b, gpClient, gpURL, d)
		return perSec, float64((cpuTime() - cpu0).Microseconds()) / float64(max(n, 1))
	}
	var rec, bare, ratio, recCPU, bareCPU []float64
	for range b.N {
		warm := max(round/4, 300*time.Millisecond)
		recRound(warm)
		bareRound(warm)
		for i := range pairs {
			var x, y, cx, cy float64
			if i%2 == 0 {
				x, cx = recRound(round)
				y, cy = bareRound(round)
			} else {
				y, cy = bareRound(round)
				x, cx = recRound(round)
			}
			rec, bare, ratio = append(rec, x), append(bare, y), append(ratio, x/y)
			recCPU, bareCPU = append(recCPU, cx), append(bareCPU, cy)
		}
	}
	tot, err := r.Shutdown(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	med := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	b.ReportMetric(med(rec), "record-exchanges/s")
	b.ReportMetric(med(bare), "goproxy-exchanges/s")
	b.ReportMetric(med(ratio), "record/goproxy")
	b.ReportMetric(slices.Min(ratio), "record/goproxy-min")
	b.ReportMetric(slices.Max(ratio), "record/goproxy-max")
	// CPU time of the whole process (clients, proxy, upstream) per
	// exchange: what a busy machine's share of the cores changes least.
	b.ReportMetric(med(recCPU), "record-cpu-µs/exchange")
	b.ReportMetric(med(bareCPU), "goproxy-cpu-µs/exchange")
	b.ReportMetric(float64(tot.Dropped), "dropped")
	if tot.Written+tot.Dropped != tot.Exchanges {
		b.Errorf("totals %+v do not add up", tot)
	}
}

// rate sends small exchanges from 16 keep-alive clients for d and returns
// the exchanges per second completed and how many.
func rate(b *testing.B, c *http.Client, url string, d time.Duration) (perSec float64, n int64) {
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				resp, err := c.Post(url, "application/json", strings.NewReader(benchReq))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), done.Load()
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSoakMemory runs small exchanges at a fixed rate for
// LOADTAPE_SOAK (default 30s; the figure is 5m) and reports the heap
// live heap of the first and second half of the run. Run it once:
//
//	LOADTAPE_SOAK=5m LOADTAPE_SOAK_RATE=10000 go test -run '^$' -bench SoakMemory -benchtime 1x ./proxy/
func BenchmarkSoakMemory(b *testing.B) {
	dur := 30 * time.Second
	if s := os.Getenv("LOADTAPE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		dur = d
	}
	rate := 2000
	if s := os.Getenv("LOADTAPE_SOAK_RATE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		rate = n
	}
	up := benchUpstream(b)
	r, base := benchRecorder(b, up.URL, false)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	const workers = 32
	var sent atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	tick := time.Duration(float64(time.Second) * workers / float64(rate))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = next.Add(tick)
				resp, err := c.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(benchReq))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
			}
		}()
	}
	// Sample the live heap (as of the last GC, no forced collection) every
	// second; compare the second half of the run with the first, skipping
	// the first tenth as warm-up. The capture writer's buffers rise and fall
	// with each roll, so single samples would mislead.
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var first, second []float64
	t0 := time.Now()
	cpu0 := cpuTime()
	for time.Since(t0) < dur {
		time.Sleep(time.Second)
		el := time.Since(t0)
		if el < dur/10 {
			continue
		}
		metrics.Read(sample)
		v := float64(sample[0].Value.Uint64()) / (1 << 20)
		if el < dur/10+(dur-dur/10)/2 {
			first = append(first, v)
		} else {
			second = append(second, v)
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(max(len(xs), 1))
	}
	early, late := mean(first), mean(second)
	peak := slices.Max(append(first, second...))
	close(stop)
	wg.Wait()
	cpu := cpuTime() - cpu0
	tot, err := r.Shutdown(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(sent.Load())/dur.Seconds(), "exchanges/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(max(sent.Load(), 1)), "cpu-µs/exchange")
	b.ReportMetric(early, "live-heap-1st-half-MiB")
	b.ReportMetric(late, "live-heap-2nd-half-MiB")
	b.ReportMetric(peak, "live-heap-max-MiB")
	b.ReportMetric(float64(tot.Dropped), "dropped")
}

type discardSink struct{}

func (discardSink) Write(...captures.Exchange) error { return nil }
func (discardSink) SetMetadata(string, string)       {}
func (discardSink) Close() error                     { return nil }

// BenchmarkRow is the writer goroutine's work for one small exchange
// besides the Parquet encoding: classification, OpenAI model and usage,
// redaction of headers and of a 1 KiB JSON completion of prose (the shape
// most recorded bodies have: no credential in them).
func BenchmarkRow(b *testing.B) {
	o := NewOffline(OfflineOptions{})
	words := strings.Fields("the quick brown fox jumps over the lazy dog while a model explains python decorators step by step, see https://example.com/a?b=c and such")
	var sb strings.Builder
	for i := 0; sb.Len() < 900; i++ {
		sb.WriteString(words[i%len(words)])
		sb.WriteByte(' ')
	}
	body := `{"id":"chatcmpl-abc","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` + sb.String() + `"}}],"usage":{"prompt_tokens":12,"completion_tokens":150}}`
	in := OfflineExchange{
		Start: time.Now(), Service: "gateway", Method: "POST", Scheme: "http", Path: "/v1/chat/completions", Host: "127.0.0.1:8080", Client: "127.0.0.1",
		ReqHeader:  http.Header{"User-Agent": {"Go-http-client/1.1"}, "Content-Length": {strconv.Itoa(len(benchReq))}, "Content-Type": {"application/json"}, "Accept-Encoding": {"gzip"}},
		RespHeader: http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(body))}, "Date": {"Wed, 02 Dec 2026 04:00:00 GMT"}},
		Status:     200, TTFB: time.Millisecond, Duration: 2 * time.Millisecond,
		ReqBody: []byte(benchReq), RespBody: []byte(body),
	}
	b.ReportAllocs()
	for b.Loop() {
		if e := o.Row(in); e.Model != "m" || e.PromptTokens != 12 {
			b.Fatalf("model %q, %d prompt tokens", e.Model, e.PromptTokens)
		}
	}
}
