package replay

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
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
	turns  *turns     // closed users past the connection cap take turns; nil below it
	prep   prepared   // each exchange's request, built once (send.go)
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

// closedUser is a closed- or sessions-mode virtual user on its way through
// the scenario's stages. Between requests it holds no goroutine: a user
// that thinks (or waits for its spawn time) is this struct and a stopped
// or armed timer, whose callback goes on in a goroutine of its own. A
// parked goroutine per user kept the stack its last request had grown
// (8 KiB and more) for the whole think: 15,000 users thinking 2–5 s held
// 7–10 KiB of stack each, and at 100,000 users the stacks alone neared a
// gigabyte (BenchmarkClosedUsersThinking).
//
// Its fields belong to whichever goroutine runs resume: the timer's
// callback starts only after the goroutine that armed it stopped touching
// them, and the stages' watchers (watchStages) touch only the timer.
type closedUser struct {
	v         *vu
	sess      []*entry // sessions mode: the captured session it clones
	pos       int      // next request in sess
	k         int      // the stage it is in; len(stages) once it ended
	entered   bool     // stage k's start is laid out (nextAt, reqCtx)
	prevUsers int      // users of the stage before k
	nextAt    time.Time
	reqCtx    context.Context
	counted   bool        // counted in active for stage k
	turn      bool        // holds one of the scenario's turns (turns)
	wake      *time.Timer // armed while the user waits; its callback resumes it
	// parked is bumped just before wake is armed and read by a watcher
	// that stopped it: the timer's lock orders the two already, but the
	// race detector sees only a fired timer's hand-over, not Stop's.
	parked atomic.Uint32
	done   func() // called once, when the user ends
}

// turns bounds how many of a scenario's closed users send at once, when it
// has more users than the transport opens connections (connLimit): a user
// due to send past that waits in a queue, holding no goroutine, until a
// user that was sending hands it its turn; the wait shows as send lag. A
// run of 100,000 users thinking 2–5 s on a loaded machine otherwise had
// 67,000 requests waiting inside the transport at once, each with its
// goroutine and request, and peaked at 2.4 GB.
type turns struct {
	mu      sync.Mutex
	free    int
	waiting []*closedUser // FIFO: waiting[head:]
	head    int
}

// take gives u a turn, or queues it and reports false: then the caller
// must not touch u, which handOn resumes holding a turn.
func (t *turns) take(u *closedUser) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.free > 0 {
		t.free--
		return true
	}
	t.waiting = append(t.waiting, u)
	return false
}

// handOn passes a turn that ended to the longest-waiting user, resumed in
// a goroutine of its own, or keeps it.
func (t *turns) handOn() {
	t.mu.Lock()
	if t.head == len(t.waiting) {
		t.free++
		t.mu.Unlock()
		return
	}
	u := t.waiting[t.head]
	t.waiting[t.head] = nil
	t.head++
	if t.head > 1024 && t.head*2 > len(t.waiting) {
		t.waiting = append(t.waiting[:0], t.waiting[t.head:]...)
		t.head = 0
	}
	t.mu.Unlock()
	u.turn = true
	go u.resume()
}

// drain resumes every queued user without a turn: at a stage's end they
// leave the stage (and queue again if they go on in the next).
func (t *turns) drain() {
	t.mu.Lock()
	q := t.waiting[t.head:]
	t.waiting, t.head = nil, 0
	t.mu.Unlock()
	for _, u := range q {
		go u.resume()
	}
}

// newClosedUser makes user idx; done is called when it ends.
func (s *scenarioRun) newClosedUser(idx int, done func()) *closedUser {
	u := &closedUser{v: &vu{s: s, idx: idx, rng: s.newRand(idx)}, done: done}
	if s.sc.Mode == ModeSessions {
		u.sess = s.sp.sessions[s.rp.sessionOf(s.name, len(s.sp.sessions), idx)]
	}
	u.wake = time.AfterFunc(time.Duration(math.MaxInt64), u.resume)
	u.wake.Stop()
	return u
}

// watchStages wakes the waiting users when a stage ends, as a goroutine
// per stage, each of which ends when its stage does: a user waiting in
// that stage goes on into the next one (keeping the think it was in) or
// ends. A user the watcher wakes while it waits in a later stage only
// waits again.
func (s *scenarioRun) watchStages(users []*closedUser) {
	for k := range s.stages {
		st := &s.stages[k]
		go func() {
			<-st.ctx.Done()
			if s.turns != nil {
				s.turns.drain()
			}
			for _, u := range users {
				if u.wake.Stop() {
					u.parked.Load()
					go u.resume()
				}
			}
		}()
	}
}

