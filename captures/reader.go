package captures

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// DefaultBatchSize is the rows per batch when ReaderOptions.BatchSize is 0.
const DefaultBatchSize = 64 << 10

// ReaderOptions configures a Reader.
type ReaderOptions struct {
	// Columns to read, by FORMAT.md name (e.g. "duration_ns"); nil means
	// all. Fields of other columns stay zero in Batch.
	Columns []string
	// BatchSize is the rows per batch; 0 means DefaultBatchSize. A batch
	// never spans two files, so it may be shorter.
	BatchSize int
	// Allocator for Arrow buffers; nil means the Go allocator. Tests pass a
	// checked allocator to prove nothing leaks.
	Allocator memory.Allocator
}

// Reader streams rows of one kind from files, directories and globs in
// batches, reading only the requested columns and never a whole file:
//
//	r, err := captures.NewReader[captures.Result](paths, captures.ReaderOptions{Columns: cols})
//	if err != nil { ... }
//	defer r.Close()
//	for r.Next() {
//		for _, row := range r.Batch() { ... }
//	}
//	if err := r.Err(); err != nil { ... }
//
// Directories (read non-recursively) and globs yield their *.parquet files
// of kind T and skip files of other kinds, so a run directory can be read as
// results or as samples. A file named explicitly that holds another kind, a
// foreign or corrupt file, or a newer schema version stops the reader with
// an error naming the file.
type Reader[T Row] struct {
	codec   *codec[T]
	opts    ReaderOptions
	mem     memory.Allocator
	cols    []int    // codec column indices to read
	names   []string // their names
	targets []target
	next    int // index into targets of the next file to open

	pf    *parquetFile
	rr    pqarrow.RecordReader
	path  string
	cur   arrow.RecordBatch // owned by rr; valid until Next
	get   []int             // for each column of cur, the codec column
	batch []T
	ready bool // batch holds cur's rows
	err   error
}

