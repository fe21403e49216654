package captures_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
)

// writeForeign writes a Parquet file that is not a loadtape capture, or
// one claiming a schema version from the future.
func writeForeign(t *testing.T, path string, meta map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	fw, err := pqarrow.NewFileWriter(sc, f, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	rec := array.NewRecordBatch(sc, []arrow.Array{col}, 3)
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	col.Release()
	b.Release()
	for k, v := range meta {
		fw.AppendKeyValueMetadata(k, v)
	}
	if err := fw.Close(); err != nil { // closes f too
		t.Fatal(err)
	}
}

// mixedDir makes a run-like directory: exchanges, results and samples side
// by side, plus a leftover .inprogress file.
func mixedDir(t *testing.T) string {
	dir := t.TempDir()
	g := fake.New(9, 1_700_000_000_000_000_000)
	ex, _ := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	rs, _ := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir})
	sm, _ := captures.NewWriter[captures.Sample](captures.WriterOptions{Dir: dir})
	for i := range 100 {
		ex.Write(g.Mixed())
		rs.Write(g.Result(1, 10))
		sm.Write(g.Samples(int64(i))...)
	}
	for _, c := range []interface{ Close() error }{ex, rs, sm} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "exchanges-x-000009"+captures.InProgressExt), []byte("PAR1 half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMixedDirectory(t *testing.T) {
	t.Parallel()
	dir := mixedDir(t)
	if n := len(readAll[captures.Exchange](t, []string{dir}, captures.ReaderOptions{})); n != 100 {
		t.Errorf("exchanges from a mixed directory: %d rows, want 100", n)
	}
	if n := len(readAll[captures.Result](t, []string{filepath.Join(dir, "*.parquet")}, captures.ReaderOptions{})); n != 100 {
		t.Errorf("results from a glob over a mixed directory: %d rows, want 100", n)
	}
	if n := len(readAll[captures.Sample](t, []string{dir}, captures.ReaderOptions{})); n != 400 {
		t.Errorf("samples from a mixed directory: %d rows, want 400", n)
	}
	infos, err := captures.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[captures.Kind]int{}
	incomplete := 0
	for _, fi := range infos {
		if fi.Err != nil {
			t.Errorf("List: %v", fi.Err)
		}
		if fi.Incomplete {
			incomplete++
		} else {
			kinds[fi.Kind]++
		}
	}
	if incomplete != 1 || len(kinds) != 3 {
		t.Errorf("List found %d incomplete and kinds %v, want 1 and all three", incomplete, kinds)
	}
}

// TestBadFiles: every kind of bad file is a one-line error naming it, and
// List still describes the good files beside it.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	dir := mixedDir(t)
	exFiles, _ := filepath.Glob(filepath.Join(dir, "exchanges-*.parquet"))
	good, err := os.ReadFile(exFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(bad, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		want       string
		is         error
	}{
		{"truncated footer", write("truncated.parquet", good[:len(good)-100]), "not a readable Parquet file", nil},
		{"only the header", write("header.parquet", good[:4]), "not a readable Parquet file", nil},
		{"text file", write("notes.parquet", []byte("this is not parquet\n")), "not a readable Parquet file", nil},
		{"empty file", write("empty.parquet", nil), "not a readable Parquet file", nil},
		{"foreign parquet", func() string {
			p := filepath.Join(bad, "foreign.parquet")
			writeForeign(t, p, nil)
			return p
		}(), "", captures.ErrNotCapture},
		{"newer schema", func() string {
			p := filepath.Join(bad, "future.parquet")
			writeForeign(t, p, map[string]string{captures.MetaKind: "exchanges", captures.MetaSchema: "2"})
			return p
		}(), "", captures.ErrNewerSchema},
		{"garbage schema", func() string {
			p := filepath.Join(bad, "garbage.parquet")
			writeForeign(t, p, map[string]string{captures.MetaKind: "exchanges", captures.MetaSchema: "one"})
			return p
		}(), "", captures.ErrBadSchema},
		{"kind claimed, columns missing", func() string {
			p := filepath.Join(bad, "hollow.parquet")
			writeForeign(t, p, map[string]string{captures.MetaKind: "exchanges", captures.MetaSchema: "1"})
			return p
		}(), "", captures.ErrCorruptFile},
		{"another kind, named explicitly", filepath.Join(dir, firstMatch(t, dir, "results-*.parquet")), "", captures.ErrWrongKind},
		{"in-progress file, named explicitly", filepath.Join(dir, "exchanges-x-000009"+captures.InProgressExt), "", captures.ErrIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := captures.NewReader[captures.Exchange]([]string{c.path}, captures.ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for r.Next() {
			}
			r.Close()
			err = r.Err()
			if err == nil {
				t.Fatal("read without error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.path) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, c.path)
			}
			if c.want != "" && !strings.Contains(msg, c.want) {
				t.Errorf("error %q: want it to say %q", msg, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q: want errors.Is %v", msg, c.is)
			}
		})
	}

	// List: the bad files carry their errors, the good one is described.
	write("good.parquet", good)
	infos, err := captures.List(bad)
	if err != nil {
		t.Fatal(err)
	}
	var ok, failed int
	for _, fi := range infos {
		if fi.Err != nil {
			failed++
		} else if fi.Kind == captures.KindExchanges && fi.Rows > 0 {
			ok++
		}
	}
	if ok != 1 || failed < 7 {
		t.Errorf("List: %d good and %d bad files, want 1 and at least 7", ok, failed)
	}
	if _, err := captures.List(filepath.Join(bad, "missing.parquet")); err == nil {
		t.Error("List of a missing file: no error")
	}
	if _, err := captures.NewReader[captures.Exchange]([]string{filepath.Join(bad, "nothing-*.parquet")}, captures.ReaderOptions{}); !errors.Is(err, captures.ErrNoMatch) {
		t.Errorf("glob matching nothing: %v, want ErrNoMatch", err)
	}
}

func firstMatch(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) == 0 {
		t.Fatalf("nothing matches %s in %s", pattern, dir)
	}
	return filepath.Base(m[0])
}
