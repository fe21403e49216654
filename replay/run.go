// Package replay turns captures into load: a profile's scenarios pick
// captured exchanges by weighted mix (closed and open mode), whole captured
// sessions (sessions mode) or the recorded timeline (open mode, arrivals
// as recorded), rewrite them for live targets (hosts, headers, credentials,
// MCP sessions, JSON-RPC ids), send them from virtual users through a stage
// timeline, and measure every request into one result row. A run directory
// holds results-*.parquet, samples-*.parquet (from the monitor package) and
// run.json with the profile, targets and stage timeline for the analyser.
//
// The files by job: plan.go checks the input and prepares the run before
// anything is sent (credentials.go fills redacted credentials, capacity.go
// holds the user count to what the machine can take, outdir.go keeps runs
// from mixing); schedule.go lays the stages on the clock and runs the
// scenarios; run.go (this file) is a run's lifecycle; vu.go, open.go and
// arrivals.go are the load itself; live.go shows it and metrics.go serves it.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/monitor"
	"github.com/loadtape/loadtape/runspec"
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
	Headers     http.Header         // set on every request, replacing recorded ones (and redacted credentials)
	Out         string              // run directory (created; must be empty unless Force)
	Force       bool                // reuse a non-empty Out, removing its earlier result, sample and run files first
	Scenarios   []string            // scenario names to run; empty = all, concurrently

	// Secrets replace redacted query parameters and body fields by name
	// (--secret NAME=VALUE). A request holding a redaction placeholder that
	// neither Headers nor Secrets supplies stops the run before it starts,
	// unless AllowMissingCredentials: then the placeholder is left out.
	Secrets                 map[string]string
	AllowMissingCredentials bool

	Seed           int64
	Shard          string        // "I/N"; empty = 1/1
	RunID          string        // the run's id; empty = a new random one (shards of one run share one: barrier.go)
	StartAt        time.Time     // lay the stages on the clock from this instant (barrier.go); zero = at once
	TimeScale      float64       // multiplies durations and think times; 0 = 1
	RequestTimeout time.Duration // per request; 0 = DefaultRequestTimeout
	MaxRun         time.Duration // hard limit on the whole run from the call of Run; 0 = none
	// Barrier, when set, waits for the run's other shards once this one
	// is ready to send and returns the common start instant (barrier.go).
	Barrier func(context.Context) (time.Time, error)

	Monitor      []string      // monitor sources: nvml, host, prom=URL
	MonitorEvery time.Duration // sample interval; 0 = DefaultMonitorEvery
	MetricsAddr  string        // serve live Prometheus metrics here when set
	// MetricsLinger keeps the metrics endpoint up this long after the run
	// with its final values, for a last scrape; 0 = metricsGrace only.
	MetricsLinger time.Duration
	Progress      io.Writer // live view; a terminal gets progress bars; nil = none
	Version       string    // loadtape version for run.json

	// resultWriter replaces the Parquet results writer (benchmarks of a
	// slow disk).
	resultWriter rowWriter
	// machine replaces this machine's capacity (tests of the user limit).
	machine *capacity
}

// How a run ended (RunInfo.EndedBy).
const (
	EndedCompleted = "completed" // every scenario reached the end of its last stage
	EndedSignal    = "signal"    // the caller's context was cancelled (SIGINT, SIGTERM)
	EndedMaxRun    = "max_run"   // Options.MaxRun ran out
	// EndedAbort (abort.go): a target with abort: true failed.
)

// RunInfo is what a finished run reports; run.json holds the same and more.
type RunInfo struct {
	ID          string
	Dir         string
	Started     time.Time
	Ended       time.Time
	Interrupted bool   // the run did not reach its natural end
	EndedBy     string // EndedCompleted, EndedSignal or EndedMaxRun
	EndReason   string // in words, for run.json and the command's last line
	Requests    int64  // result rows written
	Errors      int64  // rows with an error kind, cut-offs included
	CutOff      int64  // rows cut off by a stopping user or the run's end
	Stages      []StageSpan
	Search      []runspec.SearchResult // capacity searches (search.go)
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
	ctx     context.Context // ends at the run's end: users stop
	sendCtx context.Context // ends after the run's files are closed: requests (cutoff.go)
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
	// Open-mode dispatchers still writing rows of arrivals due before the
	// end that they reached after it (a busy processor): the run waits
	// for them, briefly, before closing its files.
	dispatching sync.WaitGroup
}

