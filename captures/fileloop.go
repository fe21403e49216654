package captures

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// fileLoop is one file goroutine of a Writer and the file it has open.
type fileLoop[T Row] struct {
	w     *Writer[T]
	f     *os.File
	cw    *countingWriter
	fw    *pqarrow.FileWriter
	wal   *walFile  // the open file's write-ahead log; nil with Flush < 0
	path  string    // .inprogress path of the open file
	epoch time.Time // when the oldest row in the open file arrived
	rows  int64     // rows in the open file (and its log)
	// synced rows of the open file are fsynced in its log; dirty is when
	// the oldest row not yet fsynced arrived, zero when none.
	synced  int64
	dirty   time.Time
	metaVer int // the writer's metadata version last logged
	// written bytes of the open file are on their way to the device
	// (startWriteback).
	written int64
}

// run is a file goroutine. It ends when Close closes w.chunks and every
// chunk has been written and the last file rolled.
func (l *fileLoop[T]) run() {
	defer l.w.running.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armedFor time.Time // the deadline the timer is set to, zero when stopped
	// Buffered rows are taken, logged and fsynced a quarter of a flush
	// interval after the oldest arrived, leaving the rest of it for a busy
	// machine: a chunk being encoded ahead of them, the write and the
	// fsync. They are then on disk within the interval.
	take := l.w.opts.Flush / 4
	for {
		select {
		case c, ok := <-l.w.chunks:
			if !ok {
				l.finish()
				return
			}
			l.write(c)
		case <-l.w.wake:
		case now := <-timer.C:
			armedFor = time.Time{}
			// Take the partial chunk and whatever is queued, so that the
			// file rolled (or the log synced) now holds every row written
			// before the deadline.
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
			if l.f != nil && !l.epoch.Add(l.w.opts.Roll).After(now) {
				l.roll()
			} else {
				l.sync()
			}
		}
		// The next deadline: a roll Roll after the oldest row not yet in
		// a rolled file (the first of the open file, or the first
		// buffered), and with a log, taking buffered rows and syncing
		// logged ones a quarter of a flush interval after the oldest arrived.
		var next time.Time
		due := func(t time.Time, d time.Duration) {
			if !t.IsZero() && (next.IsZero() || t.Add(d).Before(next)) {
				next = t.Add(d)
			}
		}
		l.w.mu.Lock()
		bufEpoch := l.w.bufEpoch
		l.w.mu.Unlock()
		due(l.epoch, l.w.opts.Roll)
		due(bufEpoch, l.w.opts.Roll)
		if take > 0 {
			due(bufEpoch, take)
			due(l.dirty, take)
		}
		switch {
		case next.IsZero():
			if !armedFor.IsZero() {
				timer.Stop()
				armedFor = time.Time{}
			}
		case !next.Equal(armedFor):
			// Since Go 1.23 Reset discards a pending tick: no drain needed.
			armedFor = next
			timer.Reset(time.Until(armedFor))
		}
	}
}

// finish rolls the last file.
func (l *fileLoop[T]) finish() { l.roll() }

// write appends rows to the open file and its log, opening and rolling
// files as the row and byte bounds require. After a write error the file is
// given up and the rest of the rows go to a new one.
func (l *fileLoop[T]) write(c chunk[T]) {
	defer l.w.recycle(c.rows)
	rows := c.rows
	for len(rows) > 0 {
		if l.f == nil {
			if err := l.open(); err != nil {
				l.lose(int64(len(rows)), err)
				return
			}
			l.epoch = c.epoch
		}
		n := min(int64(len(rows)), l.w.opts.MaxRows-l.rows)
		rec := l.w.codec.record(l.w.mem, rows[:n])
		rows = rows[n:]
		if l.wal != nil {
			if err := l.wal.append(rec, l.metadata()); err != nil {
				rec.Release()
				l.lose(n, fmt.Errorf("captures: %s: %w", l.wal.path, err))
				l.drop(nil)
				continue
			}
			if l.dirty.IsZero() {
				l.dirty = c.epoch
			}
		}
		err := l.fw.WriteBuffered(rec)
		rec.Release()
		l.rows += n
		if err != nil {
			l.drop(fmt.Errorf("captures: %s: %w", l.path, err))
			continue
		}
		if l.fw.RowGroupTotalCompressedBytes() >= l.w.opts.RowGroupBytes {
			if err := l.fw.NewBufferedRowGroupChecked(); err != nil {
				l.drop(fmt.Errorf("captures: %s: %w", l.path, err))
				continue
			}
			startWriteback(l.f, l.written, l.cw.n-l.written)
			l.written = l.cw.n
		}
		if l.rows >= l.w.opts.MaxRows || l.cw.n+l.fw.RowGroupTotalCompressedBytes() >= l.w.opts.MaxBytes {
			l.roll()
		}
	}
}

// metadata is the writer's metadata when it changed since last logged, else nil.
func (l *fileLoop[T]) metadata() map[string]string {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if l.w.metaVer == l.metaVer {
		return nil
	}
	l.metaVer = l.w.metaVer
	return maps.Clone(l.w.meta)
}

// lose counts rows that never reached disk.
func (l *fileLoop[T]) lose(n int64, err error) {
	l.w.fail(err)
	l.w.mu.Lock()
	l.w.stats.Failed += n
	l.w.mu.Unlock()
}

