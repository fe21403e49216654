// Package demo runs loadtape's whole pipeline on one machine: it starts the
// simulated AI suite, records a scripted user population through the
// recording proxy, replays the capture with the built-in profile's three scenarios
// while the monitor samples the host and the sim's GPU metrics, analyses the
// run and writes the reports. It is the one package that joins all stages,
// in the order data flows: sim → proxy → captures → replay → analyze → reports.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/proxy"
	"github.com/loadtape/loadtape/replay"
	"github.com/loadtape/loadtape/reports"
	"github.com/loadtape/loadtape/sim"
)

// Time scales. The built-in profile's gateway scenario lasts 32 minutes (a 2-minute
// baseline, three 5-minute levels and a 15-minute stress level); the three
// scenarios run at the same time, so the run lasts the gateway's 32 minutes
// times the scale. The sim's service times are scaled by the same factor, so
// the queues, and the user counts at which bottlenecks appear, are those of
// the unscaled profile.
//
// The quick run keeps that scale and shortens only the stages: compressing
// time further would multiply the request rate too, and on a 2-core machine
// the replayer and the sim then compete for the CPU until the replayer lags
// (the analyser rightly calls such stages untrustworthy). Shorter stages only
// mean fewer requests per stage (see shortenStages).
const (
	DefaultTimeScale = 0.1 // 32 min → 3 min 12 s of replay
	QuickStages      = 3   // --quick: the longest scenario a third as long → 64 s of replay
)

// Options configure a demo run. Zero values mean the defaults.
type Options struct {
	Out       string  // output directory; "out/demo" when empty
	Quick     bool    // the short run of the end-to-end test (at most 90 s): the longest scenario shortened QuickStages times (shortenStages)
	Healthy   bool    // the sim's healthy configuration: no bottleneck should be found
	TimeScale float64 // overrides DefaultTimeScale
	Seed      int64
	Progress  io.Writer // progress lines; nil discards them
	// SimCommand, when set, runs the sim as this command (a loadtape
	// binary and "sim") in a child process; else it runs in this one.
	SimCommand []string
	Version    string
}

// Result is what a demo produced.
type Result struct {
	Captures string // capture directory
	Run      string // run directory
	Report   string // report directory
	Picture  string // report.png, when a headless browser was at hand
	Summary  *analyze.Summary
	Recorded proxy.Totals
}

// Run executes the whole pipeline. It returns the summary even when targets
// missed; the caller decides what that means for the exit code.
func Run(ctx context.Context, opts Options) (*Result, error) {
	out := opts.Out
	if out == "" {
		out = filepath.Join("out", "demo")
	}
	scale := opts.TimeScale
	if scale == 0 {
		scale = DefaultTimeScale
	}
	logw := opts.Progress
	if logw == nil {
		logw = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(logw, "demo: "+format+"\n", args...) }

	res := &Result{
		Captures: filepath.Join(out, "captures"),
		Run:      filepath.Join(out, "run"),
		Report:   filepath.Join(out, "report"),
	}
	// A demo re-run replaces the previous one; stale result files would be
	// read as part of the new run.
	for _, dir := range []string{res.Captures, res.Run, res.Report} {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("demo: clearing %s: %w", dir, err)
		}
	}

	kind := "default (planted bottlenecks)"
	if opts.Healthy {
		kind = "healthy"
	}
	var urls map[string]string
	if len(opts.SimCommand) > 0 {
		p, u, err := startSimProcess(ctx, opts.SimCommand, opts.Healthy, scale, logw)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		urls = u
		kind += ", its own process"
	} else {
		cfg := sim.DefaultConfig()
		if opts.Healthy {
			cfg = sim.HealthyConfig()
		}
		cfg.TimeScale = scale
		suite, err := sim.Start(ctx, cfg, sim.Addrs{Gateway: "127.0.0.1:0", RAG: "127.0.0.1:0", MCP: "127.0.0.1:0"})
		if err != nil {
			return nil, fmt.Errorf("demo: starting the sim: %w", err)
		}
		defer suite.Close()
		urls = suite.URLs()
	}
	say("sim (%s, time scale %g): gateway %s, rag %s, mcp %s", kind, scale, urls["gateway"], urls["rag"], urls["mcp"])

	totals, err := record(ctx, urls, res.Captures, opts.Seed, logw)
	if err != nil {
		return nil, err
	}
	res.Recorded = totals
	say("recorded %d exchanges (%d dropped) into %s", totals.Written, totals.Dropped, res.Captures)

	profile, err := replay.ParseProfile(replay.BuiltinProfile(), "profile init")
	if err != nil {
		return nil, fmt.Errorf("demo: the built-in profile: %w", err)
	}
	if opts.Quick {
		shortenStages(profile, QuickStages)
	}
	monitors := []string{"host", "prom=" + strings.TrimRight(urls["gateway"], "/") + "/metrics", "nvml"}
	say("replaying the built-in profile's three scenarios at the same time (about %s)", planLength(profile, scale).Round(time.Second))
	if _, err := replay.Run(ctx, replay.Options{
		Captures:  []string{res.Captures},
		Profile:   profile,
		Targets:   urls,
		Out:       res.Run,
		Seed:      opts.Seed,
		TimeScale: scale,
		Monitor:   monitors,
		Progress:  logw,
		Version:   opts.Version,
	}); err != nil {
		return nil, fmt.Errorf("demo: replay: %w", err)
	}

	say("analysing %s", res.Run)
	sum, err := analyze.Analyze(analyze.Options{Runs: []string{res.Run}})
	if err != nil {
		return nil, fmt.Errorf("demo: analyze: %w", err)
	}
	res.Summary = sum
	if err := reports.Write(res.Report, sum); err != nil {
		return nil, fmt.Errorf("demo: reports: %w", err)
	}
	if png, err := picture(ctx, res.Report); err != nil {
		say("no picture of the report: %v", err)
	} else {
		res.Picture = png
	}
	return res, nil
}

