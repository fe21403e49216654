package captures

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
)

// Writer defaults.
const (
	DefaultRoll = 10 * time.Second
	// DefaultFlush bounds how long a row waits in memory before it is in
	// the write-ahead log on disk, fsynced: what a crash can lose.
	DefaultFlush    = time.Second
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
	Dir    string        // created if missing
	Prefix string        // file name prefix; files are <prefix>-<start>-<seq>.parquet(.inprogress); default: the kind
	Roll   time.Duration // roll interval; 0 means DefaultRoll
	// Flush bounds the time from Write to the row being fsynced in the
	// write-ahead log (<name>.wal); 0 means DefaultFlush, negative turns
	// the log off (rows then reach disk at rolls only).
	Flush    time.Duration
	MaxRows  int64             // roll after this many rows; 0 means DefaultMaxRows
	MaxBytes int64             // roll after about this many bytes; 0 means DefaultMaxBytes
	Metadata map[string]string // extra key-value metadata written into every file
	// RollMetadata, if set, is called as each file is finished, with the
	// counts as they will be once it is renamed (its rows written); the
	// pairs it returns go into that file's metadata, over Metadata's. It
	// must not call the Writer.
	RollMetadata func(WriterStats) map[string]string
	// Start names the files (<start> in the name); zero means now. The
	// sample generator sets it so regenerated files keep their names.
	Start time.Time
	// Files bounds the files written at once when Write outpaces one file
	// goroutine; 0 means GOMAXPROCS.
	Files int

	// CompactBelow: on Close, files this writer rolled that are smaller
	// are merged (up to MaxRows rows each); 0 means DefaultCompactBelow,
	// negative: never.
	CompactBelow int64

	// RowGroupBytes cuts row groups by compressed size; 0 means DefaultRowGroupBytes.
	RowGroupBytes int64
	// Allocator for Arrow buffers; nil means one that reuses the buffers
	// of written batches (alloc.go). Tests pass a checked allocator to
	// prove nothing leaks.
	Allocator memory.Allocator
}

