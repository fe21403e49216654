package captures

import (
	"bytes"
	"fmt"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A column maps one field of a row type to one Arrow column. Columns move
// whole slices at a time (put, get) rather than one value per call, so that
// the per-row cost of converting between Go structs and Arrow is a tight loop
// with no interface dispatch: that is what lets the writer keep up with
// 100k exchanges/s and the reader with millions of result rows per second.
type column[T any] struct {
	field arrow.Field
	put   func(b array.Builder, rows []T)
	get   func(a arrow.Array, rows []T)
}

// codec holds everything the writer and reader need to know about one row
// kind: its Kind, its columns in file order and its Arrow schema.
type codec[T any] struct {
	kind    Kind
	cols    []column[T]
	schema  *arrow.Schema
	byName  map[string]int
	sizeOf  func(*T) int // rough in-memory size, to cut write chunks by bytes
	timeCol string       // the column that places a row in time (inspect's span)
}

func newCodec[T any](kind Kind, timeCol string, sizeOf func(*T) int, cols ...column[T]) *codec[T] {
	fields := make([]arrow.Field, len(cols))
	byName := make(map[string]int, len(cols))
	for i, c := range cols {
		fields[i] = c.field
		byName[c.field.Name] = i
	}
	return &codec[T]{kind: kind, cols: cols, schema: arrow.NewSchema(fields, nil), byName: byName, sizeOf: sizeOf, timeCol: timeCol}
}

// record builds one Arrow record batch holding rows.
func (c *codec[T]) record(mem memory.Allocator, rows []T) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, c.schema)
	defer b.Release()
	for i, col := range c.cols {
		col.put(b.Field(i), rows)
	}
	return b.NewRecordBatch()
}

// headerType is the Arrow type of req_headers and resp_headers: an ordered
// list of name/value pairs, because order and repetition are part of what was
// on the wire.
var headerType = arrow.ListOfNonNullable(arrow.StructOf(
	arrow.Field{Name: "name", Type: arrow.BinaryTypes.String},
	arrow.Field{Name: "value", Type: arrow.BinaryTypes.String},
))

var offsetsType = arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int64)

func i64Col[T any](name string, p func(*T) *int64) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64},
		put: func(b array.Builder, rows []T) {
			bb := b.(*array.Int64Builder)
			bb.Reserve(len(rows))
			for i := range rows {
				bb.UnsafeAppend(*p(&rows[i]))
			}
		},
		get: func(a arrow.Array, rows []T) {
			v := a.(*array.Int64).Int64Values()
			for i := range rows {
				*p(&rows[i]) = v[i]
			}
		},
	}
}

func i32Col[T any](name string, p func(*T) *int32) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int32},
		put: func(b array.Builder, rows []T) {
			bb := b.(*array.Int32Builder)
			bb.Reserve(len(rows))
			for i := range rows {
				bb.UnsafeAppend(*p(&rows[i]))
			}
		},
		get: func(a arrow.Array, rows []T) {
			v := a.(*array.Int32).Int32Values()
			for i := range rows {
				*p(&rows[i]) = v[i]
			}
		},
	}
}

func f64Col[T any](name string, p func(*T) *float64) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64},
		put: func(b array.Builder, rows []T) {
			bb := b.(*array.Float64Builder)
			bb.Reserve(len(rows))
			for i := range rows {
				bb.UnsafeAppend(*p(&rows[i]))
			}
		},
		get: func(a arrow.Array, rows []T) {
			v := a.(*array.Float64).Float64Values()
			for i := range rows {
				*p(&rows[i]) = v[i]
			}
		},
	}
}

func boolCol[T any](name string, p func(*T) *bool) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: arrow.FixedWidthTypes.Boolean},
		put: func(b array.Builder, rows []T) {
			bb := b.(*array.BooleanBuilder)
			bb.Reserve(len(rows))
			for i := range rows {
				bb.UnsafeAppend(*p(&rows[i]))
			}
		},
		get: func(a arrow.Array, rows []T) {
			v := a.(*array.Boolean)
			for i := range rows {
				*p(&rows[i]) = v.Value(i)
			}
		},
	}
}

