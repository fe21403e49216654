package captures_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
)

// FuzzReader feeds arbitrary bytes to List and to the readers of all three
// kinds: any input must end in rows or an error naming the file, never a
// panic or a hang, and never leak Arrow memory.
func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	g := fake.New(11, 1_700_000_000_000_000_000)
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	if err != nil {
		f.Fatal(err)
	}
	for range 20 {
		w.Write(g.Mixed())
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	good, err := os.ReadFile(files[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[len(good)/2:])
	f.Add([]byte("PAR1"))
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Add([]byte{})
	// A flipped byte in the middle of the data pages.
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/3] ^= 0xff
	f.Add(flipped)

	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "x.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		infos, _ := captures.List(path)
		if len(infos) != 1 {
			t.Fatalf("List of one file: %d entries", len(infos))
		}
		mem := checkedAlloc(t)
		drain := func(next func() bool, err func() error) {
			for next() {
			}
			if e := err(); e != nil && !containsPath(e, path) {
				t.Errorf("error %q does not name the file", e)
			}
		}
		if r, err := captures.NewReader[captures.Exchange]([]string{path}, captures.ReaderOptions{BatchSize: 7, Allocator: mem}); err == nil {
			drain(func() bool { return r.Next() && len(r.Batch()) >= 0 }, r.Err)
			r.Close()
		}
		if r, err := captures.NewReader[captures.Result]([]string{path}, captures.ReaderOptions{Allocator: mem}); err == nil {
			drain(func() bool { return r.Next() && len(r.Batch()) >= 0 }, r.Err)
			r.Close()
		}
		if r, err := captures.NewReader[captures.Sample]([]string{path}, captures.ReaderOptions{Allocator: mem}); err == nil {
			drain(func() bool { return r.Next() && len(r.Batch()) >= 0 }, r.Err)
			r.Close()
		}
	})
}

func containsPath(err error, path string) bool {
	return len(err.Error()) >= len(path) && contains(err.Error(), path)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