// WriterStats counts what a Writer has done with the rows it accepted. At
// every moment the rows accepted are Rows + Logged + Pending + Failed.
type WriterStats struct {
	Rows  int64 // rows in rolled (renamed) files
	Files int64 // files rolled
	Bytes int64 // bytes of rolled files
	// Logged rows are on disk, fsynced, in a write-ahead log only: a roll,
	// Close or the recovery of a later writer makes them readable.
	Logged int64
	// Pending rows are in memory or written but not yet fsynced.
	Pending int64
	// Failed rows are lost to write errors.
	Failed int64
	// Errors counts write errors; LastError is the latest, empty if none.
	Errors    int64
	LastError string
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
// fsynced, so a crash never damages a rolled file. Every row also goes to
// the open file's write-ahead log, fsynced within Flush, so a crash loses
// at most the rows of one flush interval: the next Writer into the
// directory recovers the rest (Recover).
//
// A write error (a full disk, an I/O error) does not stop the writer: the
// file it hit is given up, the rows that were not yet on disk are counted
// as Failed, the rows already in its log are kept for recovery, and the
// next rows go to a new file, so that writing resumes when the disk does.
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
	metaVer  int   // bumped by SetMetadata, so logs see changes cheaply
	firstErr error // first write error
	accepted int64 // rows taken by Write
	stats    WriterStats
	orphans  map[string]int64 // logs of given-up files → rows they hold
	rolled   []rolledFile     // files rolled, for compaction
	recov    []Recovered      // logs of earlier writers recovered by NewWriter
	recovErr error
	seq      int            // last file sequence number used
	loops    int            // file goroutines started
	sending  sync.WaitGroup // Write calls between taking a chunk and sending it
	running  sync.WaitGroup // file goroutines
	removing sync.WaitGroup // removals of the logs of rolled files

	chunks chan chunk[T] // full chunks, to the file goroutines
	spare  chan []T      // emptied chunk buffers, for the next chunks
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
	if opts.Flush == 0 {
		opts.Flush = DefaultFlush
	}
	if opts.CompactBelow == 0 {
		opts.CompactBelow = DefaultCompactBelow
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
		mem = writerAlloc
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	// Logs left by a writer that did not close become Parquet files
	// before this one starts; logs of running writers are locked and left.
	recov, recovErr := Recover(opts.Dir)
	w := &Writer[T]{
		opts:    opts,
		codec:   c,
		mem:     mem,
		props:   writerProps(mem, c),
		start:   opts.Start.UTC().Format("20060102T150405Z"),
		meta:    maps.Clone(opts.Metadata),
		chunks:  make(chan chunk[T], 4),
		spare:   make(chan []T, 8),
		wake:    make(chan struct{}, 1),
		recov:   recov,
		orphans: map[string]int64{},
	}
	w.recovErr = recovErr
	w.grow()
	return w, nil
}

// writerProps: Snappy on request and response bodies, zstd on every other
// column; dictionary encoding on the string
// columns that repeat (service, operation, session, path, model, error
// text), except ids, which never do. Numbers and bodies are plain: hashing
// them for a dictionary costs CPU and the dictionary overflows into plain
// encoding anyway.
//
// Header names and values are plain too. They are twenty-odd strings a
// row: a dictionary hashes each of them (an allocation apiece in arrow-go's
// encoder), about 3 µs of an exchange's 20-odd µs of CPU, and a page of
// them compresses to the same size without one, since zstd finds each
// row's names and most of its values in the row before at several GB/s,
// and request ids and counters never repeat anyway.
//
// Bodies are most of an exchange's bytes, and zstd (level 1, its fastest)
// on them was the largest part of the writer's CPU: about 8 µs of an
// exchange's 18 with 1 KiB bodies each way, where Snappy takes about 6
// (snappy.go). Request bodies get S2's fast Snappy mode, response bodies
// its "better" one: a chat request repeats the conversation so far, long
// matches that the fast mode finds as well, while a response is new text,
// where the better mode's extra search keeps 3 points less of it. The fast
// mode on request bodies takes about 1.3 µs off an exchange's CPU (a tenth
// of it), part of the margin two cores need for 100,000 exchanges/s, for
// about 3 % more bytes; both modes on both bodies would put a capture over
// a quarter of the same traffic's HAR (TestSizeVsHAR: 24.2 % with these,
// 25.8 % with the fast mode on both, 23.5 % with the better one on both).
// Every Parquet reader, DuckDB's included, reads Snappy of either mode, and
// files written with zstd bodies read the same, since the codec is
// recorded per column chunk.
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
		parquet.WithCompressionFor("req_body", compress.Codecs.Snappy),
		parquet.WithCompressionFor("resp_body", compress.Codecs.Snappy),
		parquet.WithCompressionLevelFor("req_body", snappyFast),
		parquet.WithCompressionLevelFor("resp_body", snappyBetter),
	}
	for _, col := range c.cols {
		switch name := col.field.Name; {
		case col.field.Type.ID() == arrow.STRING && name != "id" && name != "source_id":
			props = append(props, parquet.WithDictionaryFor(name, true))
		case col.field.Type == headerType:
			// No query prunes row groups by a header: min/max statistics
			// would only cost two compares each.
			props = append(props, parquet.WithStatsFor(name+".list.element.name", false),
				parquet.WithStatsFor(name+".list.element.value", false))
		}
	}
	return parquet.NewWriterProperties(props...)
}

