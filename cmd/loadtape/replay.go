package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loadtape/loadtape/replay"
	"github.com/spf13/cobra"
)

func init() {
	var (
		capturesPaths, targets, headers, secrets, scenarios, monitors []string
		profile, out, shard, metricsAddr, runID, startAt, barrier     string
		shards                                                        int
		force, allowMissing                                           bool
		seed                                                          int64
		timeScale                                                     float64
		requestTimeout, maxRun, monitorEvery, metricsLinger           time.Duration
		barrierTimeout                                                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay --captures PATH --profile FILE --target NAME=URL ... --out DIR",
		Short: "Replay captures as weighted mixes of virtual users through a profile's stages",
		Long: `replay reshapes captured exchanges into the profile's scenarios (closed, sessions or
open mode), sends them to the --target of each scenario's service, and writes one result
row per request to DIR/results-*.parquet, monitor samples to DIR/samples-*.parquet and the
run's profile, targets and stage timeline to DIR/run.json. All selected scenarios run at
the same time, each against its own service. SIGINT or SIGTERM ends the run at once:
requests in flight are recorded as cut off and run.json says interrupted.

DIR must be new or empty (--force reuses it, removing the earlier run's files first).
A recorded credential is redacted in the capture and never sent: give the live one with
--header (headers) or --secret (query parameters and body fields), or the run is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if metricsLinger < 0 || (metricsLinger > 0 && metricsAddr == "") {
				return badInput(fmt.Errorf("--metrics-linger %v: want a duration ≥ 0, and --metrics-addr to serve from", metricsLinger))
			}
			tm, err := replay.ParseTargets(targets)
			if err != nil {
				return badInput(err)
			}
			hs, err := replay.ParseHeaders(headers)
			if err != nil {
				return badInput(err)
			}
			sec, err := replay.ParseSecrets(secrets)
			if err != nil {
				return badInput(err)
			}
			shard, err := replay.ResolveShard(shard, cmd.Flags().Changed("shard"), shards, os.Getenv)
			if err != nil {
				return badInput(err)
			}
			at, err := replay.ParseStartAt(startAt, time.Now())
			if err != nil {
				return badInput(err)
			}
			wait, err := barrierOf(barrier, runID, shard, startAt, barrierTimeout)
			if err != nil {
				return err
			}
			// s3:// --captures and --out go through local directories.
			caps, doneIn, err := stagedIn(cmd.Context(), "--captures", capturesPaths)
			if err != nil {
				return err
			}
			defer doneIn()
			outDir, publish, discard, err := stagedOut(cmd.Context(), "--out", out, force)
			if err != nil {
				return err
			}
			defer discard()
			// The first signal cuts the run off and flushes; a second one
			// (after stop restores the default) kills the process.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); stop() }()
			info, err := replay.Run(ctx, replay.Options{
				Captures: caps, ProfilePath: profile, Targets: tm, Headers: hs, Out: outDir, Force: force,
				Secrets: sec, AllowMissingCredentials: allowMissing,
				Scenarios: scenarios, Seed: seed, Shard: shard, RunID: runID, StartAt: at, Barrier: wait, TimeScale: timeScale,
				RequestTimeout: requestTimeout, MaxRun: maxRun, Monitor: monitors, MonitorEvery: monitorEvery,
				MetricsAddr: metricsAddr, MetricsLinger: metricsLinger, Progress: cmd.ErrOrStderr(), Version: version,
			})
			if replay.IsBadInput(err) {
				return badInput(err)
			}
			if err != nil {
				return err
			}
			if err := publish(); err != nil {
				return err
			}
			info.Dir = out
			state := "finished"
			if info.Interrupted {
				state = "interrupted (" + info.EndReason + ")"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "run %s %s: %d requests, %d errors (%d cut off), %s in %s\n",
				info.ID, state, info.Requests, info.Errors, info.CutOff, info.Ended.Sub(info.Started).Round(time.Second), info.Dir)
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&capturesPaths, "captures", nil, "capture files, directories or globs, or s3://BUCKET/PREFIX (repeatable)")
	f.StringVar(&profile, "profile", "", "profile YAML `FILE` (loadtape profile init writes one)")
	f.StringArrayVar(&targets, "target", nil, "NAME=URL: where service NAME's requests go (one per service; required)")
	f.StringVar(&out, "out", "", "run directory to write (created; must be empty unless --force), or s3://BUCKET/PREFIX (uploaded at the end)")
	f.BoolVar(&force, "force", false, "reuse a non-empty --out, removing its earlier results, samples and run.json first")
	f.StringArrayVar(&scenarios, "scenario", nil, "scenario to run (repeatable or comma list; default: all, concurrently)")
	f.StringArrayVar(&headers, "header", nil, "'Name: value' set on every request, replacing the recorded one (and a redacted credential)")
	f.StringArrayVar(&secrets, "secret", nil, "NAME=VALUE: the live value of redacted query parameters and body fields named NAME (repeatable)")
	f.BoolVar(&allowMissing, "allow-missing-credentials", false, "send requests whose redacted credentials no --header or --secret supplies, without them")
	f.Int64Var(&seed, "seed", 1, "seed of every random choice (users, mixes, think times)")
	f.StringVar(&shard, "shard", "1/1", "run the I-th of N disjoint slices of every stage's users")
	f.IntVar(&shards, "shards", 0, "N shards, this one numbered by JOB_COMPLETION_INDEX (0-based, as a Kubernetes Indexed Job sets it)")
	f.StringVar(&runID, "run-id", "", "the run's `ID` (default: a new random one); the shards of one run share it")
	f.StringVar(&barrier, "barrier", "", "start barrier at s3://BUCKET/PREFIX: each shard registers there and all start together once every one has (needs --run-id)")
	f.DurationVar(&barrierTimeout, "barrier-timeout", 5*time.Minute, "how long --barrier waits for the other shards before failing, naming the missing ones")
	f.StringVar(&startAt, "start-at", "", "start the stages at this RFC 3339 `TIME`, the same for every shard (refused when already past)")
	f.Float64Var(&timeScale, "time-scale", 1, "multiply every duration and think time by F")
	f.DurationVar(&requestTimeout, "request-timeout", replay.DefaultRequestTimeout, "per-request timeout")
	f.DurationVar(&maxRun, "max-run", 0, "hard limit on the whole run, capture reading included; in-flight requests are cut off (0: none)")
	f.StringArrayVar(&monitors, "monitor", nil, "resource source: nvml, host, prom=URL (repeatable or comma list)")
	f.DurationVar(&monitorEvery, "monitor-every", replay.DefaultMonitorEvery, "monitor sampling interval")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve live Prometheus metrics at `ADDR`/metrics (an index at ADDR/)")
	f.DurationVar(&metricsLinger, "metrics-linger", 0, "keep --metrics-addr up this long after the run with its final values, for a last scrape")
	for _, name := range []string{"captures", "profile", "target", "out"} {
		_ = cmd.MarkFlagRequired(name)
	}
	rootCmd.AddCommand(cmd)
}