func strCol[T any](name string, p func(*T) *string) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: arrow.BinaryTypes.String},
		put: func(b array.Builder, rows []T) {
			bb := b.(*array.StringBuilder)
			bb.Reserve(len(rows))
			n := 0
			for i := range rows {
				n += len(*p(&rows[i]))
			}
			bb.ReserveData(n)
			for i := range rows {
				bb.UnsafeAppend(stringBytes(*p(&rows[i])))
			}
		},
		get: func(a arrow.Array, rows []T) {
			s := a.(*array.String)
			// Value aliases the Arrow buffer, which is released at the next
			// batch; clone it, but only once per run of equal values, since
			// services, operations and sessions repeat row after row.
			var last string
			for i := range rows {
				if v := s.Value(i); v != last {
					last = strings.Clone(v)
				}
				*p(&rows[i]) = last
			}
		},
	}
}

// stringBytes is s's bytes without a copy, for builders that copy them
// into their own buffer (UnsafeAppend) and never write to them.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func binCol[T any](name string, p func(*T) *[]byte) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: arrow.BinaryTypes.Binary},
		put: func(b array.Builder, rows []T) {
			bb := b.(*array.BinaryBuilder)
			bb.Reserve(len(rows))
			n := 0
			for i := range rows {
				n += len(*p(&rows[i]))
			}
			bb.ReserveData(n)
			for i := range rows {
				bb.UnsafeAppend(*p(&rows[i]))
			}
		},
		get: func(a arrow.Array, rows []T) {
			s := a.(*array.Binary)
			for i := range rows {
				// Empty bodies read back as nil.
				if v := s.Value(i); len(v) > 0 {
					*p(&rows[i]) = bytes.Clone(v)
				} else {
					*p(&rows[i]) = nil
				}
			}
		},
	}
}

func headersCol[T any](name string, p func(*T) *[]Header) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: headerType},
		put: func(b array.Builder, rows []T) {
			lb := b.(*array.ListBuilder)
			sb := lb.ValueBuilder().(*array.StructBuilder)
			nb := sb.FieldBuilder(0).(*array.StringBuilder)
			vb := sb.FieldBuilder(1).(*array.StringBuilder)
			// Reserved in full first, so that no buffer grows (and is
			// copied) while the headers of a few thousand rows go in.
			var count, names, values int
			for i := range rows {
				hs := *p(&rows[i])
				count += len(hs)
				for _, h := range hs {
					names += len(h.Name)
					values += len(h.Value)
				}
			}
			lb.Reserve(len(rows))
			sb.Reserve(count)
			nb.ReserveData(names)
			vb.ReserveData(values)
			for i := range rows {
				hs := *p(&rows[i])
				lb.Append(true)
				for _, h := range hs {
					sb.Append(true)
					nb.UnsafeAppend(stringBytes(h.Name))
					vb.UnsafeAppend(stringBytes(h.Value))
				}
			}
		},
		get: func(a arrow.Array, rows []T) {
			l := a.(*array.List)
			st := l.ListValues().(*array.Struct)
			names := st.Field(0).(*array.String)
			values := st.Field(1).(*array.String)
			for i := range rows {
				start, end := l.ValueOffsets(i)
				if start == end {
					*p(&rows[i]) = nil
					continue
				}
				hs := make([]Header, end-start)
				for j := start; j < end; j++ {
					hs[j-start] = Header{Name: strings.Clone(names.Value(int(j))), Value: strings.Clone(values.Value(int(j)))}
				}
				*p(&rows[i]) = hs
			}
		},
	}
}

func offsetsCol[T any](name string, p func(*T) *[]int64) column[T] {
	return column[T]{
		field: arrow.Field{Name: name, Type: offsetsType},
		put: func(b array.Builder, rows []T) {
			lb := b.(*array.ListBuilder)
			vb := lb.ValueBuilder().(*array.Int64Builder)
			n := 0
			for i := range rows {
				n += len(*p(&rows[i]))
			}
			lb.Reserve(len(rows))
			vb.Reserve(n)
			for i := range rows {
				lb.Append(true)
				vb.AppendValues(*p(&rows[i]), nil)
			}
		},
		get: func(a arrow.Array, rows []T) {
			l := a.(*array.List)
			v := l.ListValues().(*array.Int64).Int64Values()
			for i := range rows {
				start, end := l.ValueOffsets(i)
				if start == end {
					*p(&rows[i]) = nil
					continue
				}
				*p(&rows[i]) = append([]int64(nil), v[start:end]...)
			}
		},
	}
}

