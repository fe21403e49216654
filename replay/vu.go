package replay

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// scenarioRun is one scenario in flight: its stage timeline, pool and the
// shared pieces (client, sink) its virtual users use.
type scenarioRun struct {
	name   string
	sc     *Scenario
	sp     *servicePool
	tgt    *target
	rp     *runState
	stages []stageWindow
	ops    []string  // mix operations, sorted
	cum    []float64 // cumulative mix weights over ops
	active atomic.Int32
	search *searchRun // a capacity search (search.go): its stages are laid as it goes
}

// stageWindow is one stage's place on the wall clock, and its context,
// which ends at the stage's end: whatever is in flight then is cut off.
type stageWindow struct {
	idx        int // 0-based
	users      int // whole-run users (closed, sessions)
	shardUsers int // users of this shard
	rate       float64
	start, end time.Time
	ctx        context.Context
	// sendCtx is what requests of users leaving at this stage's end run
	// under: it ends at the stage's end, but neither at the run's limit
	// nor (for the last stage) at the timeline's end, where awaitEnd
	// writes what is in flight as cut off in one batch (cutoff.go).
	sendCtx context.Context
	cancel  context.CancelFunc
}

// vuSeed derives a virtual user's random stream from the run seed, the
// scenario and the user's index, never from the shard, so that user k makes
// the same choices whichever machine runs it.
func vuSeed(seed int64, scenario string, idx int) (uint64, uint64) {
	h := fnv.New64a()
	h.Write([]byte(scenario))
	return uint64(seed), h.Sum64() ^ uint64(idx)*0x9E3779B97F4A7C15
}

func (s *scenarioRun) newRand(idx int) *rand.Rand {
	a, b := vuSeed(s.rp.opts.Seed, s.name, idx)
	return rand.New(rand.NewPCG(a, b))
}

// pickOp draws an operation by weight: always exactly one draw.
func (s *scenarioRun) pickOp(rng *rand.Rand) string {
	u := rng.Float64() * s.cum[len(s.cum)-1]
	for i, c := range s.cum {
		if u < c {
			return s.ops[i]
		}
	}
	return s.ops[len(s.ops)-1]
}

// think draws the pause after a request, scaled by --time-scale. It always
// draws once from rng so that the stream stays aligned across shards.
func (s *scenarioRun) think(rng *rand.Rand, e *entry) time.Duration {
	u := rng.Float64()
	t := s.sc.Think
	var d time.Duration
	switch {
	case len(t.Uniform) == 2:
		lo, hi := t.Uniform[0].D(), t.Uniform[1].D()
		d = lo + time.Duration(u*float64(hi-lo))
	case t.Exponential > 0:
		d = time.Duration(-math.Log(1-u) * float64(t.Exponential))
	case t.Constant > 0:
		d = t.Constant.D()
	case t.AsRecorded || s.sc.Mode == ModeSessions:
		if e != nil {
			d = e.thinkAfter
		}
	}
	return time.Duration(float64(d) * s.rp.scale)
}

// vu is one virtual user.
type vu struct {
	s    *scenarioRun
	idx  int
	rng  *rand.Rand
	iter int64
	mcp  *mcpState

	inflight int32 // open mode: requests in flight when this arrival started

	// ctx is what the request being sent runs under: it ends when the user
	// stops, cutting the request off.
	ctx context.Context
}

