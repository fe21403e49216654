package replay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// runFilePatterns are the files a run writes into its directory; --force
// removes exactly these before a new run.
var runFilePatterns = []string{"results-*", "samples-*", "run.json", "run.json.tmp"}

// checkOut refuses an --out that would mix two runs: a directory with
// anything in it, unless force. A missing directory is created later.
func checkOut(out string, force bool) error {
	if out == "" {
		return badInput(errors.New("replay: no output directory (want --out DIR)"))
	}
	fi, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return badInput(fmt.Errorf("--out %s: %w", out, err))
	}
	if !fi.IsDir() {
		return badInput(fmt.Errorf("--out %s: not a directory", out))
	}
	if force {
		return nil
	}
	names, err := readNames(out)
	if err != nil {
		return badInput(fmt.Errorf("--out %s: %w", out, err))
	}
	if len(names) == 0 {
		return nil
	}
	held := names[0]
	if len(names) > 1 {
		held = fmt.Sprintf("%s and %d more", names[0], len(names)-1)
	}
	return badInput(fmt.Errorf("--out %s: the directory is not empty (it holds %s); give a new directory, or --force to remove its earlier results, samples and run.json first", out, held))
}

// readNames lists a directory, run.json first when it is there (the name
// that tells a person it is a run).
func readNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		if e.Name() == "run.json" {
			names = append([]string{e.Name()}, names...)
		} else {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// clearOut removes an earlier run's files from out when force is set, so
// that the new run's files never mix with them. It runs only once the new
// run is sure to start (after the health checks).
func clearOut(out string, force bool) error {
	if !force {
		return nil
	}
	for _, pat := range runFilePatterns {
		ms, err := filepath.Glob(filepath.Join(out, pat))
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("--force: %w", err)
			}
		}
	}
	return nil
}
