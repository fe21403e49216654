package analyze

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/loadtape/loadtape/captures"
)

// The result files are read here rather than through captures.Reader's
// rows: the string columns (run, scenario, operation, error kind and text)
// are decoded as Arrow dictionaries, so that each distinct value becomes
// one Go string per batch instead of a copy per row, and equal values share
// their bytes (a string comparison then stops at the pointer). A file this
// reader does not expect (a column missing or of another type, anything it
// cannot open) is read by captures.Reader instead, which reports what is
// wrong with it the way every other command does.

// resultCol is one column analyze reads and where it goes in a row.
type resultCol struct {
	name string
	// set fills rows from a's values off, off+1, …; false: a is not of
	// the expected type.
	set func(a arrow.Array, rows []captures.Result, off int, in *interner) bool
}

func i64Of(name string, p func(*captures.Result) *int64) resultCol {
	return resultCol{name, func(a arrow.Array, rows []captures.Result, off int, _ *interner) bool {
		c, ok := a.(*array.Int64)
		if !ok || c.NullN() > 0 {
			return false
		}
		v := c.Int64Values()[off:]
		for i := range rows {
			*p(&rows[i]) = v[i]
		}
		return true
	}}
}

func i32Of(name string, p func(*captures.Result) *int32) resultCol {
	return resultCol{name, func(a arrow.Array, rows []captures.Result, off int, _ *interner) bool {
		c, ok := a.(*array.Int32)
		if !ok || c.NullN() > 0 {
			return false
		}
		v := c.Int32Values()[off:]
		for i := range rows {
			*p(&rows[i]) = v[i]
		}
		return true
	}}
}

func strOf(name string, p func(*captures.Result) *string) resultCol {
	return resultCol{name, func(a arrow.Array, rows []captures.Result, off int, in *interner) bool {
		d, ok := a.(*array.Dictionary)
		if !ok || d.NullN() > 0 {
			return false
		}
		dict, ok := d.Dictionary().(*array.String)
		if !ok {
			return false
		}
		vals := in.values(a, dict)
		switch idx := d.Indices().(type) {
		case *array.Int32:
			for i, k := range idx.Int32Values()[off : off+len(rows)] {
				*p(&rows[i]) = vals[k]
			}
		default:
			for i := range rows {
				*p(&rows[i]) = vals[d.GetValueIndex(off+i)]
			}
		}
		return true
	}}
}

func offsetsOf(name string, p func(*captures.Result) *[]int64) resultCol {
	return resultCol{name, func(a arrow.Array, rows []captures.Result, off int, _ *interner) bool {
		l, ok := a.(*array.List)
		if !ok || l.NullN() > 0 {
			return false
		}
		c, ok := l.ListValues().(*array.Int64)
		if !ok {
			return false
		}
		// One copy of the batch's offsets, which the rows slice: the Arrow
		// buffer goes at the next batch, and the collector keeps none.
		var v []int64
		for i := range rows {
			start, end := l.ValueOffsets(off + i)
			if start == end {
				*p(&rows[i]) = nil
				continue
			}
			if v == nil {
				v = append([]int64(nil), c.Int64Values()...)
			}
			*p(&rows[i]) = v[start:end:end]
		}
		return true
	}}
}

// resultCols are resultColumns, decoded.
var resultCols = []resultCol{
	strOf("run", func(r *captures.Result) *string { return &r.Run }),
	strOf("scenario", func(r *captures.Result) *string { return &r.Scenario }),
	i32Of("stage", func(r *captures.Result) *int32 { return &r.Stage }),
	i32Of("vu", func(r *captures.Result) *int32 { return &r.VU }),
	i64Of("iteration", func(r *captures.Result) *int64 { return &r.Iteration }),
	strOf("operation", func(r *captures.Result) *string { return &r.Operation }),
	i64Of("intended_ns", func(r *captures.Result) *int64 { return &r.IntendedNS }),
	i64Of("start_ns", func(r *captures.Result) *int64 { return &r.StartNS }),
	i64Of("ttfb_ns", func(r *captures.Result) *int64 { return &r.TTFBNS }),
	i64Of("ttft_ns", func(r *captures.Result) *int64 { return &r.TTFTNS }),
	i64Of("duration_ns", func(r *captures.Result) *int64 { return &r.DurationNS }),
	offsetsOf("chunk_offsets_ns", func(r *captures.Result) *[]int64 { return &r.ChunkOffsetsNS }),
	strOf("error_kind", func(r *captures.Result) *string { return &r.ErrorKind }),
	strOf("error", func(r *captures.Result) *string { return &r.Error }),
	i64Of("prompt_tokens", func(r *captures.Result) *int64 { return &r.PromptTokens }),
	i64Of("completion_tokens", func(r *captures.Result) *int64 { return &r.CompletionTokens }),
	i32Of("active_users", func(r *captures.Result) *int32 { return &r.ActiveUsers }),
	i64Of("bytes_in", func(r *captures.Result) *int64 { return &r.BytesIn }),
}

