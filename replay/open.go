package replay

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// runOpen drives an open-mode scenario: arrivals at each stage's rate,
// independent of how fast responses come. Every arrival is drawn from one
// seeded stream (gap, operation, exchange, probe path), and shard I of N
// sends arrivals I-1, I-1+N, ..., so the shards together send exactly the
// unsharded schedule. An arrival finding max_in_flight requests already
// out is written as `dropped`, never silently skipped. It returns when the
// last stage ends and its requests are done or cut off. Arrivals as
// recorded take their times from the capture instead (arrivals.go).
func (s *scenarioRun) runOpen() {
	o := s.newOpenRun()
	defer o.wait()
	defer s.rp.dispatching.Done() // before o.wait: the dispatching is over
	if s.sc.Arrivals == ArrivalsAsRecorded {
		s.runAsRecorded(o)
		return
	}
	shard, of := s.rp.shard.i-1, s.rp.shard.n
	for k := range s.stages {
		st := &s.stages[k]
		h := fnv.New64a()
		h.Write([]byte(s.name))
		rng := rand.New(rand.NewPCG(uint64(s.rp.opts.Seed), h.Sum64()^uint64(k+1)<<48))
		// The rate is the profile's: the time scale shortens the gaps
		// as it shortens think times, so the service sees the same
		// utilisation in a shorter run (and analyze scales the rate
		// bounds by the inverse).
		gap := float64(time.Second) / st.rate * s.rp.scale
		at := st.start
		for i := int64(0); ; i++ {
			g := gap
			if s.sc.Arrivals != "constant" {
				g = -math.Log(1-rng.Float64()) * gap
			}
			if i > 0 || s.sc.Arrivals != "constant" {
				at = at.Add(time.Duration(g))
			}
			op := s.pickOp(rng)
			var e *entry
			if op != SandboxProbe {
				es := s.sp.ops[op]
				e = es[rng.IntN(len(es))]
			}
			probeIdx := rng.IntN(len(traversalPaths))
			if !at.Before(st.end) {
				break
			}
			if int(i%int64(of)) != shard {
				continue
			}
			if !o.arrive(st, i, at, op, e, probeIdx) {
				break
			}
		}
		// Wait for the stage's end even when the schedule ran out early.
		<-st.ctx.Done()
		if s.rp.ctx.Err() != nil {
			break
		}
	}
}

// openRun is what the arrivals of one open-mode scenario share.
type openRun struct {
	s        *scenarioRun
	inflight atomic.Int32
	wg       sync.WaitGroup
	workers  *workers
	states   *mcpPool
	pace     *pacer // the dispatcher's clock
	// Arrivals are independent of stages: one in flight at a stage's end
	// runs on, and only the scenario's (or the run's) end cuts it off.
	reqCtx context.Context
}

func (s *scenarioRun) newOpenRun() *openRun {
	return &openRun{s: s, workers: newWorkers(s.sc.workerLimit(), s.sc.MaxInFlight+1), states: &mcpPool{}, pace: newPacer(),
		reqCtx: s.stages[len(s.stages)-1].sendCtx}
}

// wait returns when every arrival's request is done or cut off.
func (o *openRun) wait() {
	o.wg.Wait()
	o.workers.close()
}

// arrive waits for arrival i's time at, then hands it to a worker, or
// writes its row when it cannot be sent (due after its stage ended, or
// max_in_flight reached). false when the run stopped before it was due.
func (o *openRun) arrive(st *stageWindow, i int64, at time.Time, op string, e *entry, probeIdx int) bool {
	s := o.s
	if !o.pace.wait(st.ctx, at) {
		if time.Now().Before(at) {
			return false // not due yet: the run was stopped
		}
		// Due inside the stage, but this goroutine got to it only
		// after the stage ended (a busy CPU): one row all the same.
		v := &vu{s: s, idx: -1, iter: i}
		s.rp.sink.put(v.unsent(st, op, e, at, runspec.ErrCutOff, "cut off: the stage ended before it could be sent"))
		return true
	}
	n := o.inflight.Add(1)
	if n > int32(s.sc.MaxInFlight) {
		o.inflight.Add(-1)
		v := &vu{s: s, idx: -1, iter: i, inflight: n - 1}
		s.rp.sink.put(v.unsent(st, op, e, at, runspec.ErrDropped, "dropped: max_in_flight reached"))
		return true
	}
	o.wg.Add(1)
	// Counted with the dispatcher until it starts or writes its row: a
	// job queued for a worker at the run's end must write its row before
	// the run closes its files.
	s.rp.dispatching.Add(1)
	o.workers.run(openJob{o: o, st: st, i: i, at: at, op: op, e: e, probeIdx: probeIdx, inflight: n})
	return true
}