var exchangeCodec = newCodec(KindExchanges, "start_ns", exchangeSize,
	strCol("id", func(r *Exchange) *string { return &r.ID }),
	i64Col("start_ns", func(r *Exchange) *int64 { return &r.StartNS }),
	strCol("service", func(r *Exchange) *string { return &r.Service }),
	strCol("operation", func(r *Exchange) *string { return &r.Operation }),
	strCol("session", func(r *Exchange) *string { return &r.Session }),
	i64Col("seq", func(r *Exchange) *int64 { return &r.Seq }),
	strCol("method", func(r *Exchange) *string { return &r.Method }),
	strCol("scheme", func(r *Exchange) *string { return &r.Scheme }),
	strCol("host", func(r *Exchange) *string { return &r.Host }),
	strCol("path", func(r *Exchange) *string { return &r.Path }),
	strCol("query", func(r *Exchange) *string { return &r.Query }),
	headersCol("req_headers", func(r *Exchange) *[]Header { return &r.ReqHeaders }),
	headersCol("resp_headers", func(r *Exchange) *[]Header { return &r.RespHeaders }),
	binCol("req_body", func(r *Exchange) *[]byte { return &r.ReqBody }),
	binCol("resp_body", func(r *Exchange) *[]byte { return &r.RespBody }),
	i64Col("req_size", func(r *Exchange) *int64 { return &r.ReqSize }),
	i64Col("resp_size", func(r *Exchange) *int64 { return &r.RespSize }),
	boolCol("req_truncated", func(r *Exchange) *bool { return &r.ReqTruncated }),
	boolCol("resp_truncated", func(r *Exchange) *bool { return &r.RespTruncated }),
	i32Col("status", func(r *Exchange) *int32 { return &r.Status }),
	i64Col("ttfb_ns", func(r *Exchange) *int64 { return &r.TTFBNS }),
	i64Col("duration_ns", func(r *Exchange) *int64 { return &r.DurationNS }),
	boolCol("stream", func(r *Exchange) *bool { return &r.Stream }),
	offsetsCol("chunk_offsets_ns", func(r *Exchange) *[]int64 { return &r.ChunkOffsetsNS }),
	strCol("model", func(r *Exchange) *string { return &r.Model }),
	i64Col("prompt_tokens", func(r *Exchange) *int64 { return &r.PromptTokens }),
	i64Col("completion_tokens", func(r *Exchange) *int64 { return &r.CompletionTokens }),
	strCol("rpc_method", func(r *Exchange) *string { return &r.RPCMethod }),
	strCol("rpc_id", func(r *Exchange) *string { return &r.RPCID }),
	strCol("tool", func(r *Exchange) *string { return &r.Tool }),
	strCol("error", func(r *Exchange) *string { return &r.Error }),
	boolCol("client_aborted", func(r *Exchange) *bool { return &r.ClientAborted }),
)

func exchangeSize(r *Exchange) int {
	n := 256 + len(r.ID) + len(r.Session) + len(r.Path) + len(r.Query) + len(r.ReqBody) + len(r.RespBody) + 8*len(r.ChunkOffsetsNS)
	for _, h := range r.ReqHeaders {
		n += 32 + len(h.Name) + len(h.Value)
	}
	for _, h := range r.RespHeaders {
		n += 32 + len(h.Name) + len(h.Value)
	}
	return n + len(r.Error)
}