// rowSlice is how many rows are filled and collected at a time.
const rowSlice = 2048

// maxInterned bounds the distinct strings one reader keeps; past it (error
// texts that differ row by row) values are copied as they come.
const maxInterned = 1 << 16

// interner gives each distinct string one Go copy.
type interner struct {
	m     map[string]string
	cache map[arrow.Array][]string // each column's dictionary, this batch
}

// values returns dict, the dictionary of column a, as Go strings that
// outlive the batch: made once per batch and column.
func (in *interner) values(a arrow.Array, dict *array.String) []string {
	if v, ok := in.cache[a]; ok {
		return v
	}
	if in.cache == nil {
		in.cache = map[arrow.Array][]string{}
	}
	vals := make([]string, 0, dict.Len())
	for i := range dict.Len() {
		v := dict.Value(i) // aliases the Arrow buffer
		s, ok := in.m[v]
		if !ok {
			s = strings.Clone(v)
			if len(in.m) < maxInterned {
				if in.m == nil {
					in.m = map[string]string{}
				}
				in.m[s] = s
			}
		}
		vals = append(vals, s)
	}
	in.cache[a] = vals
	return vals
}

// errUnexpected makes readResultFile hand a file to captures.Reader.
var errUnexpected = errors.New("not the layout analyze reads directly")

// filePart is one file's row groups to read, in order; nil groups means
// the whole file.
type filePart struct {
	path   string
	groups []int
}