// Run checks the input, checks each target's health, then runs the selected
// scenarios concurrently (each aimed at its own service) until their last
// stage ends, ctx is cancelled (a signal) or MaxRun runs out. Requests in
// flight at the end are recorded as cut off; run.json says whether the run
// was interrupted and why it ended.
//
// Everything a run opens (results writer, monitor, metrics endpoint, live
// view) is closed once, in reverse order, on one deferred path, whatever
// way Run returns; run.json is written last, once the rows are flushed.
func Run(ctx context.Context, opts Options) (info *RunInfo, err error) {
	// --max-run counts from here: reading captures and the health checks
	// are part of the run a person waits for. A shard told to start later
	// (StartAt) counts from that instant, so waiting for its peers takes
	// nothing from the load.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if opts.MaxRun > 0 {
		from := time.Now()
		if opts.StartAt.After(from) {
			from = opts.StartAt
		}
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadlineCause(runCtx, from.Add(opts.MaxRun), fmt.Errorf("--max-run %v reached", opts.MaxRun))
		defer cancel()
	}
	p, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if err := checkShardRun(opts, time.Now()); err != nil {
		return nil, err
	}
	defer tuneGC(p.peakConns)()
	timeout := opts.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	tr := newTransport()
	// Every user keeps its connection between requests: with fewer idle
	// connections allowed than users, the transport closes the extra ones
	// after each response and those users dial again for every request, a
	// storm of dials that starved a 15,000-user run of CPU and kept it
	// seconds past --max-run.
	tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, p.peakConns)
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	if err := p.checkHealth(runCtx, client); err != nil {
		if ctx.Err() == nil && runCtx.Err() != nil {
			return nil, fmt.Errorf("replay: %v before the first request: %w", context.Cause(runCtx), err)
		}
		return nil, err
	}

	// Requests run under sendCtx, which the run's limit or a signal does
	// not cancel: awaitEnd writes what is in flight then as cut off in one
	// batch, and sendCtx ends only once everything below is closed, so
	// thousands of cancelled requests never unwind before the run's files
	// are written (cutoff.go).
	sent := &inflight{}
	sendCtx, stopSend := context.WithCancel(withInflight(context.WithoutCancel(ctx), sent))
	// Cancelled a moment after Run returns (cutoff.go: unwindDelay), so
	// that a command that exits then never waits for the unwinding.
	defer time.AfterFunc(unwindDelay, stopSend)
	var res resources
	defer func() { err = errors.Join(err, res.release()) }()
	live := newLive(opts.Progress)
	var met *metrics
	if opts.MetricsAddr != "" {
		met = newMetrics()
		stop, err := met.serve(ctx, opts.MetricsAddr, opts.MetricsLinger, live.logf)
		if err != nil {
			return nil, err
		}
		res.add(stop)
	}
	// Only now that the run is sure to start do an earlier run's files go.
	if err := clearOut(opts.Out, opts.Force); err != nil {
		return nil, err
	}
	id := opts.RunID
	if id == "" {
		id = runID()
	}
	for _, line := range FailedLines(p.pool.LeftOutFor(p.profile, p.scenarios)) {
		live.logf("%s", line)
	}

	// run.json is written once the stages ran, after everything opened
	// below is closed and the last rows counted: registered first, it is
	// released last.
	var monitors []monitor.SourceInfo
	var counts tally
	var state *runState
	res.add(func() error {
		if info == nil {
			return nil
		}
		info.Requests, info.Errors, info.CutOff = counts.requests.Load(), counts.errors.Load(), counts.cutOff.Load()
		return writeRunJSON(p, state, info, monitors)
	})

	rw := opts.resultWriter
	if rw == nil {
		w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: opts.Out, Prefix: "results", Metadata: map[string]string{"loadtape.run": id}})
		if err != nil {
			return nil, err
		}
		rw = w
	}
	// A target with abort: true ends the run through abortRun (abort.go).
	runCtx, abortRun := context.WithCancelCause(runCtx)
	defer abortRun(nil)
	judge := newLiveJudge(p.profile, p.scale, p.shard.n, func(t runspec.Target) bool { return t.Abort })
	state = &runState{ctx: runCtx, sendCtx: sendCtx, opts: opts, id: id, profile: p.profile, client: client, timeout: timeout,
		headers: opts.Headers, scale: p.scale, shard: p.shard}
	state.sink = newSink(rw, judge.wrap(fanOut(counts.observe, live, met)))
	state.sink.inflight = sent
	// The live view stops after the sink is closed, so that its last line
	// counts the last rows written.
	res.add(live.stop)
	res.add(func() error {
		if err := state.sink.close(); err != nil {
			return fmt.Errorf("results: %w", err)
		}
		return nil
	})

	if len(opts.Monitor) > 0 {
		every := opts.MonitorEvery
		if every <= 0 {
			every = DefaultMonitorEvery
		}
		mon, err := monitor.Start(runCtx, monitor.Options{Sources: opts.Monitor, Every: every, Dir: opts.Out, Log: live.logf})
		if err != nil {
			return nil, badInput(err)
		}
		res.add(func() error {
			monitors = mon.Sources()
			if err := mon.Close(); err != nil {
				return fmt.Errorf("samples: %w", err)
			}
			return nil
		})
	}

	at, err := startInstant(runCtx, &p.opts, live.logf)
	if err != nil {
		return nil, err
	}
	started := awaitStart(runCtx, at, live.logf)
	runs := p.schedule(state, started)
	judge.watchAbort(runCtx, runs, abortRun, live.logf)
	if met != nil {
		met.track(runs)
	}
	live.start(runs)
	// Users still waiting on a request when awaitEnd returns end in the
	// background once sendCtx ends; their rows are written as cut off.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runAll(runs)
	}()
	ended := awaitEnd(runCtx, timelineEnd(runs), done, state.sink)
	waitAtMost(&state.dispatching, dispatchGrace)

	info = &RunInfo{ID: id, Dir: opts.Out, Started: started, Ended: ended, Stages: spans(runs, ended), Search: searchResults(runs)}
	info.EndedBy, info.EndReason = endOfRun(ctx, runCtx)
	info.Interrupted = info.EndedBy != EndedCompleted
	return info, nil
}

