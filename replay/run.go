// Package replay turns captures into load: a profile's scenarios pick
// captured exchanges by weighted mix (closed and open mode) or whole captured
// sessions (sessions mode), rewrite them for live targets (hosts, headers,
// MCP sessions, JSON-RPC ids), send them from virtual users through a stage
// timeline, and measure every request into one result row. A run directory
// holds results-*.parquet, samples-*.parquet (from the monitor package) and
// run.json with the profile, targets and stage timeline for the analyser.
package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/monitor"
)

// Defaults of Options.
const (
	DefaultRequestTimeout = 60 * time.Second
	DefaultMonitorEvery   = time.Second
)

// Options configure a run. Zero values mean the defaults.
type Options struct {
	Captures    []string            // capture files, directories or globs
	Exchanges   []captures.Exchange // used instead of Captures when set (tests, the demo)
	Profile     *Profile            // the parsed profile; or
	ProfilePath string              // a profile file to load
	Targets     map[string]string   // service → base URL; every selected scenario's service needs one
	Headers     http.Header         // set on every request, replacing recorded ones
	Out         string              // run directory (created)
	Scenarios   []string            // scenario names to run; empty = all, concurrently

	Seed           int64
	Shard          string        // "I/N"; empty = 1/1
	TimeScale      float64       // multiplies durations and think times; 0 = 1
	RequestTimeout time.Duration // per request; 0 = DefaultRequestTimeout
	MaxRun         time.Duration // hard limit on the whole run; 0 = none

	Monitor      []string      // monitor sources: nvml, host, prom=URL
	MonitorEvery time.Duration // sample interval; 0 = DefaultMonitorEvery
	MetricsAddr  string        // serve live Prometheus metrics here when set
	Progress     io.Writer     // live view; a terminal gets progress bars; nil = none
	Version      string        // loadtape version for run.json

	// resultWriter replaces the Parquet results writer (benchmarks of a
	// slow disk).
	resultWriter rowWriter
}

// RunInfo is what a finished run reports; run.json holds the same and more.
type RunInfo struct {
	ID          string
	Dir         string
	Started     time.Time
	Ended       time.Time
	Interrupted bool
	Requests    int64 // result rows written
	Errors      int64 // rows with an error kind, cut-offs included
	CutOff      int64 // rows cut off by a stopping user or the run's end
	Stages      []StageSpan
}

