package diagnose

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// call is one request served directly by burst.
type call struct {
	took   time.Duration
	status int
	body   string
}

// burst calls h directly (no network, so a busy machine's slow client does
// not change the load) n times at once with op and returns the calls, each
// timed from the burst's start.
func burst(h http.Handler, op Op, n int) []call {
	calls := make([]call, n)
	var wg sync.WaitGroup
	start := time.Now() // they all came now, whenever their goroutine runs
	for i := range calls {
		wg.Add(1)
		go func() { // ends when the handler answers
			defer wg.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(op.Method, op.Path, strings.NewReader(op.Body)))
			calls[i] = call{took: time.Since(start), status: rec.Code, body: rec.Body.String()}
		}()
	}
	wg.Wait()
	return calls
}

// rate is the throughput of a burst: requests over the time the last took.
func rate(calls []call) float64 {
	var last time.Duration
	for _, c := range calls {
		last = max(last, c.took)
	}
	return float64(len(calls)) / last.Seconds()
}

// bestRate is the highest rate of three bursts: a busy machine's late
// timers only ever lower a burst's rate, so the best of three is the
// server's own.
func bestRate(h http.Handler, op Op, n int) float64 {
	best := 0.0
	for range 3 {
		best = max(best, rate(burst(h, op, n)))
	}
	return best
}

func TestSingleThroughputFlatAcrossConcurrency(t *testing.T) {
	b := Single(10 * ms)
	op := b.Ops()[0]
	one, eight := bestRate(b, op, 1), rate(burst(b, op, 8))
	// One at a time: 1/10 ms = 100 req/s however many come at once (a
	// busy machine only slows it).
	if eight > 1.2*100 || eight > 1.3*one {
		t.Errorf("throughput %.0f req/s with 8 at once, %.0f with 1: want flat at 100", eight, one)
	}
}

func TestPoolPlateausAtItsSize(t *testing.T) {
	b := Pool(4, 20*ms, 0, "")
	op := b.Ops()[0]
	one, four, sixteen := rate(burst(b, op, 1)), bestRate(b, op, 4), burst(b, op, 16)
	if four < 2.5*one {
		t.Errorf("throughput %.0f req/s with 4 at once, %.0f with 1: want about 4 times (the pool has 4 slots)", four, one)
	}
	if x := rate(sixteen); x > 1.2*200 || x > 1.25*four {
		t.Errorf("throughput %.0f req/s with 16 at once, %.0f with 4: want the plateau of 4/20 ms = 200", x, four)
	}
	for _, c := range sixteen {
		if c.status != http.StatusOK {
			t.Fatalf("status %d from a pool without a wait timeout: %s", c.status, c.body)
		}
	}
}

func TestPoolWithTimeoutRefusesWaitersOnlyPastIt(t *testing.T) {
	b := Pool(2, 20*ms, 70*ms, "connection pool exhausted")
	op := b.Ops()[0]
	for _, c := range burst(b, op, 2) {
		if c.status != http.StatusOK {
			t.Errorf("status %d with 2 at once on 2 slots: nobody should wait", c.status)
		}
	}
	// 16 at once on 2 slots of 20 ms: pairs wait 0, 20, 40, 60 ms and the
	// rest would wait 80 ms or more, past the 70 ms limit.
	var refused int
	for _, c := range burst(b, op, 16) {
		if c.status == http.StatusServiceUnavailable {
			refused++
			if !strings.Contains(c.body, "connection pool exhausted") || c.took < 70*ms {
				t.Errorf("refused after %s with %q: want the pool's text after the 70 ms wait", c.took, c.body)
			}
		}
	}
	if refused < 4 || refused > 12 {
		t.Errorf("%d of 16 refused: want about 8 (those that would wait 80 ms or more)", refused)
	}
}

func TestRetrogradeFallsPastItsPeak(t *testing.T) {
	b := Retrograde(10*ms, 0.05)
	op := b.Ops()[0]
	// The k-th of n at once finds k in flight and takes 10 ms · (1 +
	// 0.05·k(k−1)): 100, 250 and 123 req/s for 1, 4 and 16 at once.
	x1, x4, x16 := rate(burst(b, op, 1)), bestRate(b, op, 4), rate(burst(b, op, 16))
	if x4 < 1.5*x1 {
		t.Errorf("throughput %.0f, %.0f, %.0f req/s with 1, 4, 16 at once: want a rise from 1 to 4", x1, x4, x16)
	}
	if x16 > 0.8*x4 {
		t.Errorf("throughput %.0f, %.0f, %.0f req/s with 1, 4, 16 at once: want a fall of 20 %% or more from 4 to 16", x1, x4, x16)
	}
}

