package analyze

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"

	"github.com/loadtape/loadtape/internal/benchrun"
)

// TestNullableColumnsReadWhole: a result file of several row groups whose
// columns are nullable (another writer's layout, no value null) is not
// split between readers, which only the direct reader could take in
// parts: captures.Reader reads it whole, and Analyze gives what it gives
// for loadtape's own file.
func TestNullableColumnsReadWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := benchrun.Write(dir, 30_000); err != nil {
		t.Fatal(err)
	}
	want, err := Analyze(Options{Runs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := resultFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		rewriteResults(t, path, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(4000)), func(tbl arrow.Table) arrow.Table {
			fields := make([]arrow.Field, 0, tbl.NumCols())
			cols := make([]arrow.Column, 0, tbl.NumCols())
			for i, fl := range tbl.Schema().Fields() {
				fl.Nullable = true
				fields = append(fields, fl)
				cols = append(cols, *arrow.NewColumn(fl, tbl.Column(i).Data()))
			}
			return array.NewTable(arrow.NewSchema(fields, nil), cols, tbl.NumRows())
		})
	}
	if parts := planParts(files, 4); len(parts) != len(files) {
		t.Fatalf("%d files of nullable columns planned as %d parts, want one each", len(files), len(parts))
	}
	got, err := Analyze(Options{Runs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, got.Stages), mustJSON(t, want.Stages); a != b {
		t.Fatalf("stages differ from the loadtape file's:\n%.400s\nwant\n%.400s", a, b)
	}
}
