package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// isUsageError recognises the errors cobra returns for bad arguments before
// any RunE runs (unknown command, wrong argument count), which carry no type.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// A flag's usage may name its value with a `backticked` word, as pflag
// reads it for --help ("--out DIR"). Shell completion shows the usage raw,
// backticks included, so before any command runs (completion is one)
// plainUsages moves each such name into the flag's value type, where
// --help still finds it, and drops the backticks.
func init() { cobra.OnInitialize(func() { plainUsages(rootCmd) }) }

// placeholder is a flag value whose type name is the placeholder --help
// shows for it.
type placeholder struct {
	pflag.Value
	name string
}

func (p placeholder) Type() string { return p.name }

func plainUsages(c *cobra.Command) {
	fix := func(f *pflag.Flag) {
		if !strings.Contains(f.Usage, "`") {
			return
		}
		name, usage := pflag.UnquoteUsage(f)
		if _, ok := f.Value.(placeholder); !ok && name != "" {
			if f.DefValue == "[]" {
				f.DefValue = "" // a list's empty default, no longer recognised by its type
			}
			f.Value = placeholder{f.Value, name}
		}
		f.Usage = usage
	}
	c.LocalFlags().VisitAll(fix)
	c.PersistentFlags().VisitAll(fix)
	for _, s := range c.Commands() {
		plainUsages(s)
	}
}
