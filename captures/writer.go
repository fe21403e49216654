package captures

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
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
// go to one goroutine that owns the open file, converts rows to Arrow,
// encodes them and rolls the file every Roll, MaxRows or MaxBytes. A file is
// written as .parquet.inprogress and renamed to .parquet only after it is
// closed and fsynced, so a crash loses at most the rows of the current roll
// interval and never damages a rolled file.
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
	err      error // first failure of the file goroutine; sticky
	stats    WriterStats
	sending  sync.WaitGroup // Write calls between taking a chunk and sending it

	chunks chan chunk[T] // full chunks, to the file goroutine
	wake   chan struct{} // tells the file goroutine that buf is no longer empty
	done   chan struct{} // closed when the file goroutine ends
	once   sync.Once     // Close runs once
	cerr   error         // Close's result

	// Owned by the file goroutine.
	f     *os.File
	cw    *countingWriter
	fw    *pqarrow.FileWriter
	path  string    // .inprogress path of the open file
	epoch time.Time // when the oldest row in the open file arrived
	rows  int64     // rows in the open file
	seq   int
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
		props:  writerProps(mem),
		start:  time.Now().UTC().Format("20060102T150405Z"),
		meta:   maps.Clone(opts.Metadata),
		chunks: make(chan chunk[T], 4),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	go w.loop()
	return w, nil
}

// writerProps: zstd everywhere, dictionary encoding on (it suits the
// repetitive service, operation, header and status columns) except for
// bodies and ids, which rarely repeat and would only pay for a dictionary
// page before falling back to plain encoding.
func writerProps(mem memory.Allocator) *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(1),
		parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryFor("req_body", false),
		parquet.WithDictionaryFor("resp_body", false),
		parquet.WithDictionaryFor("id", false),
		parquet.WithMaxRowGroupLength(1<<20),
		parquet.WithCreatedBy("loadtape captures (arrow-go v18)"),
	)
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
	w.chunks <- c
	w.sending.Done()
	return nil
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
		<-w.done
		w.mu.Lock()
		w.cerr = w.err
		w.mu.Unlock()
	})
	return w.cerr
}

// loop is the file goroutine. It ends when Close closes w.chunks and every
// chunk has been written and the last file rolled.
func (w *Writer[T]) loop() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armedFor time.Time // the deadline the timer is set to, zero when stopped
	for {
		select {
		case c, ok := <-w.chunks:
			if !ok {
				w.finish()
				return
			}
			w.write(c)
		case <-w.wake:
		case <-timer.C:
			armedFor = time.Time{}
			// Take the partial chunk and whatever is queued, so that the
			// file rolled now holds every row written before the deadline.
			w.mu.Lock()
			partial := w.take()
			w.mu.Unlock()
			for more := true; more; {
				select {
				case c, ok := <-w.chunks:
					if !ok {
						w.write(partial)
						w.finish()
						return
					}
					w.write(c)
				default:
					more = false
				}
			}
			w.write(partial)
			if !w.failed() {
				w.fail(w.roll())
			}
		}
		// The next roll is due Roll after the oldest row not yet in a
		// rolled file: the first of the open file, or the first buffered.
		oldest := w.epoch
		w.mu.Lock()
		if !w.bufEpoch.IsZero() && (oldest.IsZero() || w.bufEpoch.Before(oldest)) {
			oldest = w.bufEpoch
		}
		w.mu.Unlock()
		switch {
		case oldest.IsZero():
			if !armedFor.IsZero() {
				timer.Stop()
				armedFor = time.Time{}
			}
		case !oldest.Add(w.opts.Roll).Equal(armedFor):
			// Since Go 1.23 Reset discards a pending tick: no drain needed.
			armedFor = oldest.Add(w.opts.Roll)
			timer.Reset(time.Until(armedFor))
		}
	}
}

