package captures

// Recovery of write-ahead logs left by a writer that did not close: after
// SIGKILL, a power cut or a write error it could not get past.

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Errors of recovery.
var (
	ErrNotWAL = errors.New("not a loadtape write-ahead log")
)

// Metadata keys of a recovered file.
const (
	MetaRecovered     = "loadtape.recovered"      // RFC 3339 time of the recovery
	MetaRecoveredTorn = "loadtape.recovered.torn" // bytes of torn tail dropped, when any
)

// WALInfo describes a write-ahead log found in a directory.
type WALInfo struct {
	Path      string
	Kind      Kind
	Rows      int64 // rows in whole records: what recovery writes
	Bytes     int64 // size of the log
	TornBytes int64 // bytes of a cut-off or corrupt tail, dropped by recovery
	// Live: a running writer holds the log; its rows are not lost.
	Live bool
	// Rolled: the .parquet file of the log exists, so its rows are
	// readable and the log is only left to delete.
	Rolled bool
	Err    error // why the log cannot be read
}

// Recovered is one write-ahead log turned into a Parquet file.
type Recovered struct {
	WAL       string
	Path      string // the .parquet file written; empty if the log held no rows or was already rolled
	Rows      int64
	TornBytes int64
}

// WALs lists the write-ahead logs in dir and what each holds, reading only.
func WALs(dir string) ([]WALInfo, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+WALExt))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []WALInfo
	for _, p := range paths {
		out = append(out, inspectWAL(p))
	}
	return out, nil
}

func inspectWAL(path string) WALInfo {
	wi := WALInfo{Path: path}
	if st, err := os.Stat(path); err == nil {
		wi.Bytes = st.Size()
	}
	if _, err := os.Stat(rolledPath(path)); err == nil {
		wi.Rolled = true
	}
	f, err := os.Open(path)
	if err != nil {
		wi.Err = err
		return wi
	}
	// A lock we get is released by Close at once: inspecting never stops
	// a writer from starting.
	if err := lockFile(f); isLocked(err) {
		wi.Live = true
	}
	f.Close()
	f, wr, err := openWAL(path)
	if err != nil {
		wi.Err = err
		return wi
	}
	defer f.Close()
	wi.Kind = wr.header.Kind
	wi.Rows, err = countRows(wr)
	wi.TornBytes = wr.tornBytes()
	if err != nil {
		wi.Err = fmt.Errorf("%s: %w", path, err)
	}
	return wi
}

func countRows(wr *walReader) (int64, error) {
	rd, err := ipc.NewReader(wr)
	if errors.Is(err, io.EOF) {
		return 0, nil // no record was logged
	}
	if err != nil {
		return 0, err
	}
	defer rd.Release()
	var n int64
	for rd.Next() {
		n += rd.RecordBatch().NumRows()
	}
	if err := rd.Err(); err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

func rolledPath(wal string) string { return strings.TrimSuffix(wal, WALExt) + Ext }

// Recover turns every write-ahead log in dir that no running writer holds
// into the .parquet file it stood for: every whole record, a torn tail
// dropped, the metadata last logged plus loadtape.recovered. The log and
// the unreadable .inprogress file are deleted only after the new file is
// renamed into place; a crash during recovery leaves the log for the next
// try. A log whose .parquet file exists is deleted. A compaction that a
// crash interrupted is finished or undone first (CompactExt).
func Recover(dir string) ([]Recovered, error) {
	var errs []error
	if err := finishCompactions(dir); err != nil {
		errs = append(errs, fmt.Errorf("captures: finishing an interrupted compaction: %w", err))
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*"+WALExt))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []Recovered
	for _, p := range paths {
		rc, err := recoverWAL(p, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rc != nil {
			out = append(out, *rc)
		}
	}
	return out, errors.Join(errs...)
}

// recoverWAL recovers one log; nil, nil when a writer holds it. mem may be nil.
func recoverWAL(path string, mem memory.Allocator) (*Recovered, error) {
	lf, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	defer lf.Close() // releases the lock, after the log is gone
	if err := lockFile(lf); err != nil {
		if isLocked(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("captures: %s: %w", path, err)
	}
	base := strings.TrimSuffix(path, WALExt)
	inprogress := base + InProgressExt
	final := base + Ext
	if _, err := os.Stat(final); err == nil {
		// Crashed between the rename and deleting the log.
		os.Remove(inprogress)
		os.Remove(path)
		return &Recovered{WAL: path}, nil
	}
	f, wr, err := openWAL(path)
	if errors.Is(err, errTornHeader) {
		os.Remove(inprogress)
		os.Remove(path)
		return &Recovered{WAL: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	defer f.Close()
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	var rows int64
	switch wr.header.Kind {
	case KindExchanges:
		rows, err = rewrite(exchangeCodec, wr, inprogress, final, mem)
	case KindResults:
		rows, err = rewrite(codecOf[Result](), wr, inprogress, final, mem)
	case KindSamples:
		rows, err = rewrite(codecOf[Sample](), wr, inprogress, final, mem)
	default:
		err = fmt.Errorf("%w %q", errUnknownKind, wr.header.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("captures: recovering %s: %w", path, err)
	}
	rc := &Recovered{WAL: path, Rows: rows, TornBytes: wr.tornBytes()}
	if rows > 0 {
		rc.Path = final
	}
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	syncDir(filepath.Dir(path))
	return rc, nil
}

// rewrite writes the records of a log into inprogress and renames it to
// final. No rows: nothing is written and the .inprogress file is removed.
func rewrite[T Row](c *codec[T], wr *walReader, inprogress, final string, mem memory.Allocator) (int64, error) {
	os.Remove(inprogress) // the crashed writer's, without a footer
	rd, err := ipc.NewReader(wr, ipc.WithAllocator(mem))
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer rd.Release()
	if !rd.Schema().Equal(c.schema) {
		return 0, fmt.Errorf("logged schema differs from the %s schema of this build", c.kind)
	}
	f, err := os.OpenFile(inprogress, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int64, error) {
		f.Close()
		os.Remove(inprogress)
		return 0, err
	}
	fw, err := pqarrow.NewFileWriter(c.schema, &countingWriter{w: f}, writerProps(mem, c), pqarrow.NewArrowWriterProperties())
	if err != nil {
		return fail(err)
	}
	var rows int64
	for rd.Next() {
		rec := rd.RecordBatch()
		if err := fw.WriteBuffered(rec); err != nil {
			return fail(err)
		}
		rows += rec.NumRows()
		if fw.RowGroupTotalCompressedBytes() >= DefaultRowGroupBytes {
			if err := fw.NewBufferedRowGroupChecked(); err != nil {
				return fail(err)
			}
		}
	}
	if err := rd.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	if wr.err != nil {
		return fail(wr.err)
	}
	if rows == 0 {
		fw.Close()
		f.Close()
		os.Remove(inprogress)
		return 0, nil
	}
	kv := maps.Clone(wr.meta)
	if kv == nil {
		kv = map[string]string{}
	}
	kv[MetaRecovered] = time.Now().UTC().Format(time.RFC3339)
	if t := wr.tornBytes(); t > 0 {
		kv[MetaRecoveredTorn] = strconv.FormatInt(t, 10)
	}
	if err := writeFooter(fw, f, c.kind, kv); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(inprogress)
		return 0, err
	}
	if err := os.Rename(inprogress, final); err != nil {
		os.Remove(inprogress)
		return 0, err
	}
	syncDir(filepath.Dir(final))
	return rows, nil
}
