// Command diagnose runs the diagnosis benchmark: every planted target of
// package diagnose, one after another, through the loadtape binary
// (record, replay, analyze), then prints the confusion matrix of planted
// kinds against named kinds and writes it as Markdown.
//
//	go run ./diagnose/cmd/diagnose -loadtape bin/loadtape [-quick] [-only FAMILY,...] [-target NAME,...]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/loadtape/loadtape/diagnose"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command with its arguments and output streams; it returns
// the exit code: 0 done, 1 a failure or an interruption, 2 bad flags.
func run(argv []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("loadtape", "bin/loadtape", "the loadtape `binary` to judge")
	work := fs.String("out", "out/diagnose", "`DIR` for each target's capture, run and report")
	md := fs.String("markdown", "", "write the matrix and the per-target table as Markdown to `FILE` (default DIR/RESULTS.md)")
	only := fs.String("only", "", "run only these `FAMILIES` (comma list; -list shows them)")
	names := fs.String("target", "", "run only these `TARGETS` by name (comma list; -list shows them)")
	quick := fs.Bool("quick", false, "one target of each family (a few minutes)")
	list := fs.Bool("list", false, "list the targets and exit")
	note := fs.String("note", "", "a line about the machine for the Markdown header (another job running beside, say)")
	fs.Usage = func() {} // a bad flag is one line (flag prints it); -h prints the flags
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: diagnose [-loadtape BIN] [-out DIR] [-quick] [-only FAMILY,...] [-target NAME,...] [-list] [-markdown FILE] [-note TEXT]")
			fs.PrintDefaults()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "diagnose: unexpected argument %q (flags only)\n", fs.Arg(0))
		return 2
	}
	targets := diagnose.Catalog()
	if *only != "" {
		var families []string
		for _, t := range targets {
			if !slices.Contains(families, t.Family) {
				families = append(families, t.Family)
			}
		}
		want := strings.Split(*only, ",")
		for _, f := range want {
			if !slices.Contains(families, f) {
				fmt.Fprintf(stderr, "diagnose: -only: unknown family %q; want one of %s\n", f, strings.Join(families, ", "))
				return 2
			}
		}
		targets = slices.DeleteFunc(targets, func(t diagnose.Target) bool { return !slices.Contains(want, t.Family) })
	}
	if *names != "" {
		want := strings.Split(*names, ",")
		for _, n := range want {
			if !slices.ContainsFunc(targets, func(t diagnose.Target) bool { return t.Name == n }) {
				fmt.Fprintf(stderr, "diagnose: -target: no target %q (in the families chosen); -list shows them\n", n)
				return 2
			}
		}
		targets = slices.DeleteFunc(targets, func(t diagnose.Target) bool { return !slices.Contains(want, t.Name) })
	}
	if *quick {
		targets = diagnose.Quick(targets)
	}
	var planned time.Duration
	for _, t := range targets {
		planned += t.Duration()
	}
	if *list {
		for _, t := range targets {
			fmt.Fprintf(stdout, "%-40s %-16s %-20s %6s  %s\n", t.Name, t.Family, planted(t), t.Duration(), t.Design)
		}
		fmt.Fprintf(stdout, "%d targets, %s of replay\n", len(targets), planned)
		return 0
	}
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(stderr, "diagnose: -loadtape: %v (run make build first)\n", err)
		return 2
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintf(stderr, "diagnose: -loadtape: %v\n", err)
		return 2
	}
	if *md == "" {
		*md = filepath.Join(*work, "RESULTS.md")
	}
	if err := os.MkdirAll(*work, 0o755); err != nil {
		fmt.Fprintf(stderr, "diagnose: -out: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	load0 := loadavg()
	fmt.Fprintf(stdout, "diagnose: %d targets, %s of replay, with %s\n", len(targets), planned, absBin)
	r := &diagnose.Runner{Loadtape: absBin, Work: *work, Log: stderr}
	var outs []diagnose.Outcome
	for i, t := range targets {
		if ctx.Err() != nil {
			break
		}
		o := r.Run(ctx, t)
		outs = append(outs, o)
		v := diagnose.Judge(o)
		mark := "miss"
		if v.Right {
			mark = "ok"
		}
		named := strings.Join(v.Named, ",")
		if o.Err != "" {
			named = "FAILED: " + o.Err
		} else if named == "" {
			named = "nothing"
		}
		fmt.Fprintf(stdout, "[%2d/%d] %-4s %-40s planted %-22s named %s (%.1fs: record %.1f, replay %.1f, analyze %.1f)\n",
			i+1, len(targets), mark, t.Name, planted(t), named, o.Wall.Seconds(), o.Record.Seconds(), o.Replay.Seconds(), o.Analyze.Seconds())
	}
	wall := time.Since(started)
	m := diagnose.NewMatrix(outs)
	fmt.Fprintln(stdout)
	if err := m.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "diagnose: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wall time %s\n", wall.Round(time.Second))
	bar := bar(m, wall, len(diagnose.Catalog()))
	fmt.Fprintln(stdout, bar)

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Diagnosis benchmark results\n\n")
	fmt.Fprintf(&buf, "- date: %s, wall time %s for %d targets\n", started.UTC().Format("2006-01-02 15:04 UTC"), wall.Round(time.Second), len(outs))
	fmt.Fprintf(&buf, "- binary: %s\n", version(absBin))
	fmt.Fprintf(&buf, "- machine: %s, %d CPUs; load average %s at the start, %s at the end\n", cpuModel(), runtime.NumCPU(), load0, loadavg())
	if *note != "" {
		fmt.Fprintf(&buf, "- note: %s\n", *note)
	}
	buf.WriteString("\n")
	fmt.Fprintf(&buf, "%s\n\n", bar)
	if err := diagnose.WriteMarkdown(&buf, m, outs); err != nil {
		fmt.Fprintf(stderr, "diagnose: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*md, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(stderr, "diagnose: -markdown: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "markdown: %s\n", *md)
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// bar says whether the run meets the analyser's bar: the planted kind
// named on at least 95 % of the targets, no finding on any control, the
// whole benchmark within 15 minutes.
func bar(m *diagnose.Matrix, wall time.Duration, catalog int) string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	named := m.Share() >= 0.95
	quiet := m.ControlsAlarmed == 0
	inTime := wall < 15*time.Minute
	met, partial := yes(named && quiet && inTime), ""
	if m.N < catalog {
		// The bar is about the whole benchmark; a part of it cannot meet it.
		met, partial = "not judged", fmt.Sprintf("; a partial run, %d of the %d targets", m.N, catalog)
	}
	return fmt.Sprintf("bar met: %s (planted kind named on ≥ 95 %%: %s, %.1f %%; no finding on any control: %s, %d with findings; under 15 minutes: %s, %s%s)",
		met, yes(named), 100*m.Share(), yes(quiet), m.ControlsAlarmed, yes(inTime), wall.Round(time.Second), partial)
}

func planted(t diagnose.Target) string {
	if t.Planted == diagnose.KindNone {
		return "none (control)"
	}
	if t.Operation != "" {
		return t.Planted + "@" + t.Operation
	}
	return t.Planted
}

// version is the first line of `loadtape version`.
func version(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return bin
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
