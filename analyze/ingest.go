package analyze

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/loadtape/loadtape/captures"
)

// The result files are read here rather than through captures.Reader's
// rows or pqarrow's record batches: each column chunk is decoded page by
// page straight into a small buffer of its own that is reused for every
// slice of rows (no Arrow arrays, no allocation per batch), and the rows
// are filled from those buffers a slice at a time, small enough to stay
// in the CPU's cache until they are collected. A string column's value is
// one Go string per distinct value (interned), so a scenario, operation or
// error text is not copied per row. A file this reader does not expect (a
// column missing, nullable or of another type, anything it cannot open) is
// read by captures.Reader instead, which reports what is wrong with it the
// way every other command does.

// colKind is how a column is stored and decoded.
type colKind uint8

const (
	kindI64  colKind = iota // required INT64
	kindI32                 // required INT32
	kindStr                 // required BYTE_ARRAY (UTF-8)
	kindList                // required list of required INT64
)

// resultCols are resultColumns, in order, with their kinds; column i of
// the list fills colBufs' field of the same name (colBufs.fill).
var resultCols = []struct {
	name string
	kind colKind
}{
	{"run", kindStr}, {"scenario", kindStr}, {"stage", kindI32}, {"vu", kindI32},
	{"iteration", kindI64}, {"operation", kindStr}, {"intended_ns", kindI64},
	{"start_ns", kindI64}, {"ttfb_ns", kindI64}, {"ttft_ns", kindI64},
	{"duration_ns", kindI64}, {"chunk_offsets_ns", kindList}, {"error_kind", kindStr},
	{"error", kindStr}, {"prompt_tokens", kindI64}, {"completion_tokens", kindI64},
	{"active_users", kindI32}, {"bytes_in", kindI64},
}

// Indices into resultCols, for colBufs.fill.
const (
	colRun = iota
	colScenario
	colStage
	colVU
	colIteration
	colOperation
	colIntended
	colStart
	colTTFB
	colTTFT
	colDuration
	colOffsets
	colErrorKind
	colError
	colPrompt
	colCompletion
	colActive
	colBytesIn
)

// rowSlice is how many rows are decoded, filled and collected at a time:
// the rows and their columns (about 450 KiB) stay in the second-level
// cache between one step and the next.
const rowSlice = 1024

// colBufs holds one slice of rows, column by column, reused from slice to
// slice.
type colBufs struct {
	i64  [len18][]int64
	i32  [len18][]int32
	str  [len18][]string
	offs [][]int64 // chunk_offsets_ns per row, slices of the list reader's buffer
	// The slice's numbers: the buffers above, or the page's own bytes
	// where they hold all of the slice (viewFixed), valid until the
	// column's next page is read, in the next slice.
	v64 [len18][]int64
	v32 [len18][]int32
}

const len18 = 18 // len(resultCols)

func newColBufs() *colBufs {
	b := &colBufs{offs: make([][]int64, rowSlice)}
	for i, c := range resultCols {
		switch c.kind {
		case kindI64:
			b.i64[i] = make([]int64, rowSlice)
		case kindI32:
			b.i32[i] = make([]int32, rowSlice)
		case kindStr:
			b.str[i] = make([]string, rowSlice)
		}
	}
	return b
}

// fill sets rows from the buffers' first len(rows) values. Every field
// is named here, so that the loop is one pass of plain stores.
func (b *colBufs) fill(rows []captures.Result) {
	n := len(rows)
	run, scen, op, kind, text := b.str[colRun][:n], b.str[colScenario][:n], b.str[colOperation][:n], b.str[colErrorKind][:n], b.str[colError][:n]
	stage, vu, active := b.v32[colStage][:n], b.v32[colVU][:n], b.v32[colActive][:n]
	iter, intended, start := b.v64[colIteration][:n], b.v64[colIntended][:n], b.v64[colStart][:n]
	ttfb, ttft, dur := b.v64[colTTFB][:n], b.v64[colTTFT][:n], b.v64[colDuration][:n]
	prompt, compl, bytesIn := b.v64[colPrompt][:n], b.v64[colCompletion][:n], b.v64[colBytesIn][:n]
	offs := b.offs[:n]
	for i := range rows {
		r := &rows[i]
		r.Run, r.Scenario, r.Operation, r.ErrorKind, r.Error = run[i], scen[i], op[i], kind[i], text[i]
		r.Stage, r.VU, r.ActiveUsers = stage[i], vu[i], active[i]
		r.Iteration, r.IntendedNS, r.StartNS = iter[i], intended[i], start[i]
		r.TTFBNS, r.TTFTNS, r.DurationNS = ttfb[i], ttft[i], dur[i]
		r.PromptTokens, r.CompletionTokens, r.BytesIn = prompt[i], compl[i], bytesIn[i]
		r.ChunkOffsetsNS = offs[i]
	}
}

