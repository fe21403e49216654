package replay

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// runOpen drives an open-mode scenario: arrivals at each stage's rate,
// independent of how fast responses come. Every arrival is drawn from one
// seeded stream (gap, operation, exchange, probe path), and shard I of N
// sends arrivals I-1, I-1+N, ..., so the shards together send exactly the
// unsharded schedule. An arrival finding max_in_flight requests already
// out is written as `dropped`, never silently skipped. It returns when the
// last stage ends and its requests are done or cut off.
func (s *scenarioRun) runOpen() {
	var inflight atomic.Int32
	var wg sync.WaitGroup
	states := &mcpPool{}
	shard, of := s.rp.shard.i-1, s.rp.shard.n
	// Arrivals are independent of stages: one in flight at a stage's end
	// runs on, and only the scenario's (or the run's) end cuts it off.
	reqCtx := s.stages[len(s.stages)-1].ctx
	for k := range s.stages {
		st := &s.stages[k]
		h := fnv.New64a()
		h.Write([]byte(s.name))
		rng := rand.New(rand.NewPCG(uint64(s.rp.opts.Seed), h.Sum64()^uint64(k+1)<<48))
		gap := float64(time.Second) / st.rate
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
			if !sleepUntil(st.ctx, at) {
				break
			}
			v := &vu{s: s, idx: -1, iter: i}
			n := inflight.Add(1)
			if n > int32(s.sc.MaxInFlight) {
				inflight.Add(-1)
				v.inflight = n - 1
				r := v.base(st, op, e, at)
				r.StartNS = r.IntendedNS
				r.ErrorKind, r.Error = captures.ErrDropped, "dropped: max_in_flight reached"
				s.rp.sink.put(&r)
				continue
			}
			v.inflight = n
			wg.Add(1)
			go func(at time.Time) {
				defer wg.Done()
				defer inflight.Add(-1)
				if e != nil && e.ex.RPCMethod == "" {
					v.do(st, reqCtx, op, e, at, probeIdx)
					return
				}
				// MCP in open mode: borrow an idle live session, or start one.
				v.mcp = states.get()
				v.do(st, reqCtx, op, e, at, probeIdx)
				states.put(v.mcp)
			}(at)
		}
		// Wait for the stage's end even when the schedule ran out early.
		<-st.ctx.Done()
		if s.rp.ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
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
