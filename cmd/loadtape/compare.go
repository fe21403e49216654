package main

import (
	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/analyze"
)

var compareOpts analyzeFlags

var compareCmd = &cobra.Command{
	Use:   "compare BASE_RUN NEW_RUN --out DIR",
	Short: "Compare two runs: changes per target and per scenario × stage × operation, with significance",
	Long: `compare analyses both run directories and reports, for every target and every scenario ×
stage × operation, the change in p50, p95, p99, RPS and error rate, with a Mann–Whitney U test
on latencies (Bonferroni-corrected) so that noise is not reported as an improvement, and the
findings that appeared or went away. It writes the same outputs as analyze, for the new run.

Exit code 3 when a target of the new run misses its acceptance bound; 2 on bad input.`,
	Args: cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		base, err := compareOpts.options(args[:1])
		if err != nil {
			return err
		}
		next, err := compareOpts.options(args[1:])
		if err != nil {
			return err
		}
		s, err := analyze.Compare(base, next)
		return finishReport(cmd.OutOrStdout(), compareOpts.out, compareOpts.out, s, err)
	},
}

func init() {
	compareOpts.register(compareCmd)
	rootCmd.AddCommand(compareCmd)
}
