package replay

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"unsafe"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// A run's end (its limit, a signal, the timeline's end) cuts off every
// request in flight. Cancelling them one by one is what kept a run of
// thousands of users seconds past --max-run: every cancelled request
// closes its connection through the HTTP transport's locks, and on a
// 2-core machine (with the target on it too) 15,000 users needed more than
// 3 s for that, and the run's own last steps waited behind them for a
// processor. So requests run under a context the run's end does not cancel
// (runState.sendCtx); at the end the rows of what is in flight are written
// at once, from the record kept when each was sent, and the requests are
// cancelled only after the run's files are closed.

// unwindDelay is how long after Run returns the requests still in flight
// are cancelled. Cancelled at once, thousands of them unwinding took the
// processors from the command's last steps (printing its summary and
// exiting) for a second and more on a busy 2-core machine; a caller that
// goes on has them end shortly after.
const unwindDelay = time.Second

// inflight is the record of the requests being sent: each request's row
// and its start as sent, by the row it is measured into. put removes a
// row; seal turns every row still here into a cut-off row. It keeps only
// the start, not a copy of the row: the fields a cut-off row carries
// (sentFields) are all set before the request is sent and never change
// while it is in flight, and the map's lock orders their writes before
// the cut's reads. It is split in shards by row so that thousands of
// users sending at once rarely wait on one another.
type inflight struct{ shards [64]inflightShard }

type inflightShard struct {
	mu   sync.Mutex
	rows map[*captures.Result]int64 // the row → its StartNS when sent
}

func (f *inflight) shard(r *captures.Result) *inflightShard {
	return &f.shards[(uintptr(unsafe.Pointer(r))>>6)%uintptr(len(f.shards))]
}

func (f *inflight) add(r *captures.Result) {
	sh := f.shard(r)
	sh.mu.Lock()
	if sh.rows == nil {
		sh.rows = make(map[*captures.Result]int64)
	}
	sh.rows[r] = r.StartNS
	sh.mu.Unlock()
}

func (f *inflight) remove(r *captures.Result) {
	sh := f.shard(r)
	sh.mu.Lock()
	delete(sh.rows, r)
	sh.mu.Unlock()
}

// inflightKey carries a run's inflight record in the requests' context,
// so that every request sent under it is recorded without each sender
// passing it on.
type inflightKey struct{}

func withInflight(ctx context.Context, f *inflight) context.Context {
	return context.WithValue(ctx, inflightKey{}, f)
}

// sending records r, its start time and BytesOut set, as in flight when
// ctx is a run's context; otherwise (tests sending one request) it does
// nothing.
func sending(ctx context.Context, r *captures.Result) {
	if f, ok := ctx.Value(inflightKey{}).(*inflight); ok {
		f.add(r)
	}
}

// sentRow is the row of a request in flight as it was when sent: the
// fields set before sending (vu.base and BytesOut) and its start. The
// others are the measurement, written while the request runs.
// TestSentFieldsAreNamed keeps this list and captures.Result in step.
func sentRow(p *captures.Result, start int64) captures.Result {
	return captures.Result{
		Run: p.Run, Scenario: p.Scenario, Stage: p.Stage, StageName: p.StageName,
		StageUsers: p.StageUsers, VU: p.VU, Iteration: p.Iteration, Operation: p.Operation,
		Service: p.Service, SourceID: p.SourceID, IntendedNS: p.IntendedNS,
		ActiveUsers: p.ActiveUsers, BytesOut: p.BytesOut, StartNS: start,
	}
}

// cutRows empties the record and returns every row in it as cut off at
// at, with why it was cut off, and the rows' pointers: their users may
// still put them.
func (f *inflight) cutRows(at time.Time, why string) ([]captures.Result, map[*captures.Result]struct{}) {
	n := 0
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		n += len(sh.rows)
		sh.mu.Unlock()
	}
	rows := make([]captures.Result, 0, n)
	cut := make(map[*captures.Result]struct{}, n)
	msg := "cut off: " + why
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		for p, start := range sh.rows {
			cut[p] = struct{}{}
			r := sentRow(p, start)
			if d := at.UnixNano() - r.StartNS; d > 0 {
				r.DurationNS = d
			}
			r.ErrorKind, r.Error = runspec.ErrCutOff, msg
			rows = append(rows, r)
		}
		sh.rows = nil
		sh.mu.Unlock()
	}
	return rows, cut
}

// awaitEnd waits for done (every scenario returned), the run context's
// end or the timeline's end, whichever comes first; at either end the
// requests still in flight are written as cut off in one batch
// (sink.seal), without waiting for them. It returns when the run ended.
func awaitEnd(runCtx context.Context, timelineEnd time.Time, done <-chan struct{}, sk *sink) time.Time {
	tm := time.NewTimer(time.Until(timelineEnd))
	defer tm.Stop()
	select {
	case <-done:
		return time.Now()
	case <-runCtx.Done():
	case <-tm.C:
	}
	cut := time.Now()
	why := context.DeadlineExceeded.Error() // what a stage's own end gives its requests
	if runCtx.Err() != nil {
		why = context.Cause(runCtx).Error()
	}
	endGC()
	sk.seal(cut, why)
	return cut
}

// dispatchGrace bounds the wait for open-mode dispatchers after the end:
// each has only rows of arrivals already due left to write, without
// sending, which takes milliseconds unless the processor is starved.
const dispatchGrace = 2 * time.Second

// waitAtMost waits for wg, for d at most.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-done:
	case <-tm.C:
	}
}

// endGC turns the collector off for what is left of a run after its end,
// where tuneGC set it (Run's end restores it): the cut-off rows and the
// files' last pages allocate little, but a collection then scans the
// stacks of every user and connection (40,000 goroutines at 15,000 users),
// and its assists made writing 12,000 cut-off rows take 2–4 s on a busy
// 2-core machine.
func endGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(-1)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// stageSendCtx is a stage's sendCtx: it ends at the stage's end, except
// for the stage that ends the run (last), whose requests only the run's
// end cuts off. A scenario that ends before others cuts its own requests
// off at its end.
func stageSendCtx(parent context.Context, end time.Time, last bool) (context.Context, context.CancelFunc) {
	if last {
		return context.WithCancel(parent)
	}
	return context.WithDeadline(parent, end)
}

func joinCancel(a, b context.CancelFunc) context.CancelFunc {
	return func() { a(); b() }
}

// stagesEnd is when the last laid stage of any selected scenario ends,
// from t0 (a capacity search lays its stages as it goes).
func (p *plan) stagesEnd(t0 time.Time) time.Time {
	end := t0
	for _, name := range p.scenarios {
		at := t0
		for _, st := range p.profile.Scenarios[name].Stages {
			at = at.Add(time.Duration(float64(st.Duration) * p.scale))
		}
		if at.After(end) {
			end = at
		}
	}
	return end
}

// timelineEnd is when the last stage of any scenario ends.
func timelineEnd(runs []*scenarioRun) time.Time {
	var end time.Time
	for _, s := range runs {
		if n := len(s.stages); n > 0 && s.stages[n-1].end.After(end) {
			end = s.stages[n-1].end
		}
		if s.search != nil && s.search.latest.After(end) {
			end = s.search.latest // search.go: its stages are laid as it goes
		}
	}
	return end
}