// maxInterned bounds the distinct strings one reader keeps; past it (error
// texts that differ row by row) values are copied as they come.
const maxInterned = 1 << 16

// interner gives each distinct string one Go copy.
type interner struct {
	m map[string]string
}

func (in *interner) of(b []byte) string {
	if s, ok := in.m[string(b)]; ok { // no copy: the compiler looks up b's bytes
		return s
	}
	s := string(b)
	if len(in.m) < maxInterned {
		if in.m == nil {
			in.m = map[string]string{}
		}
		in.m[s] = s
	}
	return s
}

// strCol decodes one string column. Its values come from the decoder as
// slices of the page (or of the column chunk's dictionary), valid until
// the next page: each is made a Go string at once. Values of one
// dictionary share their bytes, so that within one read a value at the
// same address as the last one is the same string; a few recent values
// are kept beside it, so that the usual row (a scenario or operation name
// seen a row ago) costs a comparison, not a map lookup.
type strCol struct {
	cr     *file.ByteArrayColumnChunkReader
	raw    []parquet.ByteArray
	recent [4]string
	next   int
}

func (c *strCol) read(out []string, in *interner) (int, error) {
	if cap(c.raw) < len(out) {
		c.raw = make([]parquet.ByteArray, len(out))
	}
	done := 0
	for done < len(out) {
		n, _, err := c.cr.ReadBatchInPage(int64(len(out)-done), c.raw[:len(out)-done], nil, nil)
		if err != nil {
			return done, err
		}
		if n == 0 {
			break
		}
		// The page's values stay where they are until the next read.
		var lastPtr *byte
		lastLen := -1
		var last string
	vals:
		for i, v := range c.raw[:n] {
			if len(v) == lastLen && unsafe.SliceData(v) == lastPtr {
				out[done+i] = last
				continue
			}
			lastPtr, lastLen = unsafe.SliceData(v), len(v)
			if len(v) == 0 {
				last = ""
				out[done+i] = last
				continue
			}
			for _, s := range c.recent {
				if s == string(v) {
					last = s
					out[done+i] = s
					continue vals
				}
			}
			last = in.of(v)
			c.recent[c.next] = last
			c.next = (c.next + 1) % len(c.recent)
			out[done+i] = last
		}
		done += int(n)
	}
	return done, nil
}

// listCol decodes chunk_offsets_ns, a required list of required INT64:
// repetition level 0 starts a row, definition level 1 is an element, 0 an
// empty list. Levels and values are read ahead in chunks; a slice of rows
// is only cut once every level of its rows is buffered, and the buffer is
// only compacted at the start of the next slice, so the rows' slices stay
// valid while they are collected.
type listCol struct {
	cr         i64Reader
	defs, reps []int16
	vals       []int64
	lo, hi     int // buffered levels
	vlo, vhi   int // buffered values
	starts     int // rows starting among the buffered levels
	eof        bool
}

// listChunk is how many levels listCol reads at a time.
const listChunk = 8192

