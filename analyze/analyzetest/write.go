package analyzetest

import (
	"os"
	"path/filepath"

	"github.com/loadtape/loadtape/captures"
)

// WriteRun writes a run directory as the replayer does: run.json beside
// result and sample files, rolled every 5000 rows so that readers meet
// several files.
func WriteRun(dir string, run *Run, rows []captures.Result, samples []captures.Sample) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "run.json"), run.JSON(), 0o644); err != nil {
		return err
	}
	if err := write(dir, rows); err != nil {
		return err
	}
	if len(samples) > 0 {
		return write(dir, samples)
	}
	return nil
}

func write[T captures.Row](dir string, rows []T) error {
	w, err := captures.NewWriter[T](captures.WriterOptions{Dir: dir, MaxRows: 5000})
	if err != nil {
		return err
	}
	if err := w.Write(rows...); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
