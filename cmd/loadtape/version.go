package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=..."; the
// Makefile passes `git describe`.
var version = "dev"

// arrowVersion reports the arrow-go module version linked into the binary,
// read from the build info so it cannot drift from go.mod.
func arrowVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/apache/arrow-go/v18" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the loadtape, Go and arrow-go versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "loadtape %s\ngo %s %s/%s\narrow-go %s\n",
				version, runtime.Version(), runtime.GOOS, runtime.GOARCH, arrowVersion())
			return err
		},
	})
}