var resultCodec = newCodec(KindResults, "start_ns", resultSize,
	strCol("run", func(r *Result) *string { return &r.Run }),
	strCol("scenario", func(r *Result) *string { return &r.Scenario }),
	i32Col("stage", func(r *Result) *int32 { return &r.Stage }),
	strCol("stage_name", func(r *Result) *string { return &r.StageName }),
	i32Col("stage_users", func(r *Result) *int32 { return &r.StageUsers }),
	i32Col("vu", func(r *Result) *int32 { return &r.VU }),
	i64Col("iteration", func(r *Result) *int64 { return &r.Iteration }),
	strCol("operation", func(r *Result) *string { return &r.Operation }),
	strCol("service", func(r *Result) *string { return &r.Service }),
	strCol("source_id", func(r *Result) *string { return &r.SourceID }),
	i64Col("intended_ns", func(r *Result) *int64 { return &r.IntendedNS }),
	i64Col("start_ns", func(r *Result) *int64 { return &r.StartNS }),
	i64Col("ttfb_ns", func(r *Result) *int64 { return &r.TTFBNS }),
	i64Col("ttft_ns", func(r *Result) *int64 { return &r.TTFTNS }),
	i64Col("duration_ns", func(r *Result) *int64 { return &r.DurationNS }),
	offsetsCol("chunk_offsets_ns", func(r *Result) *[]int64 { return &r.ChunkOffsetsNS }),
	i32Col("status", func(r *Result) *int32 { return &r.Status }),
	strCol("error_kind", func(r *Result) *string { return &r.ErrorKind }),
	strCol("error", func(r *Result) *string { return &r.Error }),
	i64Col("bytes_out", func(r *Result) *int64 { return &r.BytesOut }),
	i64Col("bytes_in", func(r *Result) *int64 { return &r.BytesIn }),
	i64Col("prompt_tokens", func(r *Result) *int64 { return &r.PromptTokens }),
	i64Col("completion_tokens", func(r *Result) *int64 { return &r.CompletionTokens }),
	i32Col("active_users", func(r *Result) *int32 { return &r.ActiveUsers }),
)

func resultSize(r *Result) int {
	return 192 + len(r.Run) + len(r.Scenario) + len(r.StageName) + len(r.Operation) + len(r.Service) +
		len(r.SourceID) + len(r.ErrorKind) + len(r.Error) + 8*len(r.ChunkOffsetsNS)
}

var sampleCodec = newCodec(KindSamples, "t_ns", sampleSize,
	i64Col("t_ns", func(r *Sample) *int64 { return &r.TNS }),
	strCol("source", func(r *Sample) *string { return &r.Source }),
	strCol("device", func(r *Sample) *string { return &r.Device }),
	strCol("metric", func(r *Sample) *string { return &r.Metric }),
	f64Col("value", func(r *Sample) *float64 { return &r.Value }),
)

func sampleSize(r *Sample) int { return 64 + len(r.Source) + len(r.Device) + len(r.Metric) }

// codecOf returns the codec of row type T.
func codecOf[T Row]() *codec[T] {
	var z T
	switch any(z).(type) {
	case Exchange:
		return any(exchangeCodec).(*codec[T])
	case Result:
		return any(resultCodec).(*codec[T])
	case Sample:
		return any(sampleCodec).(*codec[T])
	}
	panic("unreachable: Row has three kinds")
}

// KindOf returns the Kind of row type T.
func KindOf[T Row]() Kind { return codecOf[T]().kind }

// Schema returns the Arrow schema of the files that hold rows of type T, in
// file column order.
func Schema[T Row]() *arrow.Schema { return codecOf[T]().schema }

// Columns returns the column names of kind k in file order, or nil for an
// unknown kind. These are the names ReaderOptions.Columns accepts.
func Columns(k Kind) []string {
	var s *arrow.Schema
	switch k {
	case KindExchanges:
		s = exchangeCodec.schema
	case KindResults:
		s = resultCodec.schema
	case KindSamples:
		s = sampleCodec.schema
	default:
		return nil
	}
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return names
}

// checkColumns resolves names to column indices of c, nil meaning all.
func (c *codec[T]) checkColumns(names []string) ([]int, error) {
	if names == nil {
		idx := make([]int, len(c.cols))
		for i := range idx {
			idx[i] = i
		}
		return idx, nil
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("captures: no columns asked for (nil means all)")
	}
	seen := make(map[int]bool, len(names))
	var idx []int
	for _, n := range names {
		i, ok := c.byName[n]
		if !ok {
			return nil, fmt.Errorf("captures: %s have no column %q (columns: %s)", c.kind, n, strings.Join(Columns(c.kind), ", "))
		}
		if !seen[i] {
			seen[i] = true
			idx = append(idx, i)
		}
	}
	return idx, nil
}