// NewReader checks the columns and expands paths; files are opened one at a
// time as Next reaches them.
func NewReader[T Row](paths []string, opts ReaderOptions) (*Reader[T], error) {
	c := codecOf[T]()
	cols, err := c.checkColumns(opts.Columns)
	if err != nil {
		return nil, err
	}
	targets, err := expand(paths, false)
	if err != nil {
		return nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	mem := opts.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	names := make([]string, len(cols))
	for i, ci := range cols {
		names[i] = c.cols[ci].field.Name
	}
	return &Reader[T]{codec: c, opts: opts, mem: mem, cols: cols, names: names, targets: targets}, nil
}

// Next advances to the next batch, releasing the previous one. It returns
// false at the end of the last file or on an error (see Err).
func (r *Reader[T]) Next() (ok bool) {
	if r.err != nil {
		return false
	}
	defer func() {
		// A damaged page can make the decoder panic; report it as an
		// error naming the file instead of taking the process down.
		if p := recover(); p != nil {
			r.err = fmt.Errorf("%s: %w: %v", r.path, ErrCorruptFile, p)
			r.closeFile()
			ok = false
		}
	}()
	r.cur, r.ready = nil, false
	for {
		if r.rr != nil {
			if r.rr.Next() {
				r.cur = r.rr.RecordBatch()
				if r.cur.NumRows() == 0 {
					continue
				}
				return true
			}
			err := r.rr.Err()
			r.closeFile()
			if err != nil && !errors.Is(err, io.EOF) {
				r.err = fmt.Errorf("%s: %w: %s", r.path, ErrCorruptFile, oneLine(err))
				return false
			}
		}
		if r.next >= len(r.targets) {
			return false
		}
		t := r.targets[r.next]
		r.next++
		if err := r.open(t); err != nil {
			r.err = err
			return false
		}
	}
}

// open opens t and prepares a record reader over the wanted columns. A file
// of another kind that came from a directory or glob is skipped (r.rr stays
// nil); named explicitly, it is an error.
func (r *Reader[T]) open(t target) error {
	pf, err := openFile(t.path, r.mem)
	if err != nil {
		return err
	}
	if pf.kind != r.codec.kind {
		pf.Close()
		if t.explicit {
			return fmt.Errorf("%s: %w: %s, not %s", t.path, ErrWrongKind, pf.kind, r.codec.kind)
		}
		return nil
	}
	fr, err := pqarrow.NewFileReader(pf.pf, pqarrow.ArrowReadProperties{BatchSize: int64(r.opts.BatchSize)}, r.mem)
	if err != nil {
		pf.Close()
		return fmt.Errorf("%s: %s", t.path, oneLine(err))
	}
	leaves, err := matchColumns(fr, r.codec, r.cols)
	if err != nil {
		pf.Close()
		return fmt.Errorf("%s: %w", t.path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), leaves, nil)
	if err != nil {
		pf.Close()
		return fmt.Errorf("%s: %s", t.path, oneLine(err))
	}
	get := make([]int, rr.Schema().NumFields())
	for i, f := range rr.Schema().Fields() {
		get[i] = r.codec.byName[f.Name]
	}
	r.pf, r.rr, r.path, r.get = pf, rr, t.path, get
	return nil
}

// matchColumns maps the wanted columns of c to the file's top-level fields
// and their leaf columns, checking each type against the schema this build
// writes.
func matchColumns[T any](fr *pqarrow.FileReader, c *codec[T], cols []int) ([]int, error) {
	byName := make(map[string]int, len(fr.Manifest.Fields))
	for i, f := range fr.Manifest.Fields {
		byName[f.Field.Name] = i
	}
	var leaves []int
	for _, ci := range cols {
		want := c.cols[ci].field
		fi, ok := byName[want.Name]
		if !ok {
			return nil, fmt.Errorf("%w: column %q is missing", ErrCorruptFile, want.Name)
		}
		if got := fr.Manifest.Fields[fi].Field.Type; !sameType(got, want.Type) {
			return nil, fmt.Errorf("%w: column %q is %s, want %s", ErrCorruptFile, want.Name, got, want.Type)
		}
		leaves = collectLeaves(&fr.Manifest.Fields[fi], leaves)
	}
	return leaves, nil
}

func collectLeaves(f *pqarrow.SchemaField, out []int) []int {
	if f.IsLeaf() {
		return append(out, f.ColIndex)
	}
	for i := range f.Children {
		out = collectLeaves(&f.Children[i], out)
	}
	return out
}

// sameType compares Arrow types ignoring the names of list elements, which
// Parquet writers spell differently ("item", "element").
func sameType(a, b arrow.DataType) bool {
	la, okA := a.(*arrow.ListType)
	lb, okB := b.(*arrow.ListType)
	if okA && okB {
		return sameType(la.Elem(), lb.Elem())
	}
	sa, okA := a.(*arrow.StructType)
	sb, okB := b.(*arrow.StructType)
	if okA && okB {
		if sa.NumFields() != sb.NumFields() {
			return false
		}
		for i := range sa.NumFields() {
			if sa.Field(i).Name != sb.Field(i).Name || !sameType(sa.Field(i).Type, sb.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return arrow.TypeEqual(a, b)
}

func (r *Reader[T]) closeFile() {
	if r.rr != nil {
		r.rr.Release()
		r.rr = nil
	}
	if r.pf != nil {
		r.pf.Close()
		r.pf = nil
	}
	r.cur = nil
}

// Batch returns the rows of the current batch, with the fields of columns
// not read left zero. The slice is reused by the next call to Next; the
// strings and byte slices in it are not, so rows copied out stay valid.
func (r *Reader[T]) Batch() []T {
	if r.cur == nil {
		return nil
	}
	if !r.ready {
		n := int(r.cur.NumRows())
		if cap(r.batch) < n {
			r.batch = make([]T, n)
		}
		r.batch = r.batch[:n]
		for i, ci := range r.get {
			r.codec.cols[ci].get(r.cur.Column(i), r.batch)
		}
		r.ready = true
	}
	return r.batch
}

// Record returns the current batch as Arrow, holding only the columns read,
// in file order; look them up by name with Schema().FieldIndices. It is
// released by the next call to Next: Retain it to keep it longer.
func (r *Reader[T]) Record() arrow.RecordBatch { return r.cur }

// File returns the path of the file the current batch came from.
func (r *Reader[T]) File() string { return r.path }

// Columns returns the names of the columns being read.
func (r *Reader[T]) Columns() []string { return r.names }

// Err returns the error that stopped Next, if any.
func (r *Reader[T]) Err() error { return r.err }

// Close releases the current file. It is safe to call more than once.
func (r *Reader[T]) Close() error {
	r.closeFile()
	r.next = len(r.targets)
	return nil
}