// planParts cuts the files' row groups, in order, into at most n
// contiguous runs of about equal rows. A file whose footer cannot be read
// is one unit, left to the reader to report.
func planParts(files []string, n int) [][]filePart {
	type unit struct {
		path  string
		group int // -1: the whole file
		rows  int64
	}
	var units []unit
	var total int64
	for _, path := range files {
		pf, err := file.OpenParquetFile(path, false)
		if err != nil || pf.NumRowGroups() < 2 {
			rows := int64(1)
			if err == nil {
				rows = max(1, pf.NumRows())
				pf.Close()
			}
			units = append(units, unit{path, -1, rows})
			total += rows
			continue
		}
		for g := range pf.NumRowGroups() {
			rows := max(1, pf.MetaData().RowGroup(g).NumRows())
			units = append(units, unit{path, g, rows})
			total += rows
		}
		pf.Close()
	}
	var out [][]filePart
	var cur []filePart
	var done int64
	for _, u := range units {
		if len(cur) > 0 && len(out) < n-1 && done >= total*int64(len(out)+1)/int64(n) {
			out = append(out, cur)
			cur = nil
		}
		done += u.rows
		switch {
		case u.group < 0:
			cur = append(cur, filePart{path: u.path})
		case len(cur) > 0 && cur[len(cur)-1].path == u.path && cur[len(cur)-1].groups != nil:
			cur[len(cur)-1].groups = append(cur[len(cur)-1].groups, u.group)
		default:
			cur = append(cur, filePart{path: u.path, groups: []int{u.group}})
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// readInto reads the parts, in order, into c.
func readInto(c *collector, parts []filePart) error {
	var in interner
	var rows []captures.Result
	for _, p := range parts {
		err := readResultFile(c, p.path, p.groups, &in, &rows)
		if errors.Is(err, errUnexpected) {
			if p.groups != nil {
				// Another reader has the file's other row groups.
				return badInputf("%s: not laid out as loadtape writes result files (columns or their types differ)", p.path)
			}
			err = readRows(c, p.path)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readResultFile reads one result file (its row groups groups, nil: all)
// into c, batch by batch. Before the
// first row reaches c, any surprise returns errUnexpected; after it, an
// error is a damaged file.
func readResultFile(c *collector, path string, groups []int, in *interner, rows *[]captures.Result) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return errUnexpected
	}
	defer f.Close()
	started := false
	defer func() {
		// A damaged page can make the decoder panic: an error naming the
		// file, as captures.Reader gives.
		if p := recover(); p != nil {
			if started {
				err = badInputf("%s: %v: %v", path, captures.ErrCorruptFile, p)
			} else {
				err = errUnexpected
			}
		}
	}()
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true // pages as needed, not whole column chunks
	pf, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		return errUnexpected
	}
	defer pf.Close()
	kv := pf.MetaData().KeyValueMetadata()
	if k := kv.FindValue(captures.MetaKind); k == nil || captures.Kind(*k) != captures.KindResults {
		return errUnexpected
	}
	if v := kv.FindValue(captures.MetaSchema); v == nil {
		return errUnexpected
	} else if n, err := strconv.Atoi(*v); err != nil || n < 1 || n > captures.SchemaVersion {
		return errUnexpected
	}
	for _, e := range kv {
		// The Parquet schema has every type; a damaged Arrow schema entry
		// could make pqarrow's decoder allocate without bound.
		if e.Key == "ARROW:schema" {
			e.Key = "loadtape.ignored.ARROW:schema"
		}
	}
	schema := pf.MetaData().Schema
	arrowProps := pqarrow.ArrowReadProperties{BatchSize: captures.DefaultBatchSize}
	leaves := make([]int, 0, len(resultCols))
	for _, col := range resultCols {
		i := schema.ColumnIndexByName(col.name)
		if i < 0 {
			// A list's leaf is named by its path.
			i = schema.ColumnIndexByName(col.name + ".list.element")
		}
		if i < 0 {
			return errUnexpected
		}
		if schema.Column(i).PhysicalType() == parquet.Types.ByteArray {
			arrowProps.SetReadDict(i, true)
		}
		leaves = append(leaves, i)
	}
	fr, err := pqarrow.NewFileReader(pf, arrowProps, memory.DefaultAllocator)
	if err != nil {
		return errUnexpected
	}
	rr, err := fr.GetRecordReader(context.Background(), leaves, groups)
	if err != nil {
		return errUnexpected
	}
	defer rr.Release()
	// The record's fields in file order, each to its column.
	fields := rr.Schema().Fields()
	if len(fields) != len(resultCols) {
		return errUnexpected
	}
	setters := make([]int, len(fields))
	for i, fl := range fields {
		setters[i] = -1
		for j, col := range resultCols {
			if col.name == fl.Name {
				setters[i] = j
			}
		}
		if setters[i] < 0 {
			return errUnexpected
		}
	}
	for rr.Next() {
		rec := rr.RecordBatch()
		n := int(rec.NumRows())
		if *rows == nil {
			*rows = make([]captures.Result, rowSlice)
		}
		clear(in.cache)
		// The batch's rows a slice at a time, small enough to stay in the
		// CPU's cache between filling them and collecting them.
		for off := 0; off < n; off += rowSlice {
			batch := (*rows)[:min(rowSlice, n-off)]
			for i, j := range setters {
				if !resultCols[j].set(rec.Column(i), batch, off, in) {
					if started {
						return badInputf("%s: %v: column %q changed type between row groups", path, captures.ErrCorruptFile, resultCols[j].name)
					}
					return errUnexpected
				}
			}
			started = true
			for i := range batch {
				if !c.add(&batch[i]) {
					r := &batch[i]
					return badInputf("%s: results of scenario %q stage %d, which run.json does not list: the run directory's run.json does not match its files", path, r.Scenario, r.Stage)
				}
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		if !started {
			return errUnexpected
		}
		return badInputf("%s: %v: %s", path, captures.ErrCorruptFile, strings.Join(strings.Fields(err.Error()), " "))
	}
	return nil
}

// readRows reads one file through captures.Reader's rows.
func readRows(c *collector, path string) error {
	rr, err := captures.NewReader[captures.Result]([]string{path}, captures.ReaderOptions{Columns: resultColumns})
	if err != nil {
		return badInputf("%v", err)
	}
	defer rr.Close()
	for rr.Next() {
		batch := rr.Batch()
		for i := range batch {
			if !c.add(&batch[i]) {
				r := &batch[i]
				return badInputf("%s: results of scenario %q stage %d, which run.json does not list: the run directory's run.json does not match its files", rr.File(), r.Scenario, r.Stage)
			}
		}
	}
	if err := rr.Err(); err != nil {
		return badInputf("%v", err)
	}
	return nil
}
