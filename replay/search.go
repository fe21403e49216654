package replay

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// Search is a scenario's capacity search: users raised stage by stage,
// doubling from From until the target fails (or Max passes), then halving
// the gap between the most users that met it and the fewest that did not.
type Search struct {
	// Target is one of the profile's targets: its 1-based index or its
	// label ("gateway p95").
	Target any         `yaml:"target" json:"target"`
	Users  SearchUsers `yaml:"users" json:"users"`

	target int // index into Profile.Targets, set by checkSearch
}

// SearchUsers bounds the users a search tries.
type SearchUsers struct {
	From int `yaml:"from" json:"from"`
	Max  int `yaml:"max" json:"max"`
}

// maxSearchUsers bounds a search's max, as a stage's users are bounded by
// the machine (the user-count limit checks the max like any stage).
const maxSearchUsers = 1_000_000

// maxSearchSteps bounds a search's stages: doubling from 1 to a million
// takes 21, bisecting what is left at most 20 more.
const maxSearchSteps = 64

// checkSearch checks every scenario's search, each error at its line.
func (p *Profile) checkSearch() error {
	for _, name := range p.ScenarioNames() {
		s := p.Scenarios[name]
		if s.Search == nil {
			continue
		}
		at := func(k ...any) []any { return append([]any{"scenarios", name, "search"}, k...) }
		sr := s.Search
		if s.Mode == ModeOpen {
			return p.errAt(at(), "scenario %q: search raises users: want mode closed or sessions, not open", name)
		}
		if len(s.Stages) != 1 {
			return p.errAt([]any{"scenarios", name, "stages"}, "scenario %q: a search wants one stage, whose duration each of its stages lasts (stages: [{duration: 30s}])", name)
		}
		if sr.Users.From < 1 || sr.Users.Max < sr.Users.From || sr.Users.Max > maxSearchUsers {
			return p.errAt(at("users"), "scenario %q: search users: want from >= 1 and from <= max <= %d, got from %d, max %d", name, maxSearchUsers, sr.Users.From, sr.Users.Max)
		}
		if u := s.Stages[0].Users; u != 0 && u != sr.Users.Max {
			return p.errAt([]any{"scenarios", name, "stages", 0}, "scenario %q: a search's stage takes its users from the search: leave users out (or write the max, %d)", name, sr.Users.Max)
		}
		// The stage as written holds the most users the search may reach,
		// so that the user-count limit checks it.
		s.Stages[0].Users = sr.Users.Max
		idx, err := p.searchTarget(sr.Target)
		if err != nil {
			return p.errAt(at("target"), "scenario %q: search target: %v", name, err)
		}
		t := p.Targets[idx]
		b, _ := t.Bound()
		switch {
		case t.Scenario != name:
			return p.errAt(at("target"), "scenario %q: search target %s judges scenario %q, want one of this scenario's", name, t.Label(), t.Scenario)
		case t.Users != 0 || t.Stage != 0:
			return p.errAt(at("target"), "scenario %q: search target %s judges one stage; want a target without users or stage", name, t.Label())
		case !runspec.LiveMetric(t.Metric, b.Max) || t.Metric == "count":
			return p.errAt(at("target"), "scenario %q: search target %s: replay judges each stage while it runs: want %s, not %s", name, t.Label(), "p50…max, ttfb_, ttft_, tpot_ and send_lag_ statistics, error_rate, rps or rpm", t.Metric)
		}
		sr.target = idx
	}
	return nil
}

// checkSearchShards refuses a search in a sharded run: each shard would
// judge its own share and raise its users apart from the others.
func (p *plan) checkSearchShards() error {
	if p.shard.n <= 1 {
		return nil
	}
	for _, name := range p.scenarios {
		if p.profile.Scenarios[name].Search != nil {
			return badInput(fmt.Errorf("--shard %d/%d: scenario %q searches for its capacity, which one process does alone: run it without --shard", p.shard.i, p.shard.n, name))
		}
	}
	return nil
}