// resume runs the user from where it stopped until it must wait (its
// timer armed) or it ends: after the last stage in which its index is
// active, or when the run is cancelled.
func (u *closedUser) resume() {
	v := u.v
	s := v.s
	for {
		if u.k >= len(s.stages) {
			u.done()
			return
		}
		st := &s.stages[u.k]
		if !u.entered {
			if v.idx >= st.users {
				u.prevUsers = st.users
				u.k++
				continue
			}
			u.enter(st)
		}
		// reqCtx ends with its stage too, on a timer of its own that may
		// fire first: a user must not go on sending into it.
		if st.ctx.Err() != nil || u.reqCtx.Err() != nil {
			u.leave()
			continue
		}
		if d := time.Until(u.nextAt); d > 0 {
			if u.wait(st, d) {
				return
			}
			continue
		}
		if s.turns != nil && !u.turn {
			if !s.turns.take(u) {
				return
			}
			u.turn = true
		}
		// A user counts as active from its first request of the stage (not
		// while it waits for its spawn time) until it leaves the stage.
		if !u.counted {
			s.active.Add(1)
			u.counted = true
		}
		var e *entry
		var op string
		if u.sess != nil {
			e = u.sess[u.pos]
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
		end := v.do(st, u.reqCtx, op, e, u.nextAt, probeIdx)
		u.endTurn()
		if u.sess != nil {
			u.pos++
			if u.pos == len(u.sess) {
				u.pos = 0
				v.iter++
			}
		} else {
			v.iter++
		}
		// The pause starts when the response ended, not when this
		// goroutine got round to it, so scheduling delay shows as lag.
		u.nextAt = end.Add(d)
	}
}

// enter lays out the user's start in stage st: a user new in this stage
// starts by the spawn rate; one carried over keeps the think it was in.
func (u *closedUser) enter(st *stageWindow) {
	s, idx := u.v.s, u.v.idx
	if idx >= u.prevUsers || u.nextAt.Before(st.start) {
		at := st.start
		if idx >= u.prevUsers && s.sc.SpawnRate > 0 {
			at = at.Add(time.Duration(float64(idx-u.prevUsers) / s.sc.SpawnRate * float64(time.Second) * s.rp.scale))
		}
		if u.nextAt.Before(at) {
			u.nextAt = at
		}
	}
	u.prevUsers = st.users
	// A request in flight at the stage's end runs on while its user
	// stays active in the next stage; it is cut off only when the user
	// stops (a smaller stage, the last stage's end, the run's end).
	last := u.k
	for last+1 < len(s.stages) && idx < s.stages[last+1].users {
		last++
	}
	u.reqCtx = s.stages[last].sendCtx
	u.counted = false
	u.entered = true
}

// endTurn gives the user's turn, if it holds one, to the next in line.
func (u *closedUser) endTurn() {
	if u.turn {
		u.turn = false
		u.v.s.turns.handOn()
	}
}

// leave takes the user out of its stage.
func (u *closedUser) leave() {
	s := u.v.s
	u.endTurn()
	if u.counted {
		s.active.Add(-1)
		u.counted = false
	}
	u.entered = false
	u.k++
	if s.rp.ctx.Err() != nil {
		u.k = len(s.stages)
	}
}

// wait arms the user's timer for d and reports true, after which the
// caller must not touch the user: the timer's callback, or the stage's
// watcher, resumes it. False when st ended meanwhile and the caller goes
// on itself: the watcher may have looked before the timer was armed.
func (u *closedUser) wait(st *stageWindow, d time.Duration) bool {
	t := u.wake
	u.parked.Add(1)
	if d >= paceKickMin {
		// The end of a think (or a spawn time) is a send time: the
		// process's waker makes the runtime run the timer when it is
		// due, not up to a millisecond later (pace.go).
		processWaker().kickSome(time.Now().Add(d))
	}
	t.Reset(d)
	if st.ctx.Err() != nil && t.Stop() {
		return false
	}
	return true
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
	resp := send(v.ctx, s.rp.client, s.rp.timeout, s.prep.outgoing(x, s.tgt, s.rp.headers), &r)
	judge(&r, resp, x.Status, s.sc.Checks, s.rp.profile.Classify, false)
	s.rp.sink.put(&r)
	return endOf(&r)
}

// endOf is when a request's last byte (or its failure) came.
func endOf(r *captures.Result) time.Time { return time.Unix(0, r.StartNS+r.DurationNS) }

func newPCG(a, b uint64) *rand.Rand { return rand.New(rand.NewPCG(a, b)) }
