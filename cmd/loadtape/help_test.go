package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/loadtape/loadtape/replay"
)

// useToken is one word of a Use line after the command name: a flag, an
// upper-case placeholder (FILE, NAME=URL, PATH...), "..." for more of the
// same, any of them in [brackets] when optional.
var useToken = regexp.MustCompile(`^\[?(--[a-z][a-z-]*|[A-Z][A-Z0-9_]*([@=][A-Z][A-Z0-9_]*)*(\.\.\.)?|\.\.\.)\]?(\.\.\.)?$`)

// valueName is a flag's value placeholder as --help shows it: cobra takes a
// `backticked` word of the usage, else the type's name.
var valueName = regexp.MustCompile(`^([A-Z][A-Z0-9_]*(=[A-Z][A-Z0-9_]*)?|[A-Z][A-Z0-9_]*:[A-Z]+|string|strings|stringArray|int|int32|int64|uint|float|float64|duration|bool|)$`)

func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, s := range c.Commands() {
		out = append(out, allCommands(s)...)
	}
	return out
}

// execute runs the root command with args and returns what it printed.
func execute(t *testing.T, args ...string) string {
	t.Helper()
	var buf bytes.Buffer
	rootCmd.SetOut(&buf)
	rootCmd.SetErr(&buf)
	rootCmd.SetArgs(args)
	defer func() {
		rootCmd.SetOut(nil)
		rootCmd.SetErr(nil)
		rootCmd.SetArgs(nil)
		// Flag values outlive Execute: a --help given once would answer
		// every later call with help.
		for _, c := range allCommands(rootCmd) {
			if f := c.Flags().Lookup("help"); f != nil {
				_ = f.Value.Set("false")
				f.Changed = false
			}
		}
	}()
	if err := rootCmd.Execute(); err != nil {
		t.Fatalf("loadtape %v: %v", args, err)
	}
	return buf.String()
}

// TestHelpTexts renders the help of every command, as --help and as
// `loadtape help CMD` show it, and fails on what a reader should not see: a
// backtick (pflag turns a `backticked` word of a flag's usage into the
// flag's value name, so "see `loadtape profile init`" once showed as
// --profile loadtape profile init), a value name that is not a placeholder,
// a Use line whose words are not flags or placeholders.
// Not parallel: the root command is shared.
func TestHelpTexts(t *testing.T) {
	rootCmd.InitDefaultHelpCmd()
	rootCmd.InitDefaultCompletionCmd()
	// Names of documents outside the repository that help must not cite;
	// kept in testdata so that a search of the sources for them finds none.
	b, err := os.ReadFile(filepath.Join("testdata", "outside-references.txt"))
	if err != nil {
		t.Fatal(err)
	}
	outsideRefs := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, c := range allCommands(rootCmd) {
		name := c.CommandPath()
		if c.Hidden {
			continue
		}
		path := strings.Fields(name)[1:]
		for _, args := range [][]string{append(slices.Clone(path), "--help"), append([]string{"help"}, path...)} {
			help := execute(t, args...)
			if strings.Contains(help, "`") {
				t.Errorf("loadtape %s shows a backtick:\n%s", strings.Join(args, " "), help)
			}
			for _, ref := range outsideRefs {
				if strings.Contains(help, ref) {
					t.Errorf("loadtape %s cites %q: say what it means in the tool's own words", strings.Join(args, " "), ref)
				}
			}
			if !strings.Contains(help, "Usage:") {
				t.Errorf("loadtape %s shows no usage:\n%s", strings.Join(args, " "), help)
			}
		}
		if c.Short == "" {
			t.Errorf("%s has no short description", name)
		}
		if c.Name() != "help" { // cobra's own: help [command]
			for _, w := range strings.Fields(c.Use)[1:] {
				if !useToken.MatchString(w) {
					t.Errorf("%s: Use %q: %q is neither a flag nor an upper-case placeholder", name, c.Use, w)
				}
			}
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			vn, usage := pflag.UnquoteUsage(f)
			if !valueName.MatchString(vn) {
				t.Errorf("%s --%s: value name %q (from usage %q), want an upper-case placeholder", name, f.Name, vn, f.Usage)
			}
			if strings.Contains(usage, "`") {
				t.Errorf("%s --%s: usage %q holds a backtick", name, f.Name, f.Usage)
			}
			if usage == "" {
				t.Errorf("%s --%s has no usage text", name, f.Name)
			}
		})
	}
}

// TestCompletionDescriptions asks the completion machinery, as a shell
// would, for the flags of every command: no description holds a backtick.
// Not parallel: the root command is shared.
func TestCompletionDescriptions(t *testing.T) {
	for _, c := range allCommands(rootCmd) {
		if c.Hidden || !c.Runnable() || c == rootCmd {
			continue
		}
		path := strings.Fields(c.CommandPath())[1:]
		out := execute(t, append(append([]string{cobra.ShellCompRequestCmd}, path...), "--")...)
		if !strings.Contains(out, "--") && c.HasAvailableLocalFlags() {
			t.Errorf("completion of %v offers no flags:\n%s", path, out)
		}
		if strings.Contains(out, "`") {
			t.Errorf("completion of %v shows a backtick:\n%s", path, out)
		}
	}
}

// TestCompletionValues: --scenario completes the profile's scenarios,
// --monitor its sources (inside a comma list too), --think its choices.
// Not parallel: the root command is shared.
func TestCompletionValues(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(prof, replay.BuiltinProfile(), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"replay", "--profile", prof, "--scenario", ""}, []string{"gateway\tservice gateway, closed mode", "mcp\t", "rag\t"}},
		{[]string{"replay", "--profile", prof, "--scenario", "gateway,"}, []string{"gateway,mcp\t", "gateway,rag\t"}},
		{[]string{"replay", "--monitor", "nvml,"}, []string{"nvml,host\t", "nvml,prom=\t"}},
		{[]string{"profile", "init", "--think", ""}, []string{"fit\t", "as_recorded\t"}},
	}
	for _, c := range cases {
		out := execute(t, append([]string{cobra.ShellCompRequestCmd}, c.args...)...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("completion of %v lacks %q:\n%s", c.args, w, out)
			}
		}
	}
	// Flag values outlive Execute in one process; a shell starts afresh.
	if c, _, err := rootCmd.Find([]string{"replay"}); err == nil {
		_ = c.Flags().Set("profile", "")
	}
	out := execute(t, cobra.ShellCompRequestCmd, "replay", "--scenario", "")
	if !strings.Contains(out, "give --profile FILE first") {
		t.Errorf("--scenario without --profile: %s", out)
	}
}
