package captures

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
)

// Writer defaults.
const (
	DefaultRoll     = 10 * time.Second
	DefaultMaxRows  = 5_000_000
	DefaultMaxBytes = 512 << 20
	// DefaultRowGroupBytes cuts a row group once its compressed pages reach
	// this size. The writer holds one row group in memory, so this bounds
	// its memory; it is also large enough for fast scans.
	DefaultRowGroupBytes = 32 << 20
	// chunkBytes and chunkRows bound the rows buffered from Write calls
	// before they are converted to Arrow in one go.
	chunkBytes = 4 << 20
	chunkRows  = 8192
)

// Suffixes of finished and unfinished files.
const (
	Ext           = ".parquet"
	InProgressExt = ".parquet.inprogress"
)

// Errors of the writer.
var (
	ErrClosed = errors.New("captures: writer is closed")
)

// WriterOptions configures a Writer. Zero values mean the defaults.
type WriterOptions struct {
	Dir      string            // created if missing
	Prefix   string            // file name prefix; files are <prefix>-<start>-<seq>.parquet(.inprogress); default: the kind
	Roll     time.Duration     // roll interval; 0 means DefaultRoll
	MaxRows  int64             // roll after this many rows; 0 means DefaultMaxRows
	MaxBytes int64             // roll after about this many bytes; 0 means DefaultMaxBytes
	Metadata map[string]string // extra key-value metadata written into every file
	// Start names the files (<start> in the name); zero means now. The
	// sample generator sets it so regenerated files keep their names.
	Start time.Time
	// Files bounds the files written at once when Write outpaces one file
	// goroutine; 0 means GOMAXPROCS.
	Files int

	// RowGroupBytes cuts row groups by compressed size; 0 means DefaultRowGroupBytes.
	RowGroupBytes int64
	// Allocator for Arrow buffers; nil means the Go allocator. Tests pass a
	// checked allocator to prove nothing leaks.
	Allocator memory.Allocator
}

// WriterStats counts what a Writer has written to finished files so far.
type WriterStats struct {
	Rows  int64 // rows in rolled (renamed) files
	Files int64 // files rolled
	Bytes int64 // bytes of rolled files
}

// Writer writes rows of one kind to a rolling series of Parquet files.
//
// Write only appends to an in-memory chunk under a short lock; full chunks
// go to a file goroutine that owns an open file, converts rows to Arrow,
// encodes and compresses them, and rolls the file every Roll, MaxRows or
// MaxBytes. When one file goroutine cannot keep up (its queue is full), the
// writer starts another, up to Files, each with its own file: compression is
// what costs, and it then runs on several cores. A file is written as
// .parquet.inprogress and renamed to .parquet only after it is closed and
// fsynced, so a crash loses at most the rows of the current roll interval
// and never damages a rolled file.
//
// Rows written from one goroutine keep their order within a file; across
// files, and between goroutines, there is no order (sort by start_ns).
type Writer[T Row] struct {
	opts  WriterOptions
	codec *codec[T]
	mem   memory.Allocator
	props *parquet.WriterProperties
	start string // writer start time, part of every file name

	mu       sync.Mutex
	buf      []T
	bufBytes int
	bufEpoch time.Time // when the oldest row in buf arrived
	closed   bool
	meta     map[string]string
	err      error // first failure of a file goroutine; sticky
	stats    WriterStats
	seq      int            // last file sequence number used
	loops    int            // file goroutines started
	sending  sync.WaitGroup // Write calls between taking a chunk and sending it
	running  sync.WaitGroup // file goroutines

	chunks chan chunk[T] // full chunks, to the file goroutines
	wake   chan struct{} // tells a file goroutine that buf is no longer empty
	once   sync.Once     // Close runs once
	cerr   error         // Close's result
}

