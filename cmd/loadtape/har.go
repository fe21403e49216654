package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/har"
	"github.com/loadtape/loadtape/proxy"
)

func init() {
	importCmd := &cobra.Command{
		Use:   "import",
		Short: "Make a capture from traffic recorded by another tool",
	}
	var (
		service, out, sessionCookie, rules, maxBody string
		keepSecrets                                 bool
	)
	importHAR := &cobra.Command{
		Use:   "har FILE... --service NAME --out DIR",
		Short: "Turn HAR 1.2 files (browsers, Playwright, mitmproxy, Charles) into a capture",
		Long: `import har reads HTTP Archive files and writes their entries as a capture in DIR, as
the recording proxy would have written them: the same operation names (OpenAI, RAG and
MCP, or --rules), the same session keys (the MCP session, a rules session header, the
credentials; then the HAR's page, or the cookie --session-cookie names) and the same
redaction of secrets in headers, queries and bodies. Every file is checked before
anything is written; a bad file or entry is named with its line and column, exit code 2.

HAR keeps bodies decoded, so a Content-Encoding header is dropped. An entry starts when
its request began to be sent; its time to first byte is send + wait and its duration
send + wait + receive, as the proxy measures them.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := har.ImportOptions{Service: service, Out: out, SessionCookie: sessionCookie, KeepSecrets: keepSecrets}
			if rules != "" {
				r, err := proxy.LoadRules(rules)
				if err != nil {
					return badInput(err)
				}
				opts.Rules = r
			}
			if maxBody != "" {
				n, err := proxy.ParseSize(maxBody)
				if err != nil {
					return badInput(fmt.Errorf("--max-body: %w", err))
				}
				opts.MaxBody = n
			}
			st, err := har.Import(args, opts)
			var ie *har.InputError
			if errors.As(err, &ie) {
				return badInput(err)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "imported %d exchanges in %d sessions from %d HAR file(s) into %s\n", st.Exchanges, st.Sessions, st.Files, out)
			return err
		},
	}
	f := importHAR.Flags()
	f.StringVar(&service, "service", "", "service NAME of the exchanges, as replay --target NAME=URL names it (required)")
	f.StringVar(&out, "out", "", "capture directory to write (required; created)")
	f.StringVar(&sessionCookie, "session-cookie", "", "cookie NAME whose value keys sessions (default: the HAR's pages)")
	f.StringVar(&rules, "rules", "", "classification and redaction rules FILE, as record --rules")
	f.BoolVar(&keepSecrets, "keep-secrets", false, "keep secrets instead of redacting them")
	f.StringVar(&maxBody, "max-body", "", "SIZE of body kept per side, as record --max-body (default 1MiB)")
	_ = importHAR.MarkFlagRequired("service")
	_ = importHAR.MarkFlagRequired("out")
	importCmd.AddCommand(importHAR)
	rootCmd.AddCommand(importCmd)

	exportCmd := &cobra.Command{
		Use:   "export",
		Short: "Write a capture in another tool's format",
	}
	var harOut string
	exportHAR := &cobra.Command{
		Use:   "har CAPTURES... --out FILE",
		Short: "Write a capture's exchanges as a HAR 1.2 file for a browser's network panel",
		Long: `export har writes the exchanges of CAPTURES (files, directories, globs) as one HAR 1.2
archive: entries in order of start time, one page per session, bodies decoded (gzip and
deflate; other encodings and binary bodies as base64), times from the capture (wait is
the time to first byte, receive the rest). Secrets stay the placeholders the capture
holds. --out - writes to standard output.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			var file *os.File
			if harOut != "-" {
				f, err := os.CreateTemp(filepath.Dir(harOut), ".export-*.har")
				if err != nil {
					return badInput(fmt.Errorf("--out: %w", err))
				}
				defer os.Remove(f.Name())
				defer f.Close()
				file, w = f, f
			}
			n, err := har.Export(w, args, har.ExportOptions{Version: version})
			if err != nil {
				return badInput(err)
			}
			if file != nil {
				if err := file.Close(); err != nil {
					return err
				}
				if err := os.Rename(file.Name(), harOut); err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "exported %d entries to %s\n", n, harOut)
				return err
			}
			return nil
		},
	}
	exportHAR.Flags().StringVar(&harOut, "out", "", "HAR FILE to write, or - for standard output (required)")
	_ = exportHAR.MarkFlagRequired("out")
	exportCmd.AddCommand(exportHAR)
	rootCmd.AddCommand(exportCmd)
}