// serve calls h directly (no network, so the client's speed on a busy
// machine does not change the load) n times at once, or one after another
// when serial, and returns each call's latency, sorted.
func serve(h http.Handler, op Op, n int, serial bool) []time.Duration {
	lat := make([]time.Duration, n)
	one := func(i int) {
		req := httptest.NewRequest(op.Method, op.Path, strings.NewReader(op.Body))
		start := time.Now()
		h.ServeHTTP(httptest.NewRecorder(), req)
		lat[i] = time.Since(start)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if serial {
			one(i)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); one(i) }()
	}
	wg.Wait()
	slices.Sort(lat)
	return lat
}

// tailMean is the mean of the slowest 5 % of sorted latencies.
func tailMean(lat []time.Duration) time.Duration {
	slow := lat[len(lat)*95/100:]
	var sum time.Duration
	for _, l := range slow {
		sum += l
	}
	return sum / time.Duration(len(slow))
}

func TestLaneGrowsTheTailNotTheMedian(t *testing.T) {
	b := Lane(5*ms, 0.1, 1, 20*ms)
	op := b.Ops()[0]
	// One at a time, the lane never queues: its requests take 20 ms. Two
	// hundred at once send about 20 to the lane of one, which serves them
	// one after another (the last near 400 ms), while the others still
	// take 5 ms.
	low := serve(b, op, 60, true)
	high := serve(b, op, 200, false)
	lowTail, highTail := tailMean(low), tailMean(high)
	t.Logf("p50 %s, slowest 5 %% %s one at a time; %s, %s two hundred at once", low[len(low)/2], lowTail, high[len(high)/2], highTail)
	if p50 := high[len(high)/2]; p50 >= 20*ms {
		t.Errorf("p50 %s with 200 at once: want the fast path's 5 ms, under the lane's 20", p50)
	}
	if highTail < 3*20*ms || highTail < 2*lowTail {
		t.Errorf("mean of the slowest 5 %%: %s with 200 at once, %s one at a time: want the lane's queue to multiply it", highTail, lowTail)
	}
}

func TestParallelScalesAndErrsAtItsShare(t *testing.T) {
	b := Parallel(20*ms, 0)
	op := b.Ops()[0]
	one, sixteen := rate(burst(b, op, 1)), bestRate(b, op, 16)
	if sixteen < 5*one {
		t.Errorf("throughput %.0f req/s with 16 at once, %.0f with 1: want it to scale", sixteen, one)
	}
	e := Parallel(5*ms, 0.3)
	var failed int
	calls := burst(e, e.Ops()[0], 400)
	for _, c := range calls {
		if c.status == http.StatusInternalServerError {
			failed++
		}
	}
	if share := float64(failed) / float64(len(calls)); share < 0.2 || share > 0.4 {
		t.Errorf("error share %.2f of %d requests: want about 0.3", share, len(calls))
	}
}

func TestSlowOpOnlyTheReportQueues(t *testing.T) {
	b := SlowOp(5*ms, 20*ms)
	var items, report Op
	for _, op := range b.Ops() {
		switch op.Path {
		case "/v1/items":
			items = op
		case "/v1/report":
			report = op
		}
	}
	slowest := func(calls []call) time.Duration {
		var m time.Duration
		for _, c := range calls {
			m = max(m, c.took)
		}
		return m
	}
	// Twelve reports at once wait for each other (the last near 240 ms);
	// twelve item lists do not.
	r, i := slowest(burst(b, report, 12)), slowest(burst(b, items, 12))
	if r < 150*ms || r < 3*i {
		t.Errorf("slowest of 12 at once: report %s, items %s: want the reports to queue (about 240 ms) and the items not", r, i)
	}
}

func TestCPUBoundIsSerializedWithAnIdleGPU(t *testing.T) {
	b := CPUBound(10 * ms)
	// One worker spinning 10 ms a request: four at once end about 10, 20,
	// 30 and 40 ms after they came.
	if x := rate(burst(b, b.Ops()[0], 4)); x > 1.2*100 {
		t.Errorf("throughput %.0f req/s with 4 at once: want at most 1/10 ms = 100", x)
	}
	if u := scrapeUtil(t, b); u > 10 {
		t.Errorf("GPU utilisation %.1f %%: want an idle GPU", u)
	}
}