// record puts the recording proxy in front of the sim and drives a scripted
// user population through it, so that the capture holds every operation the
// built-in profile's mixes name, MCP sessions included.
func record(ctx context.Context, urls map[string]string, dir string, seed int64, logw io.Writer) (proxy.Totals, error) {
	var routes []proxy.Route
	for _, svc := range []string{"gateway", "rag", "mcp"} {
		rt, err := proxy.ParseRoute(svc + "@127.0.0.1:0=" + urls[svc])
		if err != nil {
			return proxy.Totals{}, fmt.Errorf("demo: route for %s: %w", svc, err)
		}
		routes = append(routes, rt)
	}
	rec, err := proxy.New(proxy.Options{Routes: routes, Out: dir, Log: logw, LiveEvery: -1})
	if err != nil {
		return proxy.Totals{}, fmt.Errorf("demo: recording proxy: %w", err)
	}
	if err := rec.Start(); err != nil {
		return proxy.Totals{}, fmt.Errorf("demo: recording proxy: %w", err)
	}
	via := map[string]string{}
	for name, addr := range rec.Addrs() {
		via[name] = "http://" + addr
	}
	client := &sim.Client{Targets: via, Users: 6, Seed: seed, Think: 20 * time.Millisecond, ProbeShare: 0.05}
	stats, runErr := client.Run(ctx, recordFor)
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	totals, err := rec.Shutdown(shutCtx)
	if runErr != nil && !errors.Is(runErr, context.DeadlineExceeded) {
		return totals, fmt.Errorf("demo: scripted users: %w", runErr)
	}
	if err != nil {
		return totals, fmt.Errorf("demo: closing the capture: %w", err)
	}
	if stats.Requests == 0 {
		return totals, errors.New("demo: the scripted users made no request")
	}
	return totals, nil
}

// recordFor is how long the scripted users run through the proxy: long
// enough for every operation of the built-in profile's mixes to appear many times.
const recordFor = 4 * time.Second

// shortenStages makes the longest scenario n times shorter and every other
// one just as long as that, each stage in proportion, leaving think times
// and service times, and so the load each user count offers, as they are.
// The scenarios run at the same time, so the run is as short as dividing
// every stage by n would make it, while the shorter scenarios keep more of
// their requests: RAG's planted pool exhaustion shows as a few timeouts per
// hundred requests at its top level, and a stage a third as long held too
// few of them to tell from chance (3 of 544 in one run in five).
func shortenStages(p *replay.Profile, n int) {
	length := func(sc *replay.Scenario) (d replay.Duration) {
		for _, st := range sc.Stages {
			d += st.Duration
		}
		return d
	}
	var longest replay.Duration
	for _, sc := range p.Scenarios {
		longest = max(longest, length(sc))
	}
	goal := float64(longest) / float64(n)
	for _, sc := range p.Scenarios {
		f := min(goal/float64(length(sc)), 1)
		for i := range sc.Stages {
			sc.Stages[i].Duration = replay.Duration(float64(sc.Stages[i].Duration) * f)
		}
	}
}

// planLength is how long the replay lasts: the scenarios run at the same
// time, so the longest one.
func planLength(p *replay.Profile, scale float64) time.Duration {
	var longest time.Duration
	for _, sc := range p.Scenarios {
		var d time.Duration
		for _, st := range sc.Stages {
			d += st.Duration.D()
		}
		longest = max(longest, d)
	}
	return time.Duration(float64(longest) * scale)
}
