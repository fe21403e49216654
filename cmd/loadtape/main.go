// Command loadtape records traffic to an AI stack, replays it at scale and
// names the bottleneck. Each subcommand lives in its own file, turns its flags
// into an options struct and calls one package function.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, the same for every command (README: exit codes).
const (
	exitOK         = 0
	exitRuntime    = 1
	exitBadInput   = 2
	exitTargetMiss = 3
)

// exitError carries an exit code up to main. Commands wrap bad usage and bad
// input files with badInput so that scripts can tell them from failures.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// badInput marks err as bad usage or a bad input file: exit code 2.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitBadInput, err: err}
}

// withCode marks err with an explicit exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

var rootCmd = &cobra.Command{
	Use:   "loadtape",
	Short: "Record AI-stack traffic, replay it at scale, name the bottleneck",
	Long: `loadtape records real traffic to an OpenAI-compatible gateway, a RAG service and an
MCP tool server into Parquet captures, replays those captures as weighted mixes of
virtual users at target user counts while sampling GPU and host metrics, and analyses
the results into a pass/fail table against targets and a named bottleneck with its
evidence.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	// Flag parsing errors are usage errors: exit 2, like every bad input.
	rootCmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badInput(err) })
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.code != exitTargetMiss {
			fmt.Fprintln(os.Stderr, "loadtape:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "loadtape:", err)
	if isUsageError(err) {
		return exitBadInput
	}
	return exitRuntime
}