func TestGrowingSlowsWithTimeAtConstantLoad(t *testing.T) {
	b := Growing(5*ms, 200*time.Microsecond)
	op := b.Ops()[0]
	first := serve(b, op, 1, true)[0]
	serve(b, op, 100, false)
	// 5 ms + 0.2 ms for each of the 101 requests served before it, ±10 %;
	// a wait never ends early, so at least 22.6 ms.
	later := serve(b, op, 1, true)[0]
	if later < 22*ms {
		t.Errorf("the first request took %s, the 102nd %s: want 25 ms (0.2 ms more per request served)", first, later)
	}
}

// scrapeUtil reads DCGM_FI_DEV_GPU_UTIL from the server's /metrics with
// the Prometheus text parser the monitor uses.
func scrapeUtil(t *testing.T, h http.Handler) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for _, name := range []string{"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE"} {
		if fams[name] == nil {
			t.Fatalf("/metrics lacks %s", name)
		}
	}
	return fams["DCGM_FI_DEV_GPU_UTIL"].GetMetric()[0].GetGauge().GetValue()
}

func TestBatchPlateausAndStreamsChat(t *testing.T) {
	b := NewBatch(4, 4, 10*ms, 2*ms, true)
	defer b.Close()
	op := b.Ops()[0]
	one, four := rate(burst(b, op, 1)), bestRate(b, op, 4)
	scrapeUtil(t, b) // start a fresh utilisation window
	sixteen := rate(burst(b, op, 16))
	util := scrapeUtil(t, b)
	// One sequence: 4 steps of 12 ms (21 req/s); four: 4 steps of 18 ms
	// (56 req/s); sixteen: four batches of four, the same 56 req/s.
	if four < 2*one {
		t.Errorf("throughput %.0f req/s with 4 at once, %.0f with 1: want the batch to fill", four, one)
	}
	if sixteen > 1.25*four {
		t.Errorf("throughput %.0f req/s with 16 at once, %.0f with 4: want a plateau at 4 slots", sixteen, four)
	}
	if util < 90 {
		t.Errorf("GPU utilisation %.1f %% with every slot full: want ≥ 90", util)
	}

	srv := httptest.NewServer(b)
	defer srv.Close()
	resp, err := http.Post(srv.URL+op.Path, "application/json", strings.NewReader(op.Body))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	if n := strings.Count(string(body), `"delta":{"content"`); n != 4 {
		t.Errorf("%d content chunks, want 4:\n%s", n, body)
	}
	if !strings.Contains(string(body), `"completion_tokens":4`) || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("want a usage chunk and [DONE] at the end:\n%s", body)
	}
}

// The queue books servers in virtual time: deterministic, whatever the
// scheduler does.
func TestQueueBooksTheServerFreeFirst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := newQueue(2)
	var got []time.Duration
	for i := 0; i < 5; i++ {
		f, ok := q.reserve(t0, 10*ms, 0)
		if !ok {
			t.Fatalf("request %d refused without a wait limit", i)
		}
		got = append(got, f.Sub(t0))
	}
	want := []time.Duration{10 * ms, 10 * ms, 20 * ms, 20 * ms, 30 * ms}
	if !slices.Equal(got, want) {
		t.Errorf("five arrivals at once on two servers end at %v, want %v", got, want)
	}
	// Both servers are booked to t0+30 ms and t0+20 ms: a request at
	// t0+5 ms would wait 15 ms; with a 10 ms limit it is refused and
	// books nothing.
	if _, ok := q.reserve(t0.Add(5*ms), 10*ms, 10*ms); ok {
		t.Error("a request that would wait 15 ms was admitted with a 10 ms limit")
	}
	if f, ok := q.reserve(t0.Add(5*ms), 10*ms, 20*ms); !ok || f.Sub(t0) != 30*ms {
		t.Errorf("with a 20 ms limit: admitted %v, ends at %v; want true, 30ms", ok, f.Sub(t0))
	}
	// An idle server starts at the arrival, not at its last booking.
	if f, _ := q.reserve(t0.Add(time.Second), 10*ms, 0); f.Sub(t0) != time.Second+10*ms {
		t.Errorf("an arrival at an idle queue ends at %v, want 1.01s", f.Sub(t0))
	}
}
