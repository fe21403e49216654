package main

import (
	"github.com/loadtape/loadtape/replay"
	"github.com/spf13/cobra"
)

func init() {
	profileCmd := &cobra.Command{
		Use:   "profile",
		Short: "Work with replay profiles",
	}
	profileCmd.AddCommand(&cobra.Command{
		Use:   "init",
		Short: "Print the seed plan's three scenarios (gateway, rag, mcp) as a profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(replay.SeedPlanProfile())
			return err
		},
	})
	rootCmd.AddCommand(profileCmd)
}
