package reports

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/internal/benchrun"
)

// benchRows is the size of the benchmark run: 10 million result rows, the
// issue's bound; LOADTAPE_BENCH_ROWS makes it smaller for a quick look.
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("LOADTAPE_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 10_000_000
}

// writeBenchRun writes the run of n result rows bench/analyze.sh reads
// too (internal/benchrun).
func writeBenchRun(b *testing.B, dir string, n int) {
	b.Helper()
	if err := benchrun.Write(dir, n); err != nil {
		b.Fatal(err)
	}
}

// peakRSS is the process's peak resident set in MiB since the last
// resetPeak (Linux; 0 elsewhere).
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

// resetPeak resets VmHWM so that writing the input does not count.
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkAnalyzeAndReport10M: 10 million result rows through the full
// analysis and every report; the bound is 20 s and 2 GB.
func BenchmarkAnalyzeAndReport10M(b *testing.B) {
	n := benchRows()
	dir := b.TempDir()
	start := time.Now()
	writeBenchRun(b, dir, n)
	b.Logf("wrote %d rows in %v", n, time.Since(start))
	out := b.TempDir()
	debug.FreeOSMemory() // what writing the input kept must not count
	resetPeak()
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for b.Loop() {
		s, err := analyze.Analyze(analyze.Options{Runs: []string{dir}})
		if err != nil {
			b.Fatal(err)
		}
		if err := Write(out, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op") // wall time on a shared machine says more about the neighbours
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
	b.ReportMetric(float64(n), "rows")
}

// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