// endOfRun says why the run's context ended, or that it did not.
func endOfRun(parent, run context.Context) (by, reason string) {
	switch {
	case run.Err() == nil:
		return EndedCompleted, "every stage ran to its end"
	case parent.Err() != nil:
		return EndedSignal, "interrupted: " + context.Cause(parent).Error()
	case errors.As(context.Cause(run), new(*abortError)):
		return EndedAbort, context.Cause(run).Error()
	default:
		return EndedMaxRun, context.Cause(run).Error()
	}
}

// resources are what a run holds open, released in reverse order by one
// call of release, every one even when an earlier one fails.
type resources struct{ closers []func() error }

func (r *resources) add(f func() error) { r.closers = append(r.closers, f) }

func (r *resources) release() error {
	var errs []error
	for _, f := range slices.Backward(r.closers) {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	r.closers = nil
	return errors.Join(errs...)
}

// tally counts the written rows for RunInfo and run.json.
type tally struct{ requests, errors, cutOff atomic.Int64 }

func (t *tally) observe(rows []captures.Result) {
	var errs, cut int64
	for i := range rows {
		switch rows[i].ErrorKind {
		case "":
		case runspec.ErrCutOff:
			errs++
			cut++
		default:
			errs++
		}
	}
	t.requests.Add(int64(len(rows)))
	t.errors.Add(errs)
	t.cutOff.Add(cut)
}

// fanOut hands each written batch to the tally, then the live view and the
// metrics when the run has them.
func fanOut(count func([]captures.Result), l *live, m *metrics) func([]captures.Result) {
	return func(rows []captures.Result) {
		count(rows)
		if l != nil {
			l.observe(rows)
		}
		if m != nil {
			m.observe(rows)
		}
	}
}

func runID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// osHostname is a variable so run.json tests can pin it.
var osHostname = os.Hostname
