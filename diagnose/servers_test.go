package diagnose

import (
	"context"
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

// load is what a short closed-loop drive of a server measured.
type load struct {
	x        float64 // successful requests per second
	mean     time.Duration
	p50, p99 time.Duration
	tail     time.Duration // mean of the slowest 5 %
	errs     int
	ok       int
	bodies   []string // the first few error bodies
	byOp     map[string][]time.Duration
}

// drive runs users closed-loop users against h for d, each sending ops in
// turn (weights by repetition) with think between requests. Requests that
// end after d are not counted, like the analyser's window.
func drive(t *testing.T, h http.Handler, ops []Op, users int, think, d time.Duration) load {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: users + 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	out := load{byOp: map[string][]time.Duration{}}
	var lat []time.Duration
	var wg sync.WaitGroup
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func() { // ends when ctx expires
			defer wg.Done()
			for i := u; ctx.Err() == nil; i++ {
				op := ops[i%len(ops)]
				req, _ := http.NewRequestWithContext(ctx, op.Method, srv.URL+op.Path, strings.NewReader(op.Body))
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return // the drive ended
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				if rerr != nil || ctx.Err() != nil {
					return
				}
				mu.Lock()
				if resp.StatusCode == http.StatusOK {
					out.ok++
					lat = append(lat, took)
					out.byOp[op.Path] = append(out.byOp[op.Path], took)
				} else {
					out.errs++
					if len(out.bodies) < 3 {
						out.bodies = append(out.bodies, string(body))
					}
				}
				mu.Unlock()
				if think > 0 {
					select {
					case <-time.After(think):
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) > 0 {
		var sum time.Duration
		for _, l := range lat {
			sum += l
		}
		out.mean = sum / time.Duration(len(lat))
		out.p50 = lat[len(lat)/2]
		out.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		slow := lat[len(lat)*95/100:]
		sum = 0
		for _, l := range slow {
			sum += l
		}
		out.tail = sum / time.Duration(len(slow))
	}
	out.x = float64(out.ok) / d.Seconds()
	return out
}

const window = 600 * time.Millisecond

func TestSingleThroughputFlatAcrossConcurrency(t *testing.T) {
	b := Single(10 * ms)
	one := drive(t, b, b.Ops(), 1, 0, window)
	eight := drive(t, b, b.Ops(), 8, 0, window)
	// 1/10 ms = 100 req/s at any concurrency; a busy machine only slows it.
	if eight.x > 1.3*one.x || eight.x > 115 {
		t.Errorf("throughput at 8 users %.0f req/s, at 1 user %.0f: want flat, at most 100", eight.x, one.x)
	}
	if eight.mean < 5*one.mean {
		t.Errorf("mean latency at 8 users %s, at 1 user %s: want about 8 times", eight.mean, one.mean)
	}
}

func TestPoolPlateausAtItsSize(t *testing.T) {
	b := Pool(4, 20*ms, 0, "")
	one := drive(t, b, b.Ops(), 1, 0, window)
	four := drive(t, b, b.Ops(), 4, 0, window)
	sixteen := drive(t, b, b.Ops(), 16, 0, window)
	if four.x < 2.5*one.x {
		t.Errorf("throughput at 4 users %.0f req/s, at 1 %.0f: want about 4 times (the pool has 4 slots)", four.x, one.x)
	}
	if sixteen.x > 1.25*four.x || sixteen.x > 230 {
		t.Errorf("throughput at 16 users %.0f req/s, at 4 %.0f: want the plateau of 4/20 ms = 200", sixteen.x, four.x)
	}
	if sixteen.errs > 0 {
		t.Errorf("%d errors from a pool without a wait timeout", sixteen.errs)
	}
}

func TestPoolWithTimeoutRefusesWaitersOnlyPastIt(t *testing.T) {
	b := Pool(2, 20*ms, 80*ms, "connection pool exhausted")
	two := drive(t, b, b.Ops(), 2, 0, window)
	if two.errs > 0 {
		t.Errorf("%d errors at 2 users with 2 slots: nobody should wait", two.errs)
	}
	// 16 users on 2 slots of 20 ms: a wait of about 140 ms, past 80 ms.
	many := drive(t, b, b.Ops(), 16, 0, window)
	if share := float64(many.errs) / float64(many.errs+many.ok); share < 0.2 {
		t.Errorf("error share at 16 users %.2f: want most waiters refused", share)
	}
	if len(many.bodies) == 0 || !strings.Contains(many.bodies[0], "connection pool exhausted") {
		t.Errorf("error bodies %q: want the pool's text", many.bodies)
	}
}

func TestRetrogradeFallsPastItsPeak(t *testing.T) {
	b := Retrograde(10*ms, 0.05)
	var xs []float64
	for _, n := range []int{1, 4, 16} {
		xs = append(xs, drive(t, b, b.Ops(), n, 0, window).x)
	}
	// X(n) = n / (10 ms · (1 + 0.05·n(n−1))): 100, 248, 123 req/s.
	if xs[1] < 1.5*xs[0] {
		t.Errorf("throughput %v: want a rise from 1 to 4 users", xs)
	}
	if xs[2] > 0.8*xs[1] {
		t.Errorf("throughput %v: want a fall of at least 20 %% from 4 to 16 users", xs)
	}
}

func TestLaneGrowsTheTailNotTheMedian(t *testing.T) {
	b := Lane(5*ms, 0.1, 1, 40*ms)
	// The lane's load: a tenth of about 2/55 ms at 2 users (ρ ≈ 0.15), of
	// 14/55 ms at 14 (ρ ≈ 1): its queue, and the tail, grow.
	low := drive(t, b, b.Ops(), 2, 50*ms, 2*window)
	high := drive(t, b, b.Ops(), 14, 50*ms, 2*window)
	t.Logf("p50 %s, slowest 5 %% %s at 2 users; %s, %s at 14", low.p50, low.tail, high.p50, high.tail)
	if high.p50 > 3*low.p50 {
		t.Errorf("p50 %s at 14 users, %s at 2: want the median to stay", high.p50, low.p50)
	}
	if high.tail < 60*ms {
		t.Errorf("mean of the slowest 5 %% %s at 14 users (%s at 2): want the lane's queue to add half its 40 ms", high.tail, low.tail)
	}
}

func TestParallelScalesAndErrsAtItsShare(t *testing.T) {
	b := Parallel(20*ms, 0)
	one := drive(t, b, b.Ops(), 1, 0, window)
	sixteen := drive(t, b, b.Ops(), 16, 0, window)
	if sixteen.x < 8*one.x {
		t.Errorf("throughput at 16 users %.0f, at 1 %.0f: want it to scale", sixteen.x, one.x)
	}
	if sixteen.mean > 3*one.mean {
		t.Errorf("mean latency at 16 users %s, at 1 %s: want it flat", sixteen.mean, one.mean)
	}
	e := Parallel(5*ms, 0.3)
	got := drive(t, e, e.Ops(), 8, 0, window)
	if share := float64(got.errs) / float64(got.errs+got.ok); share < 0.2 || share > 0.4 {
		t.Errorf("error share %.2f of %d requests: want about 0.3", share, got.errs+got.ok)
	}
}

func TestGrowingSlowsWithTimeAtConstantLoad(t *testing.T) {
	b := Growing(5*ms, 100*time.Microsecond)
	first := drive(t, b, b.Ops(), 4, 0, 300*ms)
	later := drive(t, b, b.Ops(), 4, 0, 300*ms)
	// 5 ms + 0.1 ms per request served: after the ~150 requests of the
	// first drive, the second starts 15 ms slower.
	if later.mean < first.mean+5*ms {
		t.Errorf("mean latency %s then %s at the same 4 users: want it to grow with the requests served", first.mean, later.mean)
	}
}

func TestSlowOpOnlyTheReportQueues(t *testing.T) {
	b := SlowOp(5*ms, 20*ms)
	ops := b.Ops()
	// Each user sends items, search, report in turn.
	low := drive(t, b, ops, 1, 0, window)
	high := drive(t, b, ops, 12, 0, window)
	mean := func(l load, path string) time.Duration {
		var s time.Duration
		for _, d := range l.byOp[path] {
			s += d
		}
		if len(l.byOp[path]) == 0 {
			return 0
		}
		return s / time.Duration(len(l.byOp[path]))
	}
	if r0, r1 := mean(low, "/v1/report"), mean(high, "/v1/report"); r1 < 3*r0 {
		t.Errorf("report mean %s at 12 users, %s at 1: want it to queue", r1, r0)
	}
	if f0, f1 := mean(low, "/v1/items"), mean(high, "/v1/items"); f1 > 3*f0 {
		t.Errorf("items mean %s at 12 users, %s at 1: want it flat", f1, f0)
	}
}

func TestCPUBoundIsSerializedWithAnIdleGPU(t *testing.T) {
	b := CPUBound(10 * ms)
	one := drive(t, b, b.Ops(), 1, 0, window)
	four := drive(t, b, b.Ops(), 4, 0, window)
	// One worker spinning 10 ms a request: at most 100 req/s however many
	// wait (at 1 user the client's own time adds to it).
	if four.x > 112 {
		t.Errorf("throughput at 4 users %.0f req/s (at 1 user %.0f): want at most 1/10 ms = 100", four.x, one.x)
	}
	if four.mean < 3*one.mean {
		t.Errorf("mean latency at 4 users %s, at 1 user %s: want about 4 times", four.mean, one.mean)
	}
	u := scrapeUtil(t, b)
	if u > 10 {
		t.Errorf("GPU utilisation %.1f %%: want an idle GPU", u)
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
	ops := b.Ops()
	one := drive(t, b, ops, 1, 0, 2*window)
	four := drive(t, b, ops, 4, 0, 2*window)
	scrapeUtil(t, b) // start a fresh utilisation window
	sixteen := drive(t, b, ops, 16, 0, 2*window)
	util := scrapeUtil(t, b)
	// One sequence: 4 steps of 12 ms (21 req/s); four: 4 steps of 18 ms,
	// so 4 per 72 ms (56 req/s); beyond 4 users the same.
	if four.x < 2*one.x {
		t.Errorf("throughput at 4 users %.0f, at 1 %.0f: want the batch to fill", four.x, one.x)
	}
	if sixteen.x > 1.25*four.x {
		t.Errorf("throughput at 16 users %.0f, at 4 %.0f: want a plateau at 4 slots", sixteen.x, four.x)
	}
	if util < 90 {
		t.Errorf("GPU utilisation %.1f %% with every slot full: want ≥ 90", util)
	}

	srv := httptest.NewServer(b)
	defer srv.Close()
	resp, err := http.Post(srv.URL+ops[0].Path, "application/json", strings.NewReader(ops[0].Body))
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