// StageSpan is one stage's place on the timeline of a run.
type StageSpan struct {
	Scenario string    `json:"scenario"`
	Stage    int       `json:"stage"` // 1-based
	Name     string    `json:"name"`
	Users    int       `json:"users"`
	Rate     float64   `json:"rate"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
}

// runState is what every virtual user of a run shares.
type runState struct {
	ctx     context.Context
	opts    Options
	id      string
	profile *Profile
	client  *http.Client
	timeout time.Duration
	headers http.Header
	sink    *sink
	scale   float64
	shard   shardSpec
	perm    sync.Map // scenario → []int, sessions-mode assignment
}

type shardSpec struct{ i, n int }

func parseShard(s string) (shardSpec, error) {
	if s == "" {
		return shardSpec{1, 1}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return shardSpec{}, badInput(fmt.Errorf("--shard %q: want I/N with 1 <= I <= N", s))
	}
	return shardSpec{i, n}, nil
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

// plan is a run that passed every input check and has not sent anything.
type plan struct {
	opts      Options
	profile   *Profile
	pool      *Pool
	scenarios []string
	targets   map[string]*target
	shard     shardSpec
	scale     float64
}

// prepare checks everything that can be checked before a request is sent;
// every failure is an *InputError.
func prepare(opts Options) (*plan, error) {
	p := &plan{opts: opts}
	var err error
	if p.profile = opts.Profile; p.profile == nil {
		if opts.ProfilePath == "" {
			return nil, badInput(errors.New("replay: no profile (want --profile FILE)"))
		}
		if p.profile, err = LoadProfile(opts.ProfilePath); err != nil {
			return nil, err
		}
	}
	if p.shard, err = parseShard(opts.Shard); err != nil {
		return nil, err
	}
	if p.scale = opts.TimeScale; p.scale == 0 {
		p.scale = 1
	}
	if p.scale < 0 {
		return nil, badInput(fmt.Errorf("--time-scale %v: want > 0", opts.TimeScale))
	}
	if opts.Out == "" {
		return nil, badInput(errors.New("replay: no output directory (want --out DIR)"))
	}
	for _, s := range opts.Scenarios {
		for _, name := range strings.Split(s, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			if p.profile.Scenarios[name] == nil {
				return nil, badInput(fmt.Errorf("--scenario %q: not in the profile (it has: %s)", name, strings.Join(p.profile.ScenarioNames(), ", ")))
			}
			if !slices.Contains(p.scenarios, name) {
				p.scenarios = append(p.scenarios, name)
			}
		}
	}
	if len(p.scenarios) == 0 {
		p.scenarios = p.profile.ScenarioNames()
	}
	slices.Sort(p.scenarios)
	p.targets = map[string]*target{}
	for _, name := range p.scenarios {
		svc := p.profile.Scenarios[name].Service
		raw, ok := opts.Targets[svc]
		if !ok {
			return nil, badInput(fmt.Errorf("%w: scenario %q sends to service %q; add --target %s=URL (replay never sends to a recorded host)", ErrNoTarget, name, svc, svc))
		}
		t, err := parseTarget(svc, raw)
		if err != nil {
			return nil, err
		}
		p.targets[svc] = t
	}
	for svc, raw := range opts.Targets {
		if _, err := parseTarget(svc, raw); err != nil {
			return nil, err
		}
	}
	xs := opts.Exchanges
	if xs == nil {
		if len(opts.Captures) == 0 {
			return nil, badInput(errors.New("replay: no capture (want --captures PATH)"))
		}
		if xs, err = readCaptures(opts.Captures, p.services()); err != nil {
			return nil, err
		}
	}
	if len(xs) == 0 {
		return nil, badInput(fmt.Errorf("%w: %s", ErrEmptyCapture, strings.Join(opts.Captures, ", ")))
	}
	p.pool = NewPool(xs)
	for _, name := range p.scenarios {
		if err := p.pool.check(name, p.profile.Scenarios[name]); err != nil {
			return nil, badInput(err)
		}
	}
	return p, nil
}

func (p *plan) services() map[string]bool {
	m := map[string]bool{}
	for _, name := range p.scenarios {
		m[p.profile.Scenarios[name].Service] = true
	}
	return m
}

// readCaptures loads the exchanges of the services the run needs.
func readCaptures(paths []string, want map[string]bool) ([]captures.Exchange, error) {
	// Response bodies, headers and chunk timings are most of a capture's
	// bytes and replay needs none of them: leave them on disk.
	var cols []string
	for _, c := range captures.Columns(captures.KindExchanges) {
		if c != "resp_body" && c != "resp_headers" && c != "chunk_offsets_ns" {
			cols = append(cols, c)
		}
	}
	r, err := captures.NewReader[captures.Exchange](paths, captures.ReaderOptions{BatchSize: 4096, Columns: cols})
	if err != nil {
		return nil, badInput(err)
	}
	defer r.Close()
	var xs []captures.Exchange
	seen := map[string]bool{}
	for r.Next() {
		for _, x := range r.Batch() {
			seen[x.Service] = true
			if want[x.Service] {
				xs = append(xs, x)
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, badInput(err)
	}
	if len(xs) == 0 && len(seen) > 0 {
		// Say what the capture does hold, to catch a service name mix-up.
		return nil, badInput(fmt.Errorf("replay: the capture has no exchanges of %s (it has: %s)",
			strings.Join(sortedKeys(want), ", "), strings.Join(sortedKeys(seen), ", ")))
	}
	return xs, nil
}

// Run checks the input, checks each target's health, then runs the selected
// scenarios concurrently (each aimed at its own service) until their last
// stage ends, ctx is cancelled (a signal) or MaxRun runs out. Requests in
// flight at the end are recorded as cut off; run.json says whether the run
// was interrupted.
func Run(ctx context.Context, opts Options) (*RunInfo, error) {
	p, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	defer tuneGC()()
	timeout := opts.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	client := &http.Client{Transport: newTransport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if err := p.checkHealth(ctx, client); err != nil {
		return nil, err
	}

	id := runID()
	var rw rowWriter = opts.resultWriter
	if rw == nil {
		w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: opts.Out, Prefix: "results", Metadata: map[string]string{"loadtape.run": id}})
		if err != nil {
			return nil, err
		}
		rw = w
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if opts.MaxRun > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(runCtx, opts.MaxRun, fmt.Errorf("--max-run %v reached", opts.MaxRun))
		defer cancel()
	}
	rp := &runState{ctx: runCtx, opts: opts, id: id, profile: p.profile, client: client, timeout: timeout,
		headers: opts.Headers, scale: p.scale, shard: p.shard}
	live := newLive(opts.Progress, p)
	rp.sink = newSink(rw, live.observe)

	var mon *monitor.Sampler
	if len(opts.Monitor) > 0 {
		every := opts.MonitorEvery
		if every <= 0 {
			every = DefaultMonitorEvery
		}
		mon, err = monitor.Start(runCtx, monitor.Options{Sources: opts.Monitor, Every: every, Dir: opts.Out, Log: live.logf})
		if err != nil {
			rp.sink.close()
			return nil, badInput(err)
		}
	}
	var stopMetrics func()
	if opts.MetricsAddr != "" {
		if stopMetrics, err = live.serveMetrics(opts.MetricsAddr); err != nil {
			rp.sink.close()
			if mon != nil {
				mon.Close()
			}
			return nil, err
		}
	}

	started := time.Now()
	runs := p.schedule(rp, started)
	live.start(runs)
	var wg sync.WaitGroup
	for _, s := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run()
		}()
	}
	wg.Wait()
	ended := time.Now()
	interrupted := runCtx.Err() != nil
	for _, s := range runs {
		for k := range s.stages {
			s.stages[k].cancel()
		}
	}
	live.stop()
	var errs []error
	if err := rp.sink.close(); err != nil {
		errs = append(errs, fmt.Errorf("results: %w", err))
	}
	var monitors []monitor.SourceInfo
	if mon != nil {
		monitors = mon.Sources()
		if err := mon.Close(); err != nil {
			errs = append(errs, fmt.Errorf("samples: %w", err))
		}
	}
	if stopMetrics != nil {
		stopMetrics()
	}
	info := &RunInfo{ID: id, Dir: opts.Out, Started: started, Ended: ended, Interrupted: interrupted,
		Requests: live.requests.Load(), Errors: live.errors.Load(), CutOff: live.cutOff.Load(), Stages: spans(runs, ended)}
	if err := writeRunJSON(p, rp, info, monitors); err != nil {
		errs = append(errs, err)
	}
	return info, errors.Join(errs...)
}

// schedule lays every selected scenario's stages on the wall clock from t0,
// durations multiplied by the time scale.
func (p *plan) schedule(rp *runState, t0 time.Time) []*scenarioRun {
	var runs []*scenarioRun
	for _, name := range p.scenarios {
		sc := p.profile.Scenarios[name]
		s := &scenarioRun{name: name, sc: sc, sp: p.pool.services[sc.Service], tgt: p.targets[sc.Service], rp: rp}
		s.ops = sortedKeys(sc.Mix)
		total := 0.0
		for _, op := range s.ops {
			total += sc.Mix[op]
			s.cum = append(s.cum, total)
		}
		at := t0
		for k, st := range sc.Stages {
			end := at.Add(time.Duration(float64(st.Duration) * p.scale))
			ctx, cancel := context.WithDeadline(rp.ctx, end)
			s.stages = append(s.stages, stageWindow{idx: k, users: st.Users, shardUsers: shardCount(st.Users, p.shard),
				rate: st.Rate, start: at, end: end, ctx: ctx, cancel: cancel})
			at = end
		}
		runs = append(runs, s)
	}
	return runs
}

// shardCount is how many of users indices 0..users-1 shard sh runs (index
// k belongs to shard k mod N + 1).
func shardCount(users int, sh shardSpec) int {
	if users <= 0 {
		return 0
	}
	n := users / sh.n
	if (users % sh.n) >= sh.i {
		n++
	}
	return n
}

// run drives a scenario to its end.
func (s *scenarioRun) run() {
	if s.sc.Mode == ModeOpen {
		s.runOpen()
		return
	}
	maxUsers := 0
	for _, st := range s.stages {
		maxUsers = max(maxUsers, st.users)
	}
	var wg sync.WaitGroup
	for idx := s.rp.shard.i - 1; idx < maxUsers; idx += s.rp.shard.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runVU(idx)
		}()
	}
	wg.Wait()
	// Users inactive in the last stages return early: hold the scenario
	// until its timeline ends so the stage spans stay true.
	<-s.stages[len(s.stages)-1].ctx.Done()
}

func spans(runs []*scenarioRun, ended time.Time) []StageSpan {
	var out []StageSpan
	for _, s := range runs {
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

func runID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// osHostname is a variable so run.json tests can pin it.
var osHostname = os.Hostname