func (c *listCol) read(out [][]int64) (int, error) {
	// Compact what the last slice left.
	c.hi = copy(c.defs, c.defs[c.lo:c.hi])
	copy(c.reps, c.reps[c.lo:c.lo+c.hi])
	c.lo = 0
	c.vhi = copy(c.vals, c.vals[c.vlo:c.vhi])
	c.vlo = 0
	// Read until the buffer holds len(out) rows and the start of the next
	// (or the chunk's end).
	starts := c.starts
	for starts <= len(out) && !c.eof {
		if len(c.defs)-c.hi < listChunk {
			c.defs = append(c.defs, make([]int16, listChunk)...)
			c.reps = append(c.reps, make([]int16, listChunk)...)
			c.defs, c.reps = c.defs[:cap(c.defs)], c.reps[:cap(c.reps)]
		}
		if len(c.vals)-c.vhi < listChunk {
			c.vals = append(c.vals, make([]int64, listChunk)...)
			c.vals = c.vals[:cap(c.vals)]
		}
		n, nv, err := c.cr.ReadBatch(listChunk, c.vals[c.vhi:c.vhi+listChunk], c.defs[c.hi:c.hi+listChunk], c.reps[c.hi:c.hi+listChunk])
		if err != nil {
			return 0, err
		}
		if n == 0 {
			c.eof = true
			break
		}
		for _, r := range c.reps[c.hi : c.hi+int(n)] {
			if r == 0 {
				starts++
			}
		}
		c.hi += int(n)
		c.vhi += nv
	}
	rows := 0
	for rows < len(out) && c.lo < c.hi {
		if c.reps[c.lo] != 0 {
			return rows, errors.New("chunk_offsets_ns: a row starts with a repeated level")
		}
		start := c.vlo
		for {
			if c.defs[c.lo] == 1 {
				c.vlo++
			}
			c.lo++
			if c.lo == c.hi || c.reps[c.lo] == 0 {
				break
			}
		}
		if c.vlo > c.vhi {
			return rows, errors.New("chunk_offsets_ns: fewer values than its levels say")
		}
		if c.vlo == start {
			out[rows] = nil
		} else {
			out[rows] = c.vals[start:c.vlo:c.vlo]
		}
		rows++
	}
	c.starts = starts - rows
	return rows, nil
}

// errUnexpected makes readResultFile hand a file to captures.Reader.
var errUnexpected = errors.New("not the layout analyze reads directly")

// groupCols are one row group's column readers, in resultCols' order.
// A column whose statistics say every value of the row group is the same
// (a run's id, a scenario that ran alone, token counts of a service
// without tokens) is not decoded: it is that value, row after row.
type groupCols struct {
	raw   [len18]*pageCol // the columns pageCol decodes
	i64   [len18]i64Reader
	i32   [len18]i32Reader
	str   [len18]strReader
	list  *listCol
	all   []io.Closer
	same  [len18]bool
	sameI [len18]int64
	sameS [len18]string
}

// The column readers groupCols reads through: arrow-go's, or a pageCol
// (pages.go) where the chunk's encodings allow.
type (
	i64Reader interface {
		ReadBatch(n int64, values []int64, defs, reps []int16) (int64, int, error)
	}
	i32Reader interface {
		ReadBatch(n int64, values []int32, defs, reps []int16) (int64, int, error)
	}
	strReader interface {
		read(out []string, in *interner) (int, error)
	}
)

// maxSameLen bounds the string statistics taken for every value: a
// writer may cut longer ones short.
const maxSameLen = 256

// sameValue reports whether the column chunk's statistics say all its
// rows hold one value, and which.
func (g *groupCols) sameValue(rg *file.RowGroupReader, i, leaf int, in *interner) bool {
	md, err := rg.MetaData().ColumnChunk(leaf)
	if err != nil || md.NumValues() != rg.NumRows() {
		return false
	}
	st, err := md.Statistics()
	if err != nil || st == nil || !st.HasMinMax() || !st.HasNullCount() || st.NullCount() != 0 {
		return false
	}
	switch st := st.(type) {
	case *metadata.Int64Statistics:
		g.sameI[i] = st.Min()
		return resultCols[i].kind == kindI64 && st.Min() == st.Max()
	case *metadata.Int32Statistics:
		g.sameI[i] = int64(st.Min())
		return resultCols[i].kind == kindI32 && st.Min() == st.Max()
	case *metadata.ByteArrayStatistics:
		lo, hi := st.Min(), st.Max()
		if resultCols[i].kind != kindStr || len(lo) > maxSameLen || string(lo) != string(hi) {
			return false
		}
		g.sameS[i] = ""
		if len(lo) > 0 {
			g.sameS[i] = in.of(lo)
		}
		return true
	}
	return false
}

