package main

import (
	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/captures"
)

func init() {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "inspect PATH...",
		Short: "Describe capture, result and sample files: kinds, rows, time spans, operations",
		Long: `inspect lists each Parquet file under PATH (files, directories, globs) with its kind,
rows, time span and bytes, then counts services x operations, sessions, HTTP status
classes, error kinds and sample metrics across them. Leftover .parquet.inprogress files
are listed as incomplete. A file that cannot be read is reported with its reason and
the exit code is 2; the other files are still listed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := captures.Inspect(args)
			out := cmd.OutOrStdout()
			var werr error
			if jsonOut {
				werr = inv.WriteJSON(out)
			} else {
				werr = inv.WriteText(out)
			}
			if err != nil {
				return badInput(err)
			}
			return werr
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the inventory as JSON")
	rootCmd.AddCommand(cmd)
}
