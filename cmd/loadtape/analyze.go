package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/reports"
)

// analyzeFlags are the flags analyze and compare share.
type analyzeFlags struct {
	out            string
	targets        string
	warmupMax      time.Duration
	warmupFraction float64
}

func (f *analyzeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.out, "out", "", "`DIR` for report.html, report.md, summary.json, junit.xml, the CSVs and figures/ (required)")
	cmd.Flags().StringVar(&f.targets, "targets", "", "YAML `FILE` with targets: (and acceptance:) replacing the profile's targets")
	cmd.Flags().DurationVar(&f.warmupMax, "warmup-max", analyze.DefaultWarmUp.Max, "longest warm-up trimmed from the start of each stage")
	cmd.Flags().Float64Var(&f.warmupFraction, "warmup-fraction", analyze.DefaultWarmUp.Fraction, "share of each stage trimmed as warm-up, up to --warmup-max (0 keeps everything)")
	_ = cmd.MarkFlagRequired("out")
}

func (f *analyzeFlags) options(runs []string) (analyze.Options, error) {
	if f.out == "" {
		return analyze.Options{}, badInput(errors.New("--out DIR is required: the directory for the reports"))
	}
	if f.warmupFraction < 0 || f.warmupFraction >= 1 || f.warmupMax < 0 {
		return analyze.Options{}, badInput(fmt.Errorf("--warmup-fraction %v / --warmup-max %v: want a share in [0, 1) and a duration ≥ 0", f.warmupFraction, f.warmupMax))
	}
	return analyze.Options{Runs: runs, Targets: f.targets, WarmUp: &analyze.WarmUp{Max: f.warmupMax, Fraction: f.warmupFraction}}, nil
}

var analyzeOpts analyzeFlags

var analyzeCmd = &cobra.Command{
	Use:   "analyze RUN_DIR... --out DIR [--targets FILE]",
	Short: "Turn a run's results into statistics, a targets table, named bottlenecks and reports",
	Long: `analyze reads the run.json, results-*.parquet and samples-*.parquet of a run directory
(or of the shards of one run), computes exact percentiles, RPS and error rates per scenario ×
stage × operation, evaluates the targets, names the bottleneck with its evidence, and writes
report.html, report.md, summary.json, junit.xml, stats.csv, stats_history.csv and failures.csv
(Locust's columns) and figures/ to --out. It prints the verdict first: the failed targets, each with
the finding that explains it, then the findings by severity.

A RUN_DIR or --out may be s3://BUCKET/PREFIX (docs/scale-out.md); a prefix holding the shards of a
run is read as all of them. Shards given must make the whole run (each I of N once, one run id).

Exit code 3 when a target misses its acceptance bound; 2 on bad input.`,
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		// s3:// runs and --out go through local directories; a prefix
		// holding the shards of a run is read as all of them.
		local, done, err := stagedIn(cmd.Context(), "run", args)
		if err != nil {
			return err
		}
		defer done()
		runs, err := runDirsIn(args, local)
		if err != nil {
			return err
		}
		out, publish, discard, err := stagedOut(cmd.Context(), "--out", analyzeOpts.out, true)
		if err != nil {
			return err
		}
		defer discard()
		opts, err := analyzeOpts.options(runs)
		if err != nil {
			return err
		}
		s, err := analyze.Analyze(opts)
		err = finishReport(cmd.OutOrStdout(), out, analyzeOpts.out, s, err)
		if s != nil {
			err = errors.Join(err, publish())
		}
		return err
	},
}

// finishReport writes the reports into out, prints the verdict naming
// them under shown (the --out given: an s3:// one is staged in out) and
// maps a missed target to exit code 3.
func finishReport(w io.Writer, out, shown string, s *analyze.Summary, err error) error {
	if err != nil {
		if errors.Is(err, analyze.ErrBadInput) {
			return badInput(err)
		}
		return err
	}
	if err := reports.Write(out, s); err != nil {
		return err
	}
	if err := reports.Text(w, s, reports.TextOptions{Dir: shown, Color: colorable(w)}); err != nil {
		return err
	}
	if reports.Failed(s) {
		return withCode(exitTargetMiss, errors.New("a target missed its acceptance bound"))
	}
	return nil
}

// colorable reports whether w is a terminal that takes ANSI colours: not
// a pipe or file, NO_COLOR unset (no-color.org), TERM not dumb.
func colorable(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func init() {
	analyzeOpts.register(analyzeCmd)
	rootCmd.AddCommand(analyzeCmd)
}
