package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/replay"
)

// Shell completion of flag values that are names, not files: the scenarios
// of the profile given so far, the monitor sources, the think choices of a
// generated profile. Registered before any command runs (completion is one),
// once the commands of every file exist.
func init() { cobra.OnInitialize(registerCompletions) }

// monitorSources are --monitor's values, with what each samples.
var monitorSources = []string{
	"nvml\tGPU utilisation, memory, power and clocks through NVML",
	"host\tCPU, memory, disk and network of this machine",
	"prom=\tscrape a Prometheus endpoint: prom=http://HOST:PORT/metrics",
}

func registerCompletions() {
	if c, _, err := rootCmd.Find([]string{"replay"}); err == nil && c.Name() == "replay" {
		_ = c.RegisterFlagCompletionFunc("scenario", completeScenarios)
		_ = c.RegisterFlagCompletionFunc("monitor", completeMonitors)
	}
	if c, _, err := rootCmd.Find([]string{"profile", "init"}); err == nil && c.Name() == "init" {
		_ = c.RegisterFlagCompletionFunc("think", cobra.FixedCompletions([]string{
			replay.ThinkFit + "\tthe best of constant, uniform and exponential",
			replay.ThinkAsRecorded + "\teach exchange's own recorded pause",
		}, cobra.ShellCompDirectiveNoFileComp))
	}
}

// completeScenarios offers the scenarios of the --profile given before
// --scenario, after the last comma of a list.
func completeScenarios(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	f := cmd.Flag("profile")
	if f == nil || f.Value.String() == "" {
		return cobra.AppendActiveHelp(nil, "give --profile FILE first: its scenarios are the choices"), cobra.ShellCompDirectiveNoFileComp
	}
	p, err := replay.LoadProfile(f.Value.String())
	if err != nil {
		return cobra.AppendActiveHelp(nil, err.Error()), cobra.ShellCompDirectiveNoFileComp
	}
	prefix := toComplete[:strings.LastIndexByte(toComplete, ',')+1]
	var out []string
	for _, name := range p.ScenarioNames() {
		out = append(out, prefix+name+"\tservice "+p.Scenarios[name].Service+", "+p.Scenarios[name].Mode+" mode")
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeMonitors offers the monitor sources, after the last comma of a
// list; prom= is left open for its URL.
func completeMonitors(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	prefix := toComplete[:strings.LastIndexByte(toComplete, ',')+1]
	out := make([]string, 0, len(monitorSources))
	for _, s := range monitorSources {
		out = append(out, prefix+s)
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
