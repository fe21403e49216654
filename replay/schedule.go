package replay

import (
	"context"
	"sync"
	"time"
)

// schedule lays every selected scenario's stages on the wall clock from t0,
// durations multiplied by the time scale.
func (p *plan) schedule(rp *runState, t0 time.Time) []*scenarioRun {
	var runs []*scenarioRun
	runEnd := p.stagesEnd(t0)
	for _, name := range p.scenarios {
		sc := p.profile.Scenarios[name]
		s := &scenarioRun{name: name, sc: sc, sp: p.pool.service(sc.Service, sc.IncludeFailed), tgt: p.targets[sc.Service], rp: rp}
		s.ops = sortedKeys(sc.Mix)
		total := 0.0
		for _, op := range s.ops {
			total += sc.Mix[op]
			s.cum = append(s.cum, total)
		}
		if sc.Search != nil {
			s.search = p.newSearch(sc, t0)
			runs = append(runs, s)
			continue
		}
		at := t0
		for k, st := range sc.Stages {
			end := at.Add(time.Duration(float64(st.Duration) * p.scale))
			ctx, cancel := context.WithDeadline(rp.ctx, end)
			sendCtx, cancelSend := stageSendCtx(rp.sendCtx, end, k == len(sc.Stages)-1 && !end.Before(runEnd))
			cancel = joinCancel(cancel, cancelSend)
			s.stages = append(s.stages, stageWindow{idx: k, users: st.Users, shardUsers: shardCount(st.Users, p.shard),
				rate: st.Rate, start: at, end: end, ctx: ctx, sendCtx: sendCtx, cancel: cancel})
			at = end
		}
		runs = append(runs, s)
	}
	return runs
}

// runAll runs the scenarios side by side and returns when every one has
// ended (its last stage, or the run's context); then it releases the
// stages' contexts.
func runAll(runs []*scenarioRun) {
	var wg sync.WaitGroup
	for _, s := range runs {
		wg.Add(1)
		if s.search == nil && s.sc.Mode == ModeOpen {
			s.rp.dispatching.Add(1) // done in runOpen
		}
		go func() {
			defer wg.Done()
			s.run()
		}()
	}
	wg.Wait()
	for _, s := range runs {
		for k := range s.stages {
			s.stages[k].cancel()
		}
	}
}

// run drives a scenario to its end.
func (s *scenarioRun) run() {
	if s.search != nil {
		s.runSearch()
		return
	}
	if s.sc.Mode == ModeOpen {
		s.runOpen()
		return
	}
	maxUsers := 0
	for _, st := range s.stages {
		maxUsers = max(maxUsers, st.users)
	}
	fds := openFileLimit()
	if s.rp.opts.machine != nil { // a test's machine
		fds = s.rp.opts.machine.fds
	}
	if n := connLimitOf(fds); n > 0 && maxUsers/s.rp.shard.n > n {
		s.turns = &turns{free: n}
	}
	var wg sync.WaitGroup
	var users []*closedUser
	for idx := s.rp.shard.i - 1; idx < maxUsers; idx += s.rp.shard.n {
		if s.rp.ctx.Err() != nil {
			break // the run ended while users were still being started
		}
		wg.Add(1)
		u := s.newClosedUser(idx, wg.Done)
		users = append(users, u)
		go u.resume()
	}
	s.watchStages(users)
	wg.Wait()
	// Users inactive in the last stages return early: hold the scenario
	// until its timeline ends so the stage spans stay true.
	<-s.stages[len(s.stages)-1].ctx.Done()
}

// sessionOf assigns captured session indices to users: a seeded permutation
// of the M sessions, cycled, so N users clone M sessions evenly.
func (rp *runState) sessionOf(scenario string, m, idx int) int {
	v, ok := rp.perm.Load(scenario)
	if !ok {
		a, b := vuSeed(rp.opts.Seed, scenario, -1)
		p := newPCG(a, b).Perm(m)
		v, _ = rp.perm.LoadOrStore(scenario, p)
	}
	p := v.([]int)
	return p[idx%len(p)]
}

// spans are the stages as they ran: a stage an interruption cut short ends
// at the interruption; stages that never started are left out.
func spans(runs []*scenarioRun, ended time.Time) []StageSpan {
	var out []StageSpan
	for _, s := range runs {
		if s.search != nil {
			out = append(out, s.search.spans...)
			continue
		}
		for k, st := range s.stages {
			if st.start.After(ended) {
				break
			}
			end := st.end
			if end.After(ended) {
				end = ended
			}
			out = append(out, StageSpan{Scenario: s.name, Stage: k + 1, Name: s.sc.Stages[k].Name,
				Users: st.users, Rate: st.rate, Start: st.start, End: end})
		}
	}
	return out
}
