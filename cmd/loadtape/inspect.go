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
rows, time span and bytes, then answers "what did I record": per service and operation,
the exchanges with their HTTP status classes, how many failed when recorded (replay
leaves those out), p50 and p95 duration (nearest rank), streamed responses, models and
prompt/completion tokens; and the same for replayed results, with their error kinds.
Sessions, status classes, error kinds and sample metrics follow. Leftover
.parquet.inprogress files are listed as incomplete, and write-ahead logs (.wal) with
the rows they hold: inspect never changes them; the next loadtape record into the
directory recovers them.

The exit code is 2 when a file cannot be read (the other files are still listed), when
a PATH holds no .parquet file (an empty directory, a directory named x.parquet), or when
nothing readable was given.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, done, err := stagedIn(cmd.Context(), "PATH", args) // s3:// paths are downloaded first
			if err != nil {
				return err
			}
			defer done()
			inv, err := captures.Inspect(local)
			if inv != nil {
				show := shownAs(args, local)
				for i := range inv.Files {
					inv.Files[i].Path = show(inv.Files[i].Path)
				}
			}
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