// Write queues rows for the current file. It is safe for concurrent use.
// It blocks only when the file goroutine is behind by several chunks, which
// keeps memory bounded under overload. Its only error is ErrClosed: write
// errors of the files are counted in Stats and returned by Close.
func (w *Writer[T]) Write(rows ...T) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.accepted += int64(len(rows))
	if len(w.buf) == 0 && len(rows) > 0 {
		if w.buf == nil {
			w.buf = w.spareBuf()
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

// spareBuf is an empty chunk buffer: one the file goroutines are done
// with, or a new one. Reusing them spares the allocation (and zeroing) of
// a few MiB per chunk, most of what Write allocates.
func (w *Writer[T]) spareBuf() []T {
	select {
	case b := <-w.spare:
		return b
	default:
		return make([]T, 0, chunkRows)
	}
}

// recycle hands a written chunk's buffer back for reuse, its rows zeroed
// first so that it keeps no bodies alive.
func (w *Writer[T]) recycle(rows []T) {
	if cap(rows) != chunkRows {
		return
	}
	clear(rows)
	select {
	case w.spare <- rows[:0]:
	default:
	}
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
	if w.meta[key] != value {
		w.meta[key] = value
		w.metaVer++
	}
	w.mu.Unlock()
}

// Stats returns the counts of rows so far.
func (w *Writer[T]) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.statsWith(0, 0)
}

// statsWith is the stats as they read once a file holding rows more rows,
// synced of them in its write-ahead log, is renamed into place: what a
// file's footer says of itself. w.mu must be held.
func (w *Writer[T]) statsWith(rows, synced int64) WriterStats {
	st := w.stats
	st.Rows += rows
	st.Logged -= synced
	st.Pending = w.accepted - st.Rows - st.Logged - st.Failed
	return st
}

// Recovered returns what NewWriter recovered from the logs of earlier
// writers that did not close, and the error of any log it could not.
func (w *Writer[T]) Recovered() ([]Recovered, error) { return w.recov, w.recovErr }

// Close writes buffered rows, rolls the last files, turns the logs of files
// given up after write errors into Parquet files, merges the small files it
// rolled (CompactBelow), and stops the writer. It
// returns an error if any row was lost or is left in a log. It is safe to
// call more than once; later calls return the first result.
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
		w.removing.Wait()
		w.recoverOrphans()
		w.compact()
		w.mu.Lock()
		defer w.mu.Unlock()
		var errs []error
		if w.stats.Failed > 0 {
			errs = append(errs, fmt.Errorf("captures: %d rows lost to write errors; the first: %w", w.stats.Failed, w.firstErr))
		}
		if w.stats.Logged > 0 {
			errs = append(errs, fmt.Errorf("captures: %d rows are on disk only in write-ahead logs in %s (the next writer there recovers them); the last error: %s", w.stats.Logged, w.opts.Dir, w.stats.LastError))
		}
		w.cerr = errors.Join(errs...)
	})
	return w.cerr
}

// fail records a write error.
func (w *Writer[T]) fail(err error) {
	w.mu.Lock()
	if w.firstErr == nil {
		w.firstErr = err
	}
	w.stats.Errors++
	w.stats.LastError = err.Error()
	w.mu.Unlock()
}

// recoverOrphans turns the logs of given-up files into Parquet files. A
// log that cannot be recovered now (the disk is still full) stays, its
// rows counted as Logged.
func (w *Writer[T]) recoverOrphans() {
	w.mu.Lock()
	paths := slices.Sorted(maps.Keys(w.orphans))
	w.mu.Unlock()
	for _, p := range paths {
		rc, err := recoverWAL(p, w.mem)
		if err != nil || rc == nil {
			if err != nil {
				w.fail(err)
			}
			continue
		}
		var size int64
		if st, err := os.Stat(rc.Path); err == nil {
			size = st.Size()
		}
		w.mu.Lock()
		n := w.orphans[p]
		delete(w.orphans, p)
		w.stats.Logged -= n
		w.stats.Rows += rc.Rows
		if rc.Rows < n {
			w.stats.Failed += n - rc.Rows // a log damaged after its fsync
		}
		if rc.Path != "" {
			w.stats.Files++
			w.stats.Bytes += size
			w.rolled = append(w.rolled, rolledFile{rc.Path, rc.Rows, size})
		}
		w.mu.Unlock()
	}
}
