package captures_test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
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
	rng := rand.New(rand.NewPCG(21, 21))
	tmp := t.TempDir()
	const n = 40

	check := func(t *testing.T, kind captures.Kind, schema *arrow.Schema, query string, read func() arrow.RecordBatch) {
		files, _ := filepath.Glob(filepath.Join(tmp, string(kind)+"-*.parquet"))
		if len(files) != 1 {
			t.Fatalf("%d %s files, want 1", len(files), kind)
		}
		out := queryDuckDB(t, files[0], query)
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

// TestDuckDBReadsBenchmarkFile has DuckDB read what the benchmark writes:
// tens of thousands of chat exchanges with 1 KiB bodies, through the
// writer as the recorder uses it, so that the files hold many chunks
// (whose Arrow buffers the writer reuses), many pages and header
// dictionaries that overflow into plain encoding. Every body and header
// list DuckDB reads must hash to what was written.
func TestDuckDBReadsBenchmarkFile(t *testing.T) {
	t.Parallel()
	n := 30_000
	if raceEnabled {
		n = 6000
	}
	g := fake.New(22, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
	rows := make([]captures.Exchange, n)
	type sums struct{ req, resp, reqH, respH string }
	want := make(map[string]sums, n)
	headers := func(hs []captures.Header) string {
		var b strings.Builder
		for i, h := range hs {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(h.Name + ": " + h.Value)
		}
		return fmt.Sprintf("%x", md5.Sum([]byte(b.String())))
	}
	for i := range rows {
		rows[i] = g.Chat(1024, 1024)
		e := &rows[i]
		want[e.ID] = sums{fmt.Sprintf("%x", md5.Sum(e.ReqBody)), fmt.Sprintf("%x", md5.Sum(e.RespBody)), headers(e.ReqHeaders), headers(e.RespHeaders)}
	}
	tmp := t.TempDir()
	st := writeAll(t, captures.WriterOptions{Dir: tmp, Prefix: "exchanges"}, rows, 512)
	if st.Rows != int64(n) {
		t.Fatalf("writer counts %d rows, want %d", st.Rows, n)
	}
	const query = `SELECT id, md5(req_body) AS req, md5(resp_body) AS resp,
		md5(array_to_string(list_transform(req_headers, h -> h.name || ': ' || h.value), chr(10))) AS req_h,
		md5(array_to_string(list_transform(resp_headers, h -> h.name || ': ' || h.value), chr(10))) AS resp_h
		FROM f`
	out := queryDuckDB(t, filepath.Join(tmp, "exchanges-*.parquet"), query)
	var got struct {
		Rows []struct{ ID, Req, Resp, ReqH, RespH string }
	}
	if err := json.Unmarshal(bytes.ReplaceAll(bytes.ReplaceAll(out, []byte(`"req_h"`), []byte(`"reqh"`)), []byte(`"resp_h"`), []byte(`"resph"`)), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != n {
		t.Fatalf("DuckDB read %d rows, want %d", len(got.Rows), n)
	}
	seen := make(map[string]bool, n)
	bad := 0
	for _, r := range got.Rows {
		w, ok := want[r.ID]
		switch {
		case !ok || seen[r.ID]:
			t.Errorf("DuckDB read id %q, which was not written or came twice", r.ID)
		case r.Req != w.req || r.Resp != w.resp || r.ReqH != w.reqH || r.RespH != w.respH:
			t.Errorf("row %s: DuckDB's hashes of bodies and headers %s %s %s %s, want %s %s %s %s", r.ID, r.Req, r.Resp, r.ReqH, r.RespH, w.req, w.resp, w.reqH, w.respH)
		default:
			seen[r.ID] = true
			continue
		}
		if bad++; bad >= 5 {
			t.Fatal("giving up after 5 bad rows")
		}
	}
}

// queryDuckDB runs query over the Parquet files path names (a glob is
// fine) with DuckDB's Node client from testdata/node, and returns the
// JSON it prints.
func queryDuckDB(t *testing.T, path, query string) []byte {
	t.Helper()
	dir, node := nodefixture.Dir(t, "@duckdb/node-api")
	cmd := exec.Command(node, filepath.Join(dir, "captures-duckdb.mjs"), path, query)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	return out
}
