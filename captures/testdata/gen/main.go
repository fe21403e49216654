// Command gen writes the sample capture in captures/testdata/sample: a few
// hundred exchanges of the three services of a typical AI stack (OpenAI gateway,
// RAG, MCP), replay results of two stages and resource samples, all from a
// fixed seed so that regenerating gives the same bytes.
//
//	go run ./captures/testdata/gen
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..", "sample")
	old, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	g := fake.New(42, start.UnixNano())
	// Files: 1 keeps rows in one file in order, and without a write-ahead
	// log (Flush < 0) no timed flush splits the rows into other batches, so
	// the bytes are stable.
	opts := func(md map[string]string) captures.WriterOptions {
		return captures.WriterOptions{Dir: dir, Start: start, Files: 1, Roll: time.Hour, Flush: -1, Metadata: md}
	}
	ex, err := captures.NewWriter[captures.Exchange](opts(map[string]string{"loadtape.generator": "captures/testdata/gen"}))
	if err != nil {
		return err
	}
	for range 300 {
		if err := ex.Write(g.Mixed()); err != nil {
			return err
		}
	}
	rs, err := captures.NewWriter[captures.Result](opts(map[string]string{"run": "run-sample"}))
	if err != nil {
		return err
	}
	for i := range 400 {
		stage, users := int32(1), int32(10)
		if i >= 200 {
			stage, users = 2, 50
		}
		if err := rs.Write(g.Result(stage, users)); err != nil {
			return err
		}
	}
	sm, err := captures.NewWriter[captures.Sample](opts(map[string]string{"run": "run-sample"}))
	if err != nil {
		return err
	}
	for i := range 20 {
		if err := sm.Write(g.Samples(start.Add(time.Duration(i) * time.Second).UnixNano())...); err != nil {
			return err
		}
	}
	for _, c := range []interface{ Close() error }{ex, rs, sm} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	return nil
}