// sync fsyncs the open file's log; a failure gives the file up.
func (l *fileLoop[T]) sync() {
	if l.wal == nil || l.synced == l.rows {
		l.dirty = time.Time{}
		return
	}
	if err := l.wal.sync(); err != nil {
		l.drop(fmt.Errorf("captures: %s: %w", l.wal.path, err))
		return
	}
	l.markSynced(l.wal.rows)
	l.dirty = time.Time{}
}

// markSynced records that the first n rows of the open file are fsynced in its log.
func (l *fileLoop[T]) markSynced(n int64) {
	l.w.mu.Lock()
	l.w.stats.Logged += n - l.synced
	l.w.mu.Unlock()
	l.synced = n
}

// drop gives the open file up after a write error (err, unless already
// counted): the .inprogress file is deleted, which also frees its space;
// rows already in the log are made durable if they can be, and the log is
// kept for recovery; rows that are not on disk are counted as Failed.
func (l *fileLoop[T]) drop(err error) {
	if err != nil {
		l.w.fail(err)
	}
	if l.f == nil {
		return
	}
	l.f.Close()
	os.Remove(l.path)
	if l.wal != nil {
		// The log's own count: a batch whose write failed is in l.rows
		// (its Parquet pages) but not in the log.
		if l.wal.sync() == nil {
			l.markSynced(l.wal.rows)
		} else if cerr := l.wal.cutToSynced(); cerr != nil {
			l.w.fail(fmt.Errorf("captures: %s: %w", l.wal.path, cerr))
		}
		l.wal.close(l.synced == 0)
		if l.synced > 0 {
			l.w.mu.Lock()
			l.w.orphans[l.wal.path] = l.synced
			l.w.mu.Unlock()
		}
	}
	if lost := l.rows - l.synced; lost > 0 {
		l.w.mu.Lock()
		l.w.stats.Failed += lost
		l.w.mu.Unlock()
	}
	l.reset()
}

func (l *fileLoop[T]) reset() {
	l.f, l.fw, l.cw, l.wal, l.path = nil, nil, nil, nil, ""
	l.epoch, l.dirty = time.Time{}, time.Time{}
	l.rows, l.synced, l.written = 0, 0, 0
}

// open creates the next .inprogress file and its log. O_EXCL keeps two
// writers that share a prefix and a start second from writing into one file.
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
		var wal *walFile
		if l.w.opts.Flush > 0 {
			l.w.mu.Lock()
			meta := maps.Clone(l.w.meta)
			l.metaVer = l.w.metaVer
			l.w.mu.Unlock()
			wal, err = createWAL(walPath(path), l.w.codec.schema, l.w.mem, walHeader{Kind: l.w.codec.kind, Schema: SchemaVersion, Metadata: meta})
			if errors.Is(err, os.ErrExist) {
				f.Close()
				os.Remove(path)
				continue
			}
			if err != nil {
				f.Close()
				os.Remove(path)
				return err
			}
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
			if wal != nil {
				wal.close(true)
			}
			return fmt.Errorf("captures: %s: %w", path, err)
		}
		l.f, l.cw, l.fw, l.wal, l.path, l.rows, l.synced = f, cw, fw, wal, path, 0, 0
		return nil
	}
}

// roll finishes the open file: footer with metadata, fsync, close, rename
// to .parquet, fsync of the directory so the rename survives a power cut,
// and only then deletes the log. A failure gives the file up (drop).
func (l *fileLoop[T]) roll() {
	if l.f == nil {
		return
	}
	f, fw, path, rows := l.f, l.fw, l.path, l.rows
	l.w.mu.Lock()
	meta := maps.Clone(l.w.meta)
	cs := l.w.statsWith(rows, l.synced)
	l.w.mu.Unlock()
	if l.w.opts.RollMetadata != nil {
		if meta == nil {
			meta = map[string]string{}
		}
		maps.Copy(meta, l.w.opts.RollMetadata(cs))
	}
	fail := func(err error) { l.drop(fmt.Errorf("captures: %s: %w", path, err)) }
	if err := writeFooter(fw, f, l.w.codec.kind, meta); err != nil {
		fail(err)
		return
	}
	st, err := f.Stat()
	if err != nil {
		fail(err)
		return
	}
	if err := f.Close(); err != nil {
		fail(err)
		return
	}
	final := path[:len(path)-len(InProgressExt)] + Ext
	if err := os.Rename(path, final); err != nil {
		fail(err)
		return
	}
	syncDir(l.w.opts.Dir)
	if wal := l.wal; wal != nil {
		// The rows are in the renamed file: the log is only left to
		// delete, which takes the file system a while for a busy log (a
		// few GB in a roll interval at 100,000 exchanges/s); its file
		// goroutine writes the next file meanwhile. A crash before the
		// removal leaves a log that Recover sees is rolled.
		l.w.removing.Add(1)
		go func() {
			defer l.w.removing.Done() // ends once the log is closed and removed
			wal.close(true)
		}()
	}
	l.w.mu.Lock()
	l.w.stats.Rows += rows
	l.w.stats.Logged -= l.synced
	l.w.stats.Files++
	l.w.stats.Bytes += st.Size()
	l.w.rolled = append(l.w.rolled, rolledFile{final, rows, st.Size()})
	orphans := len(l.w.orphans)
	l.w.mu.Unlock()
	l.reset()
	if orphans > 0 {
		// The disk takes writes again: make the logs of files given up
		// earlier readable now rather than at Close.
		l.w.recoverOrphans()
	}
}

// countingWriter counts bytes on their way to the file, for MaxBytes. It
// also hides the file's Close from the Parquet writer, which would close
// an io.Closer sink itself in its own Close: the footer must be fsynced
// first (writeFooter), so every Parquet writer here writes through one.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