// openGroup opens the row group's readers of the leaves (resultCols'
// order). ok is false when a column is not of the kind analyze reads.
func openGroup(rg *file.RowGroupReader, leaves []int, lists *listCol, in *interner) (g *groupCols, ok bool, err error) {
	g = &groupCols{}
	for i, leaf := range leaves {
		if resultCols[i].kind != kindList && g.sameValue(rg, i, leaf, in) {
			g.same[i] = true
			continue
		}
		md, err := rg.MetaData().ColumnChunk(leaf)
		if err != nil {
			g.close()
			return nil, true, err
		}
		if kind := resultCols[i].kind; rawEncodings(md.Encodings(), kind) {
			pr, err := rg.GetColumnPageReader(leaf)
			if err != nil {
				g.close()
				return nil, true, err
			}
			pc := newPageCol(pr, kind)
			g.all = append(g.all, pc)
			g.raw[i] = pc
			switch kind {
			case kindI64:
				g.i64[i] = rawI64{pc}
			case kindI32:
				g.i32[i] = rawI32{pc}
			case kindStr:
				g.str[i] = rawStr{pc}
			case kindList:
				*lists = listCol{cr: pc, defs: lists.defs, reps: lists.reps, vals: lists.vals}
				g.list = lists
			}
			continue
		}
		cr, err := rg.Column(leaf)
		if err != nil {
			g.close()
			return nil, true, err
		}
		g.all = append(g.all, cr)
		switch resultCols[i].kind {
		case kindI64:
			g.i64[i], ok = cr.(*file.Int64ColumnChunkReader)
		case kindI32:
			g.i32[i], ok = cr.(*file.Int32ColumnChunkReader)
		case kindStr:
			var c *file.ByteArrayColumnChunkReader
			c, ok = cr.(*file.ByteArrayColumnChunkReader)
			g.str[i] = &strCol{cr: c}
		case kindList:
			var c *file.Int64ColumnChunkReader
			c, ok = cr.(*file.Int64ColumnChunkReader)
			*lists = listCol{cr: c, defs: lists.defs, reps: lists.reps, vals: lists.vals}
			g.list = lists
		}
		if !ok {
			g.close()
			return nil, false, nil
		}
	}
	return g, true, nil
}

func (g *groupCols) close() {
	for _, cr := range g.all {
		cr.Close()
	}
}

// read decodes the next n rows of every column into b.
func (g *groupCols) read(b *colBufs, n int, in *interner) error {
	for i, c := range resultCols {
		b.v64[i], b.v32[i] = b.i64[i], b.i32[i]
		if g.same[i] {
			switch c.kind {
			case kindI64:
				fillSame(b.i64[i][:n], g.sameI[i])
			case kindI32:
				fillSame(b.i32[i][:n], int32(g.sameI[i]))
			case kindStr:
				fillSame(b.str[i][:n], g.sameS[i])
			}
			continue
		}
		var got int
		var err error
		switch c.kind {
		case kindI64:
			if pc := g.raw[i]; pc != nil {
				var v []int64
				if v, err = viewFixed[int64](pc, n); v != nil {
					b.v64[i], got = v, n
					break
				}
			}
			if err == nil {
				var k int64
				k, _, err = g.i64[i].ReadBatch(int64(n), b.i64[i][:n], nil, nil)
				got = int(k)
			}
		case kindI32:
			if pc := g.raw[i]; pc != nil {
				var v []int32
				if v, err = viewFixed[int32](pc, n); v != nil {
					b.v32[i], got = v, n
					break
				}
			}
			if err == nil {
				var k int64
				k, _, err = g.i32[i].ReadBatch(int64(n), b.i32[i][:n], nil, nil)
				got = int(k)
			}
		case kindStr:
			got, err = g.str[i].read(b.str[i][:n], in)
		case kindList:
			got, err = g.list.read(b.offs[:n])
		}
		if err != nil {
			return fmt.Errorf("column %q: %w", c.name, err)
		}
		if got != n {
			return fmt.Errorf("column %q: %d rows where the row group has %d more", c.name, got, n)
		}
	}
	return nil
}

func fillSame[T any](dst []T, v T) {
	for i := range dst {
		dst[i] = v
	}
}

// fileReader is one reader goroutine's state, reused from file to file.
type fileReader struct {
	alloc captures.PoolAllocator // its page readers' buffers, reused from row group to row group
	in    interner
	bufs  *colBufs
	rows  []captures.Result
	lists listCol
}

