package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/loadtape/loadtape/sim"
	"github.com/spf13/cobra"
)

func init() {
	opts := sim.ServeOptions{Addrs: sim.DefaultAddrs}
	cmd := &cobra.Command{
		Use:   "sim [--gateway ADDR] [--rag ADDR] [--mcp ADDR] [--config FILE] [--healthy] [--time-scale F] [--json]",
		Short: "Run the simulated AI suite (gateway, RAG, MCP) with its bottleneck mechanisms",
		Long: `sim serves three simulated services with real protocols: an OpenAI-compatible gateway
over a modelled GPU (batch slots, KV-cache memory, CUDA out-of-memory errors, DCGM and
vLLM metrics), a RAG service (vector-store and database pools, brute-force search) and an
MCP tool server at /mcp (sandboxed file tools, git, fetch_url, a tool executor). By
default the mechanisms show their bottlenecks at the built-in profile's user counts;
--healthy makes every one generous. --config FILE (YAML) sets any knob over that base;
--time-scale F multiplies every service time (use the replay's --time-scale). An empty
address leaves that service out. See docs/sim.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err := sim.Serve(ctx, opts, cmd.OutOrStdout())
			if errors.Is(err, sim.ErrConfig) {
				return badInput(err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addrs.Gateway, "gateway", sim.DefaultAddrs.Gateway, "gateway listen address (empty: off)")
	f.StringVar(&opts.Addrs.RAG, "rag", sim.DefaultAddrs.RAG, "RAG listen address (empty: off)")
	f.StringVar(&opts.Addrs.MCP, "mcp", sim.DefaultAddrs.MCP, "MCP listen address (empty: off)")
	f.StringVar(&opts.ConfigPath, "config", "", "YAML config of the mechanisms (see docs/sim.md)")
	f.BoolVar(&opts.Healthy, "healthy", false, "start from the healthy config: no bottleneck at the built-in profile's user counts")
	f.BoolVar(&opts.JSON, "json", false, "print the services' URLs as one JSON object instead of the text")
	f.Float64Var(&opts.TimeScale, "time-scale", 0, "multiply every service time by F (default: the config's, 1)")
	rootCmd.AddCommand(cmd)
}