// NewWriter creates opts.Dir if needed and starts the writer. No file is
// created until the first row arrives.
func NewWriter[T Row](opts WriterOptions) (*Writer[T], error) {
	c := codecOf[T]()
	if opts.Dir == "" {
		return nil, errors.New("captures: writer needs a directory")
	}
	if opts.Prefix == "" {
		opts.Prefix = string(c.kind)
	}
	if opts.Roll <= 0 {
		opts.Roll = DefaultRoll
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultMaxRows
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.RowGroupBytes <= 0 {
		opts.RowGroupBytes = DefaultRowGroupBytes
	}
	if opts.Files <= 0 {
		opts.Files = runtime.GOMAXPROCS(0)
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	mem := opts.Allocator
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	w := &Writer[T]{
		opts:   opts,
		codec:  c,
		mem:    mem,
		props:  writerProps(mem, c),
		start:  opts.Start.UTC().Format("20060102T150405Z"),
		meta:   maps.Clone(opts.Metadata),
		chunks: make(chan chunk[T], 4),
		wake:   make(chan struct{}, 1),
	}
	w.grow()
	return w, nil
}

// writerProps: zstd everywhere; dictionary encoding only on string
// columns, which repeat (service, operation, header names and values,
// status text), except ids, which never do. Numbers and bodies are plain:
// hashing them for a dictionary costs CPU and the dictionary overflows
// into plain encoding anyway.
func writerProps[T any](mem memory.Allocator, c *codec[T]) *parquet.WriterProperties {
	props := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(1),
		parquet.WithDictionaryDefault(false),
		// Min/max statistics of bodies cost a compare per value and up to
		// 4 KiB per page, and no query filters on a body's byte order.
		parquet.WithStatsFor("req_body", false),
		parquet.WithStatsFor("resp_body", false),
		parquet.WithMaxRowGroupLength(1 << 20),
		parquet.WithCreatedBy("loadtape captures (arrow-go v18)"),
	}
	for _, col := range c.cols {
		switch name := col.field.Name; {
		case col.field.Type.ID() == arrow.STRING && name != "id" && name != "source_id":
			props = append(props, parquet.WithDictionaryFor(name, true))
		case col.field.Type == headerType:
			props = append(props, parquet.WithDictionaryFor(name+".list.element.name", true),
				parquet.WithDictionaryFor(name+".list.element.value", true))
		}
	}
	return parquet.NewWriterProperties(props...)
}

// Write queues rows for the current file. It is safe for concurrent use.
// It blocks only when the file goroutine is behind by several chunks, which
// keeps memory bounded under overload. An error from an earlier file
// operation is returned by every later Write.
func (w *Writer[T]) Write(rows ...T) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if len(w.buf) == 0 && len(rows) > 0 {
		if w.buf == nil {
			w.buf = make([]T, 0, chunkRows)
		}
		// The roll clock starts when a row arrives, not when a file is
		// opened, so a lone row is on disk within one Roll.
		w.bufEpoch = time.Now()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	for i := range rows {
		w.buf = append(w.buf, rows[i])
		w.bufBytes += w.codec.sizeOf(&rows[i])
	}
	if len(w.buf) < chunkRows && w.bufBytes < chunkBytes {
		w.mu.Unlock()
		return nil
	}
	c := w.take()
	w.sending.Add(1)
	w.mu.Unlock()
	select {
	case w.chunks <- c:
	default:
		// The file goroutines are behind: add one, then wait our turn.
		w.grow()
		w.chunks <- c
	}
	w.sending.Done()
	return nil
}

// grow starts another file goroutine unless Files are running.
func (w *Writer[T]) grow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loops >= w.opts.Files || w.closed && w.loops > 0 {
		return
	}
	w.loops++
	w.running.Add(1)
	fl := &fileLoop[T]{w: w}
	go fl.run()
}

// chunk is a batch of rows on its way to the file goroutine, with the
// arrival time of its oldest row.
type chunk[T any] struct {
	rows  []T
	epoch time.Time
}

// take empties buf; w.mu must be held.
func (w *Writer[T]) take() chunk[T] {
	c := chunk[T]{w.buf, w.bufEpoch}
	w.buf, w.bufBytes, w.bufEpoch = nil, 0, time.Time{}
	return c
}

// SetMetadata sets a key-value pair written into every file closed from now on.
func (w *Writer[T]) SetMetadata(key, value string) {
	w.mu.Lock()
	if w.meta == nil {
		w.meta = map[string]string{}
	}
	w.meta[key] = value
	w.mu.Unlock()
}

// Stats returns what has been written to rolled files so far.
func (w *Writer[T]) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close writes buffered rows, rolls the last file and stops the writer.
// It is safe to call more than once; later calls return the first result.
func (w *Writer[T]) Close() error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		c := w.take()
		w.mu.Unlock()
		w.sending.Wait() // no Write is still about to send
		if len(c.rows) > 0 {
			w.chunks <- c
		}
		close(w.chunks)
		w.running.Wait()
		w.mu.Lock()
		w.cerr = w.err
		w.mu.Unlock()
	})
	return w.cerr
}

func (w *Writer[T]) fail(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *Writer[T]) failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}
