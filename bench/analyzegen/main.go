// Command analyzegen writes the synthetic run bench/analyze.sh analyses,
// and times the statistics alone (analyze.Analyze, no reports):
//
//	go run ./bench/analyzegen -rows 10000000 -out /tmp/run   # write ROWS result rows (internal/benchrun)
//	go run ./bench/analyzegen -stats /tmp/run [-report DIR] [-cpuprofile F] # the seconds analyze.Analyze (and reports.Write) took
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/internal/benchrun"
	"github.com/loadtape/loadtape/reports"
)

func main() {
	rows := flag.Int("rows", 10_000_000, "result rows to write")
	out := flag.String("out", "", "new run `DIR` to write (must not exist)")
	stats := flag.String("stats", "", "run `DIR` to analyse, timing analyze.Analyze alone")
	cpu := flag.String("cpuprofile", "", "with -stats: write a CPU profile to `FILE`")
	mem := flag.String("memprofile", "", "with -stats: write an allocation profile to `FILE`")
	tr := flag.String("trace", "", "with -stats: write an execution trace to `FILE` (go tool trace)")
	report := flag.String("report", "", "with -stats: also write every report into `DIR` (timed apart)")
	flag.Parse()
	switch {
	case *stats != "":
		if err := timeStats(*stats, *report, *cpu, *mem, *tr); err != nil {
			fmt.Fprintf(os.Stderr, "analyzegen: %v\n", err)
			os.Exit(1)
		}
	case *out != "" && *rows >= 12:
		if err := os.Mkdir(*out, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "analyzegen: -out: %v\n", err)
			os.Exit(2)
		}
		if err := benchrun.Write(*out, *rows); err != nil {
			fmt.Fprintf(os.Stderr, "analyzegen: %v\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "analyzegen: want -out DIR (with -rows of at least 12) or -stats DIR")
		os.Exit(2)
	}
}

func timeStats(dir, report, cpuFile, memFile, traceFile string) error {
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	if cpuFile != "" {
		f, err := os.Create(cpuFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if memFile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	start := time.Now()
	s, err := analyze.Analyze(analyze.Options{Runs: []string{dir}})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	n := 0
	for _, st := range s.Stages {
		n += len(st.Operations)
	}
	fmt.Printf("analyze: %d stages, %d operation rows in %.3f s\n", len(s.Stages), n, secs)
	if report != "" {
		start := time.Now()
		if err := reports.Write(report, s); err != nil {
			return err
		}
		fmt.Printf("reports: written in %.3f s\n", time.Since(start).Seconds())
	}
	if memFile != "" {
		f, err := os.Create(memFile)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return nil
}
