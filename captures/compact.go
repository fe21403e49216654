package captures

// Compaction on Close: a writer that rolls every few seconds under light
// traffic, or several file goroutines each closing a partial file, leaves
// many small files; readers pay per file (footers, row groups), so Close
// merges the small files it rolled into few.

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// DefaultCompactBelow: files rolled smaller than this are merged on Close.
const DefaultCompactBelow = 16 << 20

// compactBudget bounds the bytes Close rewrites, so that stopping a writer
// that ran for days at a middling rate does not take minutes: the oldest
// small files are merged first, the rest stay as they are.
const compactBudget = 256 << 20

// CompactExt is the suffix of a compaction's manifest, <merged name>.compact:
// the files it replaces, one name a line. It exists only while a merge is
// renamed into place and its sources deleted, so a crash then is finished
// by the next writer's Recover instead of leaving rows twice.
const CompactExt = ".compact"

// MetaCompactedFrom names, space-separated, the files a merged file replaces.
const MetaCompactedFrom = "loadtape.compacted_from"

// rolledFile is a file the writer rolled, a candidate for compaction.
type rolledFile struct {
	path  string
	rows  int64
	bytes int64
}

// compact merges the small files this writer rolled, in roll order, into
// files of up to MaxRows rows and MaxBytes (at most 4×CompactBelow) bytes. A failure
// leaves the small files as they are: they hold the same rows.
func (w *Writer[T]) compact() {
	if w.opts.CompactBelow < 0 {
		return
	}
	w.mu.Lock()
	var small []rolledFile
	var total int64
	for _, f := range w.rolled {
		if f.bytes < w.opts.CompactBelow && total+f.bytes <= compactBudget {
			small = append(small, f)
			total += f.bytes
		}
	}
	w.mu.Unlock()
	limit := min(4*w.opts.CompactBelow, w.opts.MaxBytes)
	var group []rolledFile
	var rows, bytes int64
	flush := func() {
		if len(group) > 1 {
			if err := w.merge(group); err != nil {
				w.mu.Lock()
				w.stats.LastError = err.Error() // the rows are safe in the small files
				w.mu.Unlock()
			}
		}
		group, rows, bytes = nil, 0, 0
	}
	for _, f := range small {
		if len(group) > 0 && (rows+f.rows > w.opts.MaxRows || bytes+f.bytes > limit) {
			flush()
		}
		group = append(group, f)
		rows += f.rows
		bytes += f.bytes
	}
	flush()
}

// merge writes the rows of group into one new file, then deletes group.
func (w *Writer[T]) merge(group []rolledFile) error {
	w.mu.Lock()
	w.seq++
	name := fmt.Sprintf("%s-%s-%06d", w.opts.Prefix, w.start, w.seq)
	meta := maps.Clone(w.meta)
	st := w.statsWith(0, 0)
	w.mu.Unlock()
	base := filepath.Join(w.opts.Dir, name)
	inprogress, final, manifest := base+InProgressExt, base+Ext, base+CompactExt
	if _, err := os.Stat(final); err == nil {
		return fmt.Errorf("captures: compaction: %s exists", final)
	}
	f, err := os.OpenFile(inprogress, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("captures: compaction: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(inprogress)
		os.Remove(manifest)
		return fmt.Errorf("captures: compaction into %s: %w", final, err)
	}
	fw, err := pqarrow.NewFileWriter(w.codec.schema, &countingWriter{w: f}, w.props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return fail(err)
	}
	paths := make([]string, len(group))
	names := make([]string, len(group))
	var want int64
	for i, g := range group {
		paths[i], names[i] = g.path, filepath.Base(g.path)
		want += g.rows
	}
	rd, err := NewReader[T](paths, ReaderOptions{Allocator: w.mem})
	if err != nil {
		return fail(err)
	}
	var rows int64
	for rd.Next() {
		b := rd.Batch()
		rec := w.codec.record(w.mem, b)
		err := fw.WriteBuffered(rec)
		rec.Release()
		if err != nil {
			rd.Close()
			return fail(err)
		}
		rows += int64(len(b))
		if fw.RowGroupTotalCompressedBytes() >= w.opts.RowGroupBytes {
			if err := fw.NewBufferedRowGroupChecked(); err != nil {
				rd.Close()
				return fail(err)
			}
		}
	}
	rd.Close()
	if err := rd.Err(); err != nil {
		return fail(err)
	}
	if rows != want {
		return fail(fmt.Errorf("read %d rows of %d", rows, want))
	}
	kv := maps.Clone(meta)
	if kv == nil {
		kv = map[string]string{}
	}
	if w.opts.RollMetadata != nil {
		maps.Copy(kv, w.opts.RollMetadata(st))
	}
	kv[MetaCompactedFrom] = strings.Join(names, " ")
	if err := writeFooter(fw, f, w.codec.kind, kv); err != nil {
		return fail(err)
	}
	size, _ := f.Seek(0, 1)
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := writeManifest(manifest, names); err != nil {
		return fail(err)
	}
	if err := os.Rename(inprogress, final); err != nil {
		return fail(err)
	}
	syncDir(w.opts.Dir)
	for _, p := range paths {
		os.Remove(p)
	}
	syncDir(w.opts.Dir)
	os.Remove(manifest)
	w.mu.Lock()
	var oldBytes int64
	for _, g := range group {
		oldBytes += g.bytes
	}
	w.stats.Files += 1 - int64(len(group))
	w.stats.Bytes += size - oldBytes
	w.mu.Unlock()
	return nil
}

func writeManifest(path string, names []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(names, "\n") + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// finishCompactions completes or undoes the merges a crash interrupted:
// with the merged file in place, the sources it names are deleted; without
// it, the half-written merge is, and the sources stay.
func finishCompactions(dir string) error {
	manifests, err := filepath.Glob(filepath.Join(dir, "*"+CompactExt))
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range manifests {
		base := strings.TrimSuffix(m, CompactExt)
		if _, err := os.Stat(base + Ext); err != nil {
			os.Remove(base + InProgressExt)
			os.Remove(m)
			continue
		}
		f, err := os.Open(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			name := sc.Text()
			if name == "" || strings.ContainsAny(name, `/\`) || !strings.HasSuffix(name, Ext) {
				continue // only plain .parquet names in this directory
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		f.Close()
		syncDir(dir)
		os.Remove(m)
	}
	return errors.Join(errs...)
}