// runVU is a closed- or sessions-mode virtual user for the whole scenario;
// it ends after the last stage in which its index is active, or when the run
// is cancelled.
func (s *scenarioRun) runVU(idx int) {
	v := &vu{s: s, idx: idx, rng: s.newRand(idx)}
	var sess []*entry
	pos := 0
	if s.sc.Mode == ModeSessions {
		sess = s.sp.sessions[s.rp.sessionOf(s.name, len(s.sp.sessions), idx)]
	}
	var nextAt time.Time
	prevUsers := 0
	for k := range s.stages {
		st := &s.stages[k]
		if idx >= st.users {
			prevUsers = st.users
			continue
		}
		// A user new in this stage starts by the spawn rate; one carried over
		// keeps the think it was in.
		if idx >= prevUsers || nextAt.Before(st.start) {
			at := st.start
			if idx >= prevUsers && s.sc.SpawnRate > 0 {
				at = at.Add(time.Duration(float64(idx-prevUsers) / s.sc.SpawnRate * float64(time.Second) * s.rp.scale))
			}
			if nextAt.Before(at) {
				nextAt = at
			}
		}
		prevUsers = st.users
		// A request in flight at the stage's end runs on while its user
		// stays active in the next stage; it is cut off only when the user
		// stops (a smaller stage, the last stage's end, the run's end).
		last := k
		for last+1 < len(s.stages) && idx < s.stages[last+1].users {
			last++
		}
		reqCtx := s.stages[last].sendCtx
		// A user counts as active from its first request of the stage (not
		// while it waits for its spawn time) until it leaves the stage.
		counted := false
		// reqCtx ends with its stage too, on a timer of its own that may
		// fire first: a user must not go on sending into it.
		for st.ctx.Err() == nil && reqCtx.Err() == nil {
			if !sleepUntil(st.ctx, nextAt) {
				break
			}
			if !counted {
				s.active.Add(1)
				counted = true
			}
			var e *entry
			var op string
			if sess != nil {
				e = sess[pos]
				op = e.ex.Operation
			} else {
				op = s.pickOp(v.rng)
				if op == SandboxProbe {
					e = nil
				} else {
					es := s.sp.ops[op]
					e = es[v.rng.IntN(len(es))]
				}
			}
			probeIdx := v.rng.IntN(len(traversalPaths))
			d := s.think(v.rng, e)
			// Sent from this goroutine: a hand-off to a sender goroutine
			// measured twice the send-lag p99 (one more wait for the
			// scheduler) in `loadtape demo`.
			end := v.do(st, reqCtx, op, e, nextAt, probeIdx)
			if sess != nil {
				pos++
				if pos == len(sess) {
					pos = 0
					v.iter++
				}
			} else {
				v.iter++
			}
			// The pause starts when the response ended, not when this
			// goroutine got round to it, so scheduling delay shows as lag.
			nextAt = end.Add(d)
		}
		if counted {
			s.active.Add(-1)
		}
		if s.rp.ctx.Err() != nil {
			return
		}
	}
}

// sleepUntil waits for t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// base fills the fields every row of this user in stage st shares.
func (v *vu) base(st *stageWindow, op string, e *entry, intended time.Time) captures.Result {
	r := captures.Result{
		Run:         v.s.rp.id,
		Scenario:    v.s.name,
		Stage:       int32(st.idx + 1),
		StageName:   v.s.sc.Stages[st.idx].Name,
		StageUsers:  int32(st.users),
		VU:          int32(v.idx),
		Iteration:   v.iter,
		Operation:   op,
		Service:     v.s.sc.Service,
		IntendedNS:  intended.UnixNano(),
		ActiveUsers: v.s.active.Load(),
	}
	if v.idx < 0 {
		r.StageUsers = int32(math.Round(st.rate))
		r.ActiveUsers = v.inflight
	}
	if e != nil {
		r.SourceID = e.ex.ID
	}
	return r
}

// unsent is the row of an arrival that was never sent: it starts when it
// was due and carries why.
func (v *vu) unsent(st *stageWindow, op string, e *entry, at time.Time, kind, msg string) *captures.Result {
	r := v.base(st, op, e, at)
	r.StartNS = r.IntendedNS
	r.ErrorKind, r.Error = kind, msg
	return &r
}

// do sends one operation (and, for MCP, whatever handshake it needs), one
// result row per request sent. It returns when the last response ended.
func (v *vu) do(st *stageWindow, ctx context.Context, op string, e *entry, intended time.Time, probeIdx int) time.Time {
	s := v.s
	v.ctx = ctx
	if op == SandboxProbe {
		return v.doMCP(st, op, s.sp.probe.ex, s.sp.probe.body(probeIdx), intended, true)
	}
	x := e.ex
	if x.RPCMethod != "" {
		return v.doMCP(st, op, x, x.ReqBody, intended, false)
	}
	if e.stream {
		return v.openStream(st, op, e, intended)
	}
	if isMCPDelete(x) {
		return v.endMCP(st, op, e, intended)
	}
	r := v.base(st, op, e, intended)
	o := &outgoing{method: x.Method, url: s.tgt.url(x), header: headers(x, s.rp.headers), body: x.ReqBody}
	resp := send(v.ctx, s.rp.client, s.rp.timeout, o, &r)
	judge(&r, resp, x.Status, s.sc.Checks, s.rp.profile.Classify, false)
	s.rp.sink.put(&r)
	return endOf(&r)
}

// endOf is when a request's last byte (or its failure) came.
func endOf(r *captures.Result) time.Time { return time.Unix(0, r.StartNS+r.DurationNS) }

func newPCG(a, b uint64) *rand.Rand { return rand.New(rand.NewPCG(a, b)) }