// searchTarget resolves a search's target: a 1-based index or a label.
func (p *Profile) searchTarget(ref any) (int, error) {
	labels := ""
	for i, t := range p.Targets {
		if i > 0 {
			labels += ", "
		}
		labels += strconv.Itoa(i+1) + " (" + t.Label() + ")"
	}
	want := fmt.Errorf("want a target's number or label: %s", labels)
	if len(p.Targets) == 0 {
		return 0, fmt.Errorf("the profile has no targets: want one under targets: and its number or label here")
	}
	var n int
	switch v := ref.(type) {
	case uint64:
		n = int(min(v, uint64(len(p.Targets)+1)))
	case int64:
		n = int(max(min(v, int64(len(p.Targets)+1)), 0))
	case int:
		n = v
	case string:
		for i, t := range p.Targets {
			if t.Label() == v {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%q is no target's label; %w", v, want)
	default:
		return 0, fmt.Errorf("%v: %w", ref, want)
	}
	if n < 1 || n > len(p.Targets) {
		return 0, fmt.Errorf("%d: %w", n, want)
	}
	return n - 1, nil
}

// searchRun is a search as it runs: the stages it tried and their
// verdicts. The scenario's goroutine alone writes it while the run goes
// on; it is read after.
type searchRun struct {
	spec   *Search
	target runspec.Target
	judge  *liveJudge // handed over by watchAbort before the run starts
	logf   func(string, ...any)
	latest time.Time // no search runs past: maxSearchSteps stages and their judging
	spans  []StageSpan
	result runspec.SearchResult
}

// newSearch is the search of scenario sc, starting at t0.
func (p *plan) newSearch(sc *Scenario, t0 time.Time) *searchRun {
	step := time.Duration(float64(sc.Stages[0].Duration)*p.scale) + judgeGrace
	return &searchRun{spec: sc.Search, target: p.profile.Targets[sc.Search.target], latest: t0.Add(maxSearchSteps * step)}
}

// runSearch runs a search's stages one after another, each the scenario's
// stage duration long, until the gap between the most users that met the
// target and the fewest that failed it is one user, max met it, or the
// run ends.
func (s *scenarioRun) runSearch() {
	sr := s.search
	sr.result = runspec.SearchResult{Scenario: s.name, Target: sr.target.Label(), From: sr.spec.Users.From, Max: sr.spec.Users.Max}
	tmpl := s.sc.Stages[0]
	length := time.Duration(float64(tmpl.Duration) * s.rp.scale)
	lo, hi := 0, 0 // most users that met the target; fewest that failed (0: none yet)
	u := sr.spec.Users.From
	var stages []Stage
	for step := 1; step <= maxSearchSteps && s.rp.ctx.Err() == nil; step++ {
		name := fmt.Sprintf("search %d", step)
		if tmpl.Name != "" {
			name = tmpl.Name + " " + strconv.Itoa(step)
		}
		stages = append(stages, Stage{Users: u, Duration: tmpl.Duration, Name: name})
		sc := *s.sc
		sc.Stages = stages
		start := time.Now()
		end := start.Add(length)
		ctx, cancel := context.WithDeadline(s.rp.ctx, end)
		child := &scenarioRun{name: s.name, sc: &sc, sp: s.sp, tgt: s.tgt, rp: s.rp, ops: s.ops, cum: s.cum,
			stages: []stageWindow{{idx: step - 1, users: u, shardUsers: shardCount(u, s.rp.shard), start: start, end: end, ctx: ctx, cancel: cancel}}}
		// The search goes on after each stage: what is in flight at its end
		// is cut off then.
		sendCtx, cancelSend := stageSendCtx(s.rp.sendCtx, end, false)
		child.stages[0].sendCtx = sendCtx
		child.run()
		cancel()
		cancelSend()
		stopped := time.Now()
		if stopped.Before(end) {
			end = stopped // the run ended inside the stage
		}
		sr.spans = append(sr.spans, StageSpan{Scenario: s.name, Stage: step, Name: name, Users: u, Start: start, End: end})
		if s.rp.ctx.Err() != nil || !sr.judge.stageEnded(s.rp.ctx, &child.stages[0]) {
			break // a stage cut short is not judged
		}
		v := sr.judge.judge(sr.target, child, 0)
		sr.judge.forget(child, 0)
		met := v.Measured && ((v.Max && v.Value <= v.Bound) || (!v.Max && v.Value >= v.Bound))
		st := runspec.SearchStep{Stage: step, Users: u, Bound: v.Bound, Unit: v.Unit, Met: met}
		if v.Measured {
			val := v.Value
			st.Value = &val
		}
		sr.result.Steps = append(sr.result.Steps, st)
		verdict := "met"
		if !met {
			verdict = "missed"
		}
		sr.logf("search %s: %d users %s the target %s (%s)", s.name, u, verdict, sr.result.Target, v.text())
		if met {
			lo = u
		} else {
			hi = u
		}
		switch {
		case hi == 0 && u >= sr.spec.Users.Max:
			u = 0 // max met the target
		case hi == 0:
			u = min(2*u, sr.spec.Users.Max)
		case hi-lo <= 1:
			u = 0
		default:
			u = (lo + hi) / 2
		}
		if u == 0 {
			sr.result.Done = true
			break
		}
	}
	sr.result.Met, sr.result.Failed = lo, hi
}

// searchResults are the searches of the run, for run.json.
func searchResults(runs []*scenarioRun) []runspec.SearchResult {
	var out []runspec.SearchResult
	for _, s := range runs {
		if s.search != nil {
			out = append(out, s.search.result)
		}
	}
	return out
}