// openJob is one arrival handed to a worker: a value in the workers'
// queue, so that the hand-off allocates nothing on the dispatcher's side.
type openJob struct {
	o        *openRun
	st       *stageWindow
	i        int64
	at       time.Time
	op       string
	e        *entry
	probeIdx int
	inflight int32 // requests in flight with this one
}

// send runs the job on a worker.
func (j *openJob) send() {
	o, s := j.o, j.o.s
	defer o.wg.Done()
	defer o.inflight.Add(-1)
	v := &vu{s: s, idx: -1, iter: j.i, inflight: j.inflight}
	if s.rp.sink.isSealed() {
		s.rp.sink.put(v.unsent(j.st, j.op, j.e, j.at, runspec.ErrCutOff, "cut off: the run ended before it could be sent"))
		s.rp.dispatching.Done()
		return
	}
	s.rp.dispatching.Done()
	if j.e != nil && j.e.ex.RPCMethod == "" {
		v.do(j.st, o.reqCtx, j.op, j.e, j.at, j.probeIdx)
		return
	}
	// MCP in open mode: borrow an idle live session, or start one.
	v.mcp = o.states.get()
	v.do(j.st, o.reqCtx, j.op, j.e, j.at, j.probeIdx)
	o.states.put(v.mcp)
}

// mcpPool keeps idle live MCP sessions for open-mode arrivals.
type mcpPool struct {
	mu   sync.Mutex
	idle []*mcpState
}

func (p *mcpPool) get() *mcpState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		m := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return m
	}
	return nil
}

func (p *mcpPool) put(m *mcpState) {
	if m == nil || !m.ready {
		return
	}
	p.mu.Lock()
	p.idle = append(p.idle, m)
	p.mu.Unlock()
}

// workers runs open-mode requests on goroutines that live on between
// requests: a fresh goroutine per arrival would grow its stack through the
// HTTP client every time. Arrivals queue for a worker; a new worker starts
// when none is idle, up to limit. The limit matters when the machine, not
// the target, is the bottleneck: unbounded workers would each open a
// connection and the dial storm would starve the sending itself, while
// bounded ones keep the connections warm and let the queue show up as send
// lag (and max_in_flight as drops).
type workers struct {
	jobs  chan openJob
	idle  atomic.Int32
	count atomic.Int32
	limit int32
	wg    sync.WaitGroup
}

const workerIdle = 2 * time.Second

func newWorkers(limit, queue int) *workers {
	return &workers{jobs: make(chan openJob, queue), limit: int32(limit)}
}

func (w *workers) run(job openJob) {
	if w.idle.Load() == 0 && w.count.Load() < w.limit {
		w.count.Add(1)
		w.wg.Add(1)
		go w.loop(job)
		return
	}
	w.jobs <- job // never blocks: the queue holds every job that can be out at once
	if w.count.Load() == 0 {
		// The last worker ended between our look at idle and the send.
		w.count.Add(1)
		w.wg.Add(1)
		go w.loop(openJob{})
	}
}

// loop ends after workerIdle without work, or when close is called.
func (w *workers) loop(job openJob) {
	defer w.wg.Done()
	defer w.count.Add(-1)
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		if job.o != nil { // nil: only to wait for the queue
			job.send()
		}
		w.idle.Add(1)
		t.Reset(workerIdle)
		select {
		case j, ok := <-w.jobs:
			w.idle.Add(-1)
			if !ok {
				return
			}
			job = j
		case <-t.C:
			w.idle.Add(-1)
			return
		}
	}
}

// close lets every idle worker end and waits for them.
func (w *workers) close() {
	close(w.jobs)
	w.wg.Wait()
}

// DefaultOpenWorkers bounds the goroutines sending open-mode arrivals when
// a scenario does not set `workers`.
const DefaultOpenWorkers = 512

func (sc *Scenario) workerLimit() int {
	n := sc.Workers
	if n <= 0 {
		n = DefaultOpenWorkers
	}
	return min(n, sc.MaxInFlight)
}
