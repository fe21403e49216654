package captures_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/nodefixture"
)

// duckType is the DuckDB type FORMAT.md promises for each column type.
func duckType(t arrow.DataType) string {
	switch t.ID() {
	case arrow.INT64:
		return "BIGINT"
	case arrow.INT32:
		return "INTEGER"
	case arrow.FLOAT64:
		return "DOUBLE"
	case arrow.BOOL:
		return "BOOLEAN"
	case arrow.STRING:
		return "VARCHAR"
	case arrow.BINARY:
		return "BLOB"
	case arrow.LIST:
		if e := t.(*arrow.ListType).Elem(); e.ID() == arrow.STRUCT {
			return `STRUCT("name" VARCHAR, "value" VARCHAR)[]`
		} else {
			return duckType(e) + "[]"
		}
	}
	return "unknown " + t.String()
}

// duckValue is how the DuckDB script prints value i of a as JSON (BIGINT as
// a string, BLOB as base64 by the query), in fmt.Sprint form.
func duckValue(a arrow.Array, i int) any {
	switch a := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Int32:
		return json.Number(strconv.FormatInt(int64(a.Value(i)), 10))
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return base64.StdEncoding.EncodeToString(a.Value(i))
	case *array.List:
		start, end := a.ValueOffsets(i)
		out := []any{}
		for j := start; j < end; j++ {
			switch v := a.ListValues().(type) {
			case *array.Int64:
				out = append(out, strconv.FormatInt(v.Value(int(j)), 10))
			case *array.Struct:
				out = append(out, map[string]any{"name": v.Field(0).(*array.String).Value(int(j)), "value": v.Field(1).(*array.String).Value(int(j))})
			}
		}
		return out
	}
	return fmt.Sprintf("unexpected %T", a)
}

// TestDuckDBReadsEveryColumn writes random rows of each kind and has
// DuckDB, an independent Parquet reader, read them: every column must have
// the documented type and every value must match.
func TestDuckDBReadsEveryColumn(t *testing.T) {
	t.Parallel()
	dir, node := nodefixture.Dir(t, "@duckdb/node-api")
	script := filepath.Join(dir, "captures-duckdb.mjs")
	rng := rand.New(rand.NewPCG(21, 21))
	tmp := t.TempDir()
	const n = 40

	check := func(t *testing.T, kind captures.Kind, schema *arrow.Schema, query string, read func() arrow.RecordBatch) {
		files, _ := filepath.Glob(filepath.Join(tmp, string(kind)+"-*.parquet"))
		if len(files) != 1 {
			t.Fatalf("%d %s files, want 1", len(files), kind)
		}
		cmd := exec.Command(node, script, files[0], query)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("duckdb: %v\n%s", err, stderr.String())
		}
		var got struct {
			Columns []struct{ Name, Type string }
			Rows    []map[string]any
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if len(got.Columns) != schema.NumFields() {
			t.Fatalf("DuckDB sees %d columns, FORMAT.md has %d", len(got.Columns), schema.NumFields())
		}
		for i, c := range got.Columns {
			f := schema.Field(i)
			if c.Name != f.Name || c.Type != duckType(f.Type) {
				t.Errorf("column %d: DuckDB reads %s %s, want %s %s", i, c.Name, c.Type, f.Name, duckType(f.Type))
			}
		}
		rec := read()
		defer rec.Release()
		if len(got.Rows) != int(rec.NumRows()) {
			t.Fatalf("DuckDB read %d rows, want %d", len(got.Rows), rec.NumRows())
		}
		for ci, f := range schema.Fields() {
			for i, row := range got.Rows {
				want := duckValue(rec.Column(ci), i)
				have := row[f.Name]
				if f.Type.ID() == arrow.FLOAT64 {
					hv, _ := have.(json.Number).Float64()
					if wv := rec.Column(ci).(*array.Float64).Value(i); math.Abs(hv-wv) > 1e-12*math.Abs(wv) {
						t.Errorf("row %d %s: DuckDB %v, want %v", i, f.Name, hv, wv)
					}
					continue
				}
				if fmt.Sprint(have) != fmt.Sprint(want) {
					t.Errorf("row %d %s: DuckDB %.200v, want %.200v", i, f.Name, have, want)
				}
			}
		}
	}

	t.Run("exchanges", func(t *testing.T) {
		// i+2 skips the 1 MiB body of randExchange's row 1.
		duckRoundTrip(t, tmp, n, func(i int) captures.Exchange { return randExchange(rng, i+2) }, captures.KindExchanges,
			"SELECT * REPLACE (to_base64(req_body) AS req_body, to_base64(resp_body) AS resp_body) FROM f", check)
	})
	t.Run("results", func(t *testing.T) {
		duckRoundTrip(t, tmp, n, func(i int) captures.Result { return randResult(rng, i) }, captures.KindResults, "SELECT * FROM f", check)
	})
	t.Run("samples", func(t *testing.T) {
		duckRoundTrip(t, tmp, n, func(i int) captures.Sample { return randSample(rng, i) }, captures.KindSamples, "SELECT * FROM f", check)
	})
}

// duckRoundTrip writes n rows of one kind made by gen into dir and has
// check compare what DuckDB reads with what our reader reads.
func duckRoundTrip[T captures.Row](t *testing.T, dir string, n int, gen func(i int) T, kind captures.Kind, query string,
	check func(*testing.T, captures.Kind, *arrow.Schema, string, func() arrow.RecordBatch)) {
	t.Helper()
	rows := make([]T, n)
	for i := range rows {
		rows[i] = gen(i)
	}
	writeAll(t, captures.WriterOptions{Dir: dir, Files: 1}, rows, n)
	check(t, kind, captures.Schema[T](), query, func() arrow.RecordBatch { return readRecord[T](t, dir) })
}

// readRecord reads the single batch of a small file with our reader, in
// file column order.
func readRecord[T captures.Row](t *testing.T, dir string) arrow.RecordBatch {
	t.Helper()
	r, err := captures.NewReader[T]([]string{dir}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatalf("no batch: %v", r.Err())
	}
	rec := r.Record()
	rec.Retain()
	if r.Next() {
		t.Fatal("more than one batch")
	}
	return rec
}
