package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/demo"
)

func init() {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on this machine: sim, record, replay, analyze, report",
		Long: `demo starts the simulated AI suite on free local ports, records a scripted user
population through the recording proxy, replays the capture with the built-in profile's three
scenarios (time-compressed, the sim's service times compressed alike), samples host and
GPU metrics, analyses the run and writes out/demo/{captures,run,report}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Progress = cmd.ErrOrStderr()
			opts.Version = version
			// The sim runs beside the demo, not inside it (demo/simproc.go).
			if exe, err := os.Executable(); err == nil {
				opts.SimCommand = []string{exe, "sim"}
			}
			res, err := demo.Run(ctx, opts)
			if err != nil {
				return err
			}
			printDemo(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Out, "out", filepath.Join("out", "demo"), "output directory")
	cmd.Flags().BoolVar(&opts.Quick, "quick", false, "a short run (at most 90 s)")
	cmd.Flags().BoolVar(&opts.Healthy, "healthy", false, "run the sim's healthy configuration: no bottleneck should be found")
	cmd.Flags().Int64Var(&opts.Seed, "seed", 1, "seed of the scripted users and the replay")
	rootCmd.AddCommand(cmd)
}

// printDemo ends the demo with where the report is and what it found.
func printDemo(w io.Writer, res *demo.Result) {
	s := res.Summary
	fmt.Fprintf(w, "\nreport: %s\n", filepath.Join(res.Report, "report.html"))
	if res.Picture != "" {
		fmt.Fprintf(w, "picture: %s\n", res.Picture)
	}
	counts := map[analyze.Verdict]int{}
	for _, t := range s.Targets {
		counts[t.Verdict]++
	}
	fmt.Fprintf(w, "targets: %d pass, %d acceptable, %d fail\n", counts[analyze.Pass], counts[analyze.Acceptable], counts[analyze.Fail])
	if len(s.Findings) == 0 {
		fmt.Fprintln(w, "findings: none")
		return
	}
	fmt.Fprintln(w, "findings:")
	for _, f := range s.Findings {
		fmt.Fprintf(w, "  [%s] %s %s: %s\n", f.Severity, f.Scenario, f.Kind, f.Summary)
	}
}