// finish rolls the last file, or after a failure leaves it as .inprogress.
func (w *Writer[T]) finish() {
	if w.failed() {
		if w.f != nil {
			w.f.Close()
			w.f, w.fw, w.cw, w.epoch = nil, nil, nil, time.Time{}
		}
		return
	}
	w.fail(w.roll())
}

// write appends rows to the open file, opening and rolling files as the
// row and byte bounds require. It reports whether all went well.
func (w *Writer[T]) write(c chunk[T]) bool {
	if w.failed() {
		return false
	}
	rows := c.rows
	for len(rows) > 0 {
		if w.f == nil {
			if err := w.open(); err != nil {
				w.fail(err)
				return false
			}
			w.epoch = c.epoch
		}
		n := min(int64(len(rows)), w.opts.MaxRows-w.rows)
		rec := w.codec.record(w.mem, rows[:n])
		err := w.fw.WriteBuffered(rec)
		rec.Release()
		if err != nil {
			w.fail(fmt.Errorf("captures: %s: %w", w.path, err))
			return false
		}
		w.rows += n
		rows = rows[n:]
		if w.fw.RowGroupTotalCompressedBytes() >= w.opts.RowGroupBytes {
			if err := w.fw.NewBufferedRowGroupChecked(); err != nil {
				w.fail(fmt.Errorf("captures: %s: %w", w.path, err))
				return false
			}
		}
		if w.rows >= w.opts.MaxRows || w.cw.n+w.fw.RowGroupTotalCompressedBytes() >= w.opts.MaxBytes {
			if err := w.roll(); err != nil {
				w.fail(err)
				return false
			}
		}
	}
	return true
}

// open creates the next .inprogress file. O_EXCL keeps two writers that
// share a prefix and a start second from writing into one file.
func (w *Writer[T]) open() error {
	for {
		w.seq++
		name := fmt.Sprintf("%s-%s-%06d", w.opts.Prefix, w.start, w.seq)
		path := filepath.Join(w.opts.Dir, name+InProgressExt)
		if _, err := os.Stat(filepath.Join(w.opts.Dir, name+Ext)); err == nil {
			continue
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("captures: %w", err)
		}
		// The counting writer is not an io.Closer, so pqarrow's Close
		// leaves the file open for the fsync that must come first.
		cw := &countingWriter{w: f}
		fw, err := pqarrow.NewFileWriter(w.codec.schema, cw, w.props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("captures: %s: %w", path, err)
		}
		w.f, w.cw, w.fw, w.path, w.rows = f, cw, fw, path, 0
		return nil
	}
}

// roll finishes the open file: footer with metadata, fsync, close, rename
// to .parquet, fsync of the directory so the rename survives a power cut.
func (w *Writer[T]) roll() error {
	if w.f == nil {
		return nil
	}
	f, fw, path, rows := w.f, w.fw, w.path, w.rows
	w.f, w.fw, w.cw, w.epoch = nil, nil, nil, time.Time{}
	w.mu.Lock()
	meta := maps.Clone(w.meta)
	w.mu.Unlock()
	fail := func(err error) error {
		f.Close()
		return fmt.Errorf("captures: %s: %w", path, err)
	}
	kv := map[string]string{MetaSchema: strconv.Itoa(SchemaVersion), MetaKind: string(w.codec.kind)}
	for k, v := range meta {
		if _, reserved := kv[k]; !reserved {
			kv[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if err := fw.AppendKeyValueMetadata(k, kv[k]); err != nil {
			return fail(err)
		}
	}
	if err := fw.Close(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("captures: %s: %w", path, err)
	}
	final := path[:len(path)-len(InProgressExt)] + Ext
	if err := os.Rename(path, final); err != nil {
		return fmt.Errorf("captures: %w", err)
	}
	if d, err := os.Open(w.opts.Dir); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	w.mu.Lock()
	w.stats.Rows += rows
	w.stats.Files++
	w.stats.Bytes += st.Size()
	w.mu.Unlock()
	return nil
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

// countingWriter counts bytes on their way to the file, for MaxBytes.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
