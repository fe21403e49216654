// Package diagnose is the diagnosis benchmark: HTTP servers with a planted
// bottleneck of known kind (one request at a time, a pool, work that grows
// with the square of the requests in flight, a narrow lane for a tenth of
// the requests, a batching inference server, CPU work beside an idle GPU,
// one slow operation, a growing collection, random errors, healthy
// controls),
// driven through the real loadtape binary (record, replay, analyze), and a
// confusion matrix of the kinds planted against the kinds the analyser
// named.
//
// The servers wait with timers rather than burn CPU (except the CPU-bound
// family), so that on a small shared machine the replayer's timing stays
// honest and the planted shape is the only one.
package diagnose

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one operation of a server: what the recording client sends.
type Op struct {
	Method string
	Path   string
	Body   string // JSON request body, "" for none
}

// Behaviour is a planted server: its routes and the operations a client
// uses. Close stops its background goroutines (a batch scheduler).
type Behaviour interface {
	http.Handler
	Ops() []Op
	Close()
}

// sleepCtx waits d or until the client goes away; false when it went.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// sleepUntil waits until t or until the client goes away; false when it
// went.
func sleepUntil(r *http.Request, t time.Time) bool {
	return sleepCtx(r, time.Until(t))
}

// queue is c servers, first come first served, kept in virtual time: a
// request is given the server that frees first and the time its service
// ends, then waits until then. A late wake-up on a busy machine delays
// that response but not the next request's start (as a mutex handing over
// to a goroutine not yet scheduled would), so the queue's throughput stays
// c/service whatever the scheduler does. A client that goes away keeps
// its booking, as a request a server already took would.
type queue struct {
	mu   sync.Mutex
	free []time.Time // when each server is next free
}

func newQueue(c int) *queue { return &queue{free: make([]time.Time, c)} }

// reserve books service on the server free first for a request arriving
// at now. With maxWait > 0, a request that would wait longer books
// nothing and gets false.
func (q *queue) reserve(now time.Time, service, maxWait time.Duration) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	first := 0
	for i, f := range q.free {
		if f.Before(q.free[first]) {
			first = i
		}
	}
	start := q.free[first]
	if start.Before(now) {
		start = now
	}
	if maxWait > 0 && start.Sub(now) > maxWait {
		return time.Time{}, false
	}
	q.free[first] = start.Add(service)
	return q.free[first], true
}

// jittered spreads d uniformly over ±frac of it, so that no two requests
// take exactly the same time (a real service never does).
func jittered(d time.Duration, frac float64) time.Duration {
	if frac <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - frac + 2*frac*rand.Float64()))
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func ok(w http.ResponseWriter, what string) {
	answer(w, http.StatusOK, fmt.Sprintf(`{"ok":true,"result":%q}`, what))
}

// drain reads a request body so the connection can be reused.
func drain(r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
}

// plain is a Behaviour with one POST operation handled by fn.
type plain struct {
	op Op
	fn func(w http.ResponseWriter, r *http.Request)
	gpu
}

func (p *plain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" && p.gpu.serve(w) {
		return
	}
	drain(r)
	if r.URL.Path != p.op.Path {
		http.NotFound(w, r)
		return
	}
	p.fn(w, r)
}

func (p *plain) Ops() []Op { return []Op{p.op} }
func (p *plain) Close()    {}

var workOp = Op{Method: http.MethodPost, Path: "/v1/work", Body: `{"input":"planted"}`}

// Single handles one request at a time, first come first served: throughput
// is 1/service whatever the concurrency (serialization).
func Single(service time.Duration) Behaviour {
	q := newQueue(1)
	return &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		finish, _ := q.reserve(time.Now(), jittered(service, 0.1), 0)
		if sleepUntil(r, finish) {
			ok(w, "single")
		}
	}}
}

// Pool runs at most size requests at once, first come first served; the
// others wait for a slot. With waitTimeout > 0 a request that would wait
// longer is refused after waiting that long, with 503 and errText (a
// connection pool's "no connection available"); with 0 it waits as long as
// it takes (a throughput plateau at size/service).
func Pool(size int, service, waitTimeout time.Duration, errText string) Behaviour {
	q := newQueue(size)
	return &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		finish, admitted := q.reserve(now, jittered(service, 0.1), waitTimeout)
		if !admitted {
			if sleepUntil(r, now.Add(waitTimeout)) {
				answer(w, http.StatusServiceUnavailable, fmt.Sprintf(`{"error":{"message":%q}}`, errText))
			}
			return
		}
		if sleepUntil(r, finish) {
			ok(w, "pool")
		}
	}}
}

