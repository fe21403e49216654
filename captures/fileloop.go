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
	"time"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// fileLoop is one file goroutine of a Writer and the file it has open.
type fileLoop[T Row] struct {
	w     *Writer[T]
	f     *os.File
	cw    *countingWriter
	fw    *pqarrow.FileWriter
	path  string    // .inprogress path of the open file
	epoch time.Time // when the oldest row in the open file arrived
	rows  int64     // rows in the open file
}

// run is a file goroutine. It ends when Close closes w.chunks and every
// chunk has been written and the last file rolled.
func (l *fileLoop[T]) run() {
	defer l.w.running.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armedFor time.Time // the deadline the timer is set to, zero when stopped
	for {
		select {
		case c, ok := <-l.w.chunks:
			if !ok {
				l.finish()
				return
			}
			l.write(c)
		case <-l.w.wake:
		case <-timer.C:
			armedFor = time.Time{}
			// Take the partial chunk and whatever is queued, so that the
			// file rolled now holds every row written before the deadline.
			l.w.mu.Lock()
			partial := l.w.take()
			l.w.mu.Unlock()
			// Only the chunks queued now: under steady load the queue
			// never empties, and draining it would postpone the roll forever.
			for n := len(l.w.chunks); n > 0; n-- {
				select {
				case c, ok := <-l.w.chunks:
					if !ok {
						l.write(partial)
						l.finish()
						return
					}
					l.write(c)
				default:
					n = 0
				}
			}
			l.write(partial)
			if !l.w.failed() {
				l.w.fail(l.roll())
			}
		}
		// The next roll is due Roll after the oldest row not yet in a
		// rolled file: the first of the open file, or the first buffered.
		oldest := l.epoch
		l.w.mu.Lock()
		if !l.w.bufEpoch.IsZero() && (oldest.IsZero() || l.w.bufEpoch.Before(oldest)) {
			oldest = l.w.bufEpoch
		}
		l.w.mu.Unlock()
		switch {
		case oldest.IsZero():
			if !armedFor.IsZero() {
				timer.Stop()
				armedFor = time.Time{}
			}
		case !oldest.Add(l.w.opts.Roll).Equal(armedFor):
			// Since Go 1.23 Reset discards a pending tick: no drain needed.
			armedFor = oldest.Add(l.w.opts.Roll)
			timer.Reset(time.Until(armedFor))
		}
	}
}

// finish rolls the last file, or after a failure leaves it as .inprogress.
func (l *fileLoop[T]) finish() {
	if l.w.failed() {
		if l.f != nil {
			l.f.Close()
			l.f, l.fw, l.cw, l.epoch = nil, nil, nil, time.Time{}
		}
		return
	}
	l.w.fail(l.roll())
}

// write appends rows to the open file, opening and rolling files as the
// row and byte bounds require. It reports whether all went well.
func (l *fileLoop[T]) write(c chunk[T]) bool {
	if l.w.failed() {
		return false
	}
	rows := c.rows
	for len(rows) > 0 {
		if l.f == nil {
			if err := l.open(); err != nil {
				l.w.fail(err)
				return false
			}
			l.epoch = c.epoch
		}
		n := min(int64(len(rows)), l.w.opts.MaxRows-l.rows)
		rec := l.w.codec.record(l.w.mem, rows[:n])
		err := l.fw.WriteBuffered(rec)
		rec.Release()
		if err != nil {
			l.w.fail(fmt.Errorf("captures: %s: %w", l.path, err))
			return false
		}
		l.rows += n
		rows = rows[n:]
		if l.fw.RowGroupTotalCompressedBytes() >= l.w.opts.RowGroupBytes {
			if err := l.fw.NewBufferedRowGroupChecked(); err != nil {
				l.w.fail(fmt.Errorf("captures: %s: %w", l.path, err))
				return false
			}
		}
		if l.rows >= l.w.opts.MaxRows || l.cw.n+l.fw.RowGroupTotalCompressedBytes() >= l.w.opts.MaxBytes {
			if err := l.roll(); err != nil {
				l.w.fail(err)
				return false
			}
		}
	}
	return true
}

// open creates the next .inprogress file. O_EXCL keeps two writers that
// share a prefix and a start second from writing into one file.
func (l *fileLoop[T]) open() error {
	for {
		l.w.mu.Lock()
		l.w.seq++
		seq := l.w.seq
		l.w.mu.Unlock()
		name := fmt.Sprintf("%s-%s-%06d", l.w.opts.Prefix, l.w.start, seq)
		path := filepath.Join(l.w.opts.Dir, name+InProgressExt)
		if _, err := os.Stat(filepath.Join(l.w.opts.Dir, name+Ext)); err == nil {
			continue
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("captures: %w", err)
		}
		// No ARROW:schema in the metadata: the Parquet schema alone carries
		// every type of FORMAT.md, and readers ignore that key (files.go).
		// The counting writer is not an io.Closer, so pqarrow's Close
		// leaves the file open for the fsync that must come first.
		cw := &countingWriter{w: f}
		fw, err := pqarrow.NewFileWriter(l.w.codec.schema, cw, l.w.props, pqarrow.NewArrowWriterProperties())
		if err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("captures: %s: %w", path, err)
		}
		l.f, l.cw, l.fw, l.path, l.rows = f, cw, fw, path, 0
		return nil
	}
}

// roll finishes the open file: footer with metadata, fsync, close, rename
// to .parquet, fsync of the directory so the rename survives a power cut.
func (l *fileLoop[T]) roll() error {
	if l.f == nil {
		return nil
	}
	f, fw, path, rows := l.f, l.fw, l.path, l.rows
	l.f, l.fw, l.cw, l.epoch = nil, nil, nil, time.Time{}
	l.w.mu.Lock()
	meta := maps.Clone(l.w.meta)
	l.w.mu.Unlock()
	fail := func(err error) error {
		f.Close()
		return fmt.Errorf("captures: %s: %w", path, err)
	}
	kv := map[string]string{MetaSchema: strconv.Itoa(SchemaVersion), MetaKind: string(l.w.codec.kind)}
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
	if d, err := os.Open(l.w.opts.Dir); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	l.w.mu.Lock()
	l.w.stats.Rows += rows
	l.w.stats.Files++
	l.w.stats.Bytes += st.Size()
	l.w.mu.Unlock()
	return nil
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
