package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/replay"
)

func init() {
	profileCmd := &cobra.Command{
		Use:   "profile",
		Short: "Work with replay profiles",
	}
	var (
		from  []string
		think string
	)
	initCmd := &cobra.Command{
		Use:   "init [--from CAPTURES...]",
		Short: "Print a profile: generated from a capture with --from, else the default three scenarios",
		Long: `init prints a replay profile on standard output.

With --from, it reads the capture's exchanges and writes one scenario per recorded
service: the recorded operation shares as the mix, sessions mode where the service
spoke MCP with sessions, the recorded pauses between a session's exchanges as the
think time (fitted: constant, uniform or exponential, whichever the Kolmogorov-Smirnov
distance prefers; or --think as_recorded), and the health path the capture shows.
Exchanges that failed when recorded are left out of the mix and counted in a comment.
Stages and targets are the default profile's, to edit.

Without --from, it prints the default profile: gateway, rag and mcp scenarios with
fixed mixes, stages and targets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(from) == 0 {
				if cmd.Flags().Changed("think") {
					return badInput(errThinkWithoutFrom)
				}
				_, err := cmd.OutOrStdout().Write(replay.BuiltinProfile())
				return err
			}
			y, err := replay.ProfileFromCaptures(from, replay.GenOptions{Think: think})
			if replay.IsBadInput(err) {
				return badInput(err)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	initCmd.Flags().StringArrayVar(&from, "from", nil, "capture files, directories or globs to generate the profile from (repeatable)")
	initCmd.Flags().StringVar(&think, "think", replay.ThinkFit, "think time of generated scenarios: fit or as_recorded")
	profileCmd.AddCommand(initCmd)
	rootCmd.AddCommand(profileCmd)
}

var errThinkWithoutFrom = errors.New("--think needs --from: it chooses how a generated profile's think times follow the capture")
