package analyze

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/loadtape/loadtape/captures"
)

// Options are what `loadtape analyze` passes.
type Options struct {
	Runs    []string // run directories: one run, or the shards of one run
	Targets string   // a --targets YAML file replacing the profile's targets; "" keeps them
	WarmUp  *WarmUp  // nil means DefaultWarmUp
}

// resultColumns are the only result columns analyze reads.
var resultColumns = []string{"run", "scenario", "stage", "vu", "iteration", "operation",
	"intended_ns", "start_ns", "ttfb_ns", "ttft_ns", "duration_ns", "chunk_offsets_ns",
	"error_kind", "error", "prompt_tokens", "completion_tokens", "active_users", "bytes_in"}

var sampleColumns = []string{"t_ns", "source", "device", "metric", "value"}

// Analyze reads the run directories and produces the Summary. Errors caused
// by the input (no result files, a newer schema, a run.json that does not
// match its files, a bad targets file) satisfy errors.Is(err, ErrBadInput).
func Analyze(opts Options) (*Summary, error) {
	if len(opts.Runs) == 0 {
		return nil, badInputf("analyze: no run directory given")
	}
	infos := make([]*RunInfo, len(opts.Runs))
	for i, dir := range opts.Runs {
		ri, err := ReadRunInfo(dir)
		if err != nil {
			return nil, err
		}
		if err := checkResultFiles(dir); err != nil {
			return nil, err
		}
		infos[i] = ri
	}
	info, err := mergeRunInfo(opts.Runs, infos)
	if err != nil {
		return nil, err
	}
	specs, acceptance, err := targetsFor(info, opts.Targets, filepath.Join(opts.Runs[0], "run.json"))
	if err != nil {
		return nil, err
	}
	warm := DefaultWarmUp
	if opts.WarmUp != nil {
		warm = *opts.WarmUp
	}
	files, err := resultFiles(opts.Runs)
	if err != nil {
		return nil, err
	}
	c, err := collectFiles(info, warm, files)
	if err != nil {
		return nil, err
	}
	for id := range c.runIDs {
		if id != info.ID {
			return nil, badInputf("%s: results of run %q, but run.json is run %q: the run directory's run.json does not match its files", opts.Runs[0], id, info.ID)
		}
	}
	var samples []captures.Sample
	sr, err := captures.NewReader[captures.Sample](opts.Runs, captures.ReaderOptions{Columns: sampleColumns})
	if err != nil {
		return nil, badInputf("%v", err)
	}
	defer sr.Close()
	for sr.Next() {
		samples = append(samples, sr.Batch()...)
	}
	if err := sr.Err(); err != nil {
		return nil, badInputf("%v", err)
	}
	s := build(info, c, samples, specs, acceptance)
	s.Sources = opts.Runs
	return s, nil
}

// resultFiles lists the complete result files of the run directories, in
// name order (their names start with the time they were opened).
func resultFiles(dirs []string) ([]string, error) {
	var out []string
	for _, dir := range dirs {
		files, err := captures.List(dir)
		if err != nil {
			return nil, badInputf("%s: %v", dir, err)
		}
		for _, f := range files {
			if f.Kind == captures.KindResults && !f.Incomplete && f.Err == nil {
				out = append(out, f.Path)
			}
		}
	}
	return out, nil
}

// collectFiles reads the result files on one goroutine per CPU, each
// into a collector of its own over a contiguous run of row groups holding
// about as many rows as the others' (planParts), and merges the
// collectors in file order. Decoding Parquet is most of the work, and it
// parallelises, even within one file.
func collectFiles(info *RunInfo, warm WarmUp, files []string) (*collector, error) {
	parts := planParts(files, max(1, runtime.GOMAXPROCS(0)))
	cs := make([]*collector, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for w := range parts {
		cs[w] = newCollector(info, warm)
		wg.Add(1)
		go func() { // ends when its row groups are read or one is bad
			defer wg.Done()
			errs[w] = readInto(cs[w], parts[w])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for _, o := range cs[1:] {
		cs[0].merge(o)
	}
	return cs[0], nil
}

// checkResultFiles fails on a run directory without readable result files.
func checkResultFiles(dir string) error {
	files, err := captures.List(dir)
	if err != nil {
		return badInputf("%s: %v", dir, err)
	}
	n := 0
	for _, f := range files {
		if f.Err != nil && !f.Incomplete {
			if errors.Is(f.Err, captures.ErrNewerSchema) {
				return badInputf("%v (upgrade loadtape to analyze this run)", f.Err)
			}
			return badInputf("%v", f.Err)
		}
		if f.Kind == captures.KindResults && !f.Incomplete {
			n++
		}
	}
	if n == 0 {
		return badInputf("%s: no result files (want results-*.parquet written by loadtape replay)", dir)
	}
	return nil
}

// targetsFor picks the profile's targets, or the --targets file's.
func targetsFor(info *RunInfo, file, runJSON string) ([]TargetSpec, float64, error) {
	if file != "" {
		specs, acc, err := ReadTargets(file)
		if err != nil {
			return nil, 0, err
		}
		if acc == 0 {
			acc = info.Profile.Acceptance
		}
		return specs, acc, nil
	}
	for i, t := range info.Profile.Targets {
		if err := checkTarget(t, fmt.Sprintf("%s: profile.targets[%d]", runJSON, i)); err != nil {
			return nil, 0, err
		}
	}
	return info.Profile.Targets, info.Profile.Acceptance, nil
}

// Summarize analyses rows already in memory: the entry point for tests and
// for callers that generate results themselves. info stands for run.json.
func Summarize(info *RunInfo, results []captures.Result, samples []captures.Sample, targets []TargetSpec, acceptance float64, warm *WarmUp) (*Summary, error) {
	w := DefaultWarmUp
	if warm != nil {
		w = *warm
	}
	for i, t := range targets {
		if err := checkTarget(t, fmt.Sprintf("targets[%d]", i)); err != nil {
			return nil, err
		}
	}
	c := newCollector(info, w)
	for i := range results {
		if !c.add(&results[i]) {
			return nil, badInputf("results of scenario %q stage %d, which the run info does not list", results[i].Scenario, results[i].Stage)
		}
	}
	return build(info, c, samples, targets, acceptance), nil
}

// String names the stage for messages.
func (st *Stage) String() string {
	return strings.TrimSpace(fmt.Sprintf("%s stage %d (%d users)", st.Scenario, st.Stage, st.Users))
}