// Retrograde does work that grows with the square of the requests in
// flight: a request that finds n in flight (itself included) takes
// base·(1 + kappa·n·(n−1)), the Universal Scalability Law's coherency term
// with no contention. Throughput peaks near 1/√kappa users and falls after.
func Retrograde(base time.Duration, kappa float64) Behaviour {
	var inFlight atomic.Int64
	return &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		n := float64(inFlight.Add(1))
		defer inFlight.Add(-1)
		d := time.Duration(float64(base) * (1 + kappa*n*(n-1)))
		if sleepCtx(r, jittered(d, 0.1)) {
			ok(w, "retrograde")
		}
	}}
}

// Lane sends a share of the requests, drawn at random, through a lane of
// width slots taking laneService each; the others take service, unbounded
// in parallel. As load grows the lane queues: the median stays, the tail
// grows (tail_amplification).
func Lane(service time.Duration, share float64, width int, laneService time.Duration) Behaviour {
	lane := newQueue(width)
	return &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		if rand.Float64() >= share {
			if sleepCtx(r, jittered(service, 0.1)) {
				ok(w, "fast")
			}
			return
		}
		finish, _ := lane.reserve(time.Now(), jittered(laneService, 0.1), 0)
		if sleepUntil(r, finish) {
			ok(w, "lane")
		}
	}}
}

// Parallel takes service (±20 %) for every request, as many at once as
// come: a healthy service. errShare > 0 answers that share of requests,
// drawn at random, with a 500 at once (random errors at every load).
func Parallel(service time.Duration, errShare float64) Behaviour {
	return &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		if errShare > 0 && rand.Float64() < errShare {
			answer(w, http.StatusInternalServerError, `{"error":{"message":"internal error: request failed"}}`)
			return
		}
		if sleepCtx(r, jittered(service, 0.2)) {
			ok(w, "parallel")
		}
	}}
}

// CPUBound spins the CPU for work per request with one worker (a Python
// server's global lock, say) and serves an idle GPU's DCGM samples: its
// bottleneck is serialization on the CPU, never the GPU.
func CPUBound(work time.Duration) Behaviour {
	var mu sync.Mutex
	p := &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		spin(jittered(work, 0.1))
		mu.Unlock()
		ok(w, "cpu")
	}}
	p.gpu = gpu{on: true}
	return p
}

// spin keeps one core busy for d of wall time.
func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 1.0
	for i := 0; time.Now().Before(end); i++ {
		for j := 0; j < 1000; j++ {
			x = x*1.0000001 + 1e-9
		}
	}
	sink.Store(int64(x))
}

var sink atomic.Int64

// Growing keeps every request it served in a collection and scans it on
// each request: service = base + perItem·len(collection). At constant load
// latency grows with time (a leak, a table that grows: degradation).
func Growing(base, perItem time.Duration) Behaviour {
	var served atomic.Int64
	return &plain{op: workOp, fn: func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		if sleepCtx(r, jittered(base+time.Duration(n)*perItem, 0.1)) {
			ok(w, "growing")
		}
	}}
}

// slowOp serves three operations: two fast ones unbounded in parallel and
// a report operation serialized behind one lock.
type slowOp struct {
	fast, slow time.Duration
	report     *queue
}

// SlowOp: GET /v1/items and POST /v1/search take fast each, in parallel;
// POST /v1/report takes slow, one at a time. Only the report operation's
// latency grows with users.
func SlowOp(fast, slow time.Duration) Behaviour {
	return &slowOp{fast: fast, slow: slow, report: newQueue(1)}
}

// SlowOpName is the operation name loadtape records for the slow operation.
const SlowOpName = "POST /v1/report"

func (s *slowOp) Ops() []Op {
	return []Op{
		{Method: http.MethodGet, Path: "/v1/items"},
		{Method: http.MethodPost, Path: "/v1/search", Body: `{"q":"planted"}`},
		{Method: http.MethodPost, Path: "/v1/report", Body: `{"period":"day"}`},
	}
}

func (s *slowOp) Close() {}

func (s *slowOp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	drain(r)
	switch r.URL.Path {
	case "/v1/items", "/v1/search":
		if sleepCtx(r, jittered(s.fast, 0.2)) {
			ok(w, "fast")
		}
	case "/v1/report":
		finish, _ := s.report.reserve(time.Now(), jittered(s.slow, 0.1), 0)
		if sleepUntil(r, finish) {
			ok(w, "report")
		}
	default:
		http.NotFound(w, r)
	}
}