// readResultFile reads one result file (its row groups groups, nil: all)
// into c, a slice of rows at a time. Before the first row reaches c, any
// surprise returns errUnexpected; after it, an error is a damaged file.
func (fr *fileReader) readResultFile(c *collector, path string, groups []int) (err error) {
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
	props := parquet.NewReaderProperties(&fr.alloc)
	props.BufferedStreamEnabled = true // pages as needed, not whole column chunks
	pf, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		return errUnexpected
	}
	defer pf.Close()
	leaves, ok := directLeaves(pf)
	if !ok {
		return errUnexpected
	}
	if groups == nil {
		for g := range pf.NumRowGroups() {
			groups = append(groups, g)
		}
	}
	if fr.bufs == nil {
		fr.bufs = newColBufs()
		fr.rows = make([]captures.Result, rowSlice)
	}
	corrupt := func(err error) error {
		if !started {
			return errUnexpected
		}
		return badInputf("%s: %v: %s", path, captures.ErrCorruptFile, strings.Join(strings.Fields(err.Error()), " "))
	}
	for _, gi := range groups {
		if gi < 0 || gi >= pf.NumRowGroups() {
			return corrupt(fmt.Errorf("no row group %d", gi))
		}
		rg := pf.RowGroup(gi)
		g, ok, err := openGroup(rg, leaves, &fr.lists, &fr.in)
		if !ok {
			if started {
				return badInputf("%s: %v: a column changed type between row groups", path, captures.ErrCorruptFile)
			}
			return errUnexpected
		}
		if err != nil {
			return corrupt(err)
		}
		err = fr.readGroup(c, g, rg.NumRows(), path, &started)
		g.close()
		if err != nil {
			if errors.Is(err, ErrBadInput) {
				return err
			}
			return corrupt(err)
		}
	}
	return nil
}

// readGroup reads a row group's rows, slice by slice, into c.
func (fr *fileReader) readGroup(c *collector, g *groupCols, rows int64, path string, started *bool) error {
	for done := int64(0); done < rows; {
		n := int(min(rowSlice, rows-done))
		if err := g.read(fr.bufs, n, &fr.in); err != nil {
			return err
		}
		batch := fr.rows[:n]
		fr.bufs.fill(batch)
		*started = true
		for i := range batch {
			if !c.add(&batch[i]) {
				r := &batch[i]
				return badInputf("%s: results of scenario %q stage %d, which run.json does not list: the run directory's run.json does not match its files", path, r.Scenario, r.Stage)
			}
		}
		done += int64(n)
	}
	return nil
}

// directLeaves is resultLeaves of a loadtape result file of a schema
// version this reader knows; false for any other file.
func directLeaves(pf *file.Reader) ([]int, bool) {
	kv := pf.MetaData().KeyValueMetadata()
	if k := kv.FindValue(captures.MetaKind); k == nil || captures.Kind(*k) != captures.KindResults {
		return nil, false
	}
	if v := kv.FindValue(captures.MetaSchema); v == nil {
		return nil, false
	} else if n, err := strconv.Atoi(*v); err != nil || n < 1 || n > captures.SchemaVersion {
		return nil, false
	}
	return resultLeaves(pf.MetaData().Schema)
}

// resultLeaves finds resultCols' leaf columns in a file's schema; false
// when one is missing or not of the kind analyze reads (nullable, another
// type, a list of another shape).
func resultLeaves(s *schema.Schema) ([]int, bool) {
	leaves := make([]int, len(resultCols))
	for i, col := range resultCols {
		name := col.name
		if col.kind == kindList {
			name += ".list.element" // a list's leaf is named by its path
		}
		j := s.ColumnIndexByName(name)
		if j < 0 {
			return nil, false
		}
		d := s.Column(j)
		want := map[colKind]parquet.Type{kindI64: parquet.Types.Int64, kindI32: parquet.Types.Int32,
			kindStr: parquet.Types.ByteArray, kindList: parquet.Types.Int64}[col.kind]
		def, rep := int16(0), int16(0)
		if col.kind == kindList {
			def, rep = 1, 1
		}
		if d.PhysicalType() != want || d.MaxDefinitionLevel() != def || d.MaxRepetitionLevel() != rep {
			return nil, false
		}
		leaves[i] = j
	}
	return leaves, true
}

// filePart is one file's row groups to read, in order; nil groups means
// the whole file.
type filePart struct {
	path   string
	groups []int
}

// planParts cuts the files' row groups, in order, into at most n
// contiguous runs of about equal rows. A file whose footer cannot be read
// is one unit, left to the reader to report, and so is one the direct
// reader does not read (captures.Reader reads it whole).
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
		whole := err != nil || pf.NumRowGroups() < 2
		if !whole {
			_, direct := directLeaves(pf)
			whole = !direct // captures.Reader reads it, from its start
		}
		if whole {
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
	var fr fileReader
	for _, p := range parts {
		err := fr.readResultFile(c, p.path, p.groups)
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
