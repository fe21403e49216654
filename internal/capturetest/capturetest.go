// Package capturetest reads loadtape Parquet files whole, for tests that
// check what a writer, the proxy or a replay left in a directory.
//
// The rows a captures.Reader returns own their strings, byte slices and
// header lists, so they stay valid after the next batch: nothing is copied.
package capturetest

import (
	"testing"

	"github.com/loadtape/loadtape/captures"
)

// Read returns every row of kind T in the Parquet files of dirs (files or
// directories, as captures.NewReader takes them), in the reader's order;
// an error opening or reading them fails the test.
func Read[T captures.Row](t testing.TB, dirs ...string) []T {
	t.Helper()
	r, err := captures.NewReader[T](dirs, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows []T
	for r.Next() {
		rows = append(rows, r.Batch()...)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}
