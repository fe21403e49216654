package captures

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Errors naming why a file cannot be read. Each is wrapped with the file's
// path, so the message is one line naming the file.
var (
	ErrNotCapture  = errors.New("not a loadtape capture (no " + MetaKind + " metadata)")
	ErrNewerSchema = errors.New("schema version is newer than this loadtape understands")
	ErrBadSchema   = errors.New("bad " + MetaSchema + " metadata")
	ErrWrongKind   = errors.New("holds another kind of rows")
	ErrIncomplete  = errors.New("incomplete file: still being written, or its writer crashed")
	ErrNoMatch     = errors.New("no file matches")
	ErrCorruptFile = errors.New("corrupt file")
	errUnknownKind = errors.New("unknown " + MetaKind)
)

const (
	arrowSchemaKey        = "ARROW:schema"
	ignoredArrowSchemaKey = "loadtape.ignored.ARROW:schema"
)

// FileInfo describes one file found by List.
type FileInfo struct {
	Path       string
	Kind       Kind
	Schema     int
	Rows       int64
	Bytes      int64
	Incomplete bool              // a leftover .parquet.inprogress (never read)
	Metadata   map[string]string // key-value metadata, without the large ARROW:schema
	Err        error             // why the file cannot be read: one line naming the file
}

// target is one file to read, and whether the user named it explicitly
// (then it must be of the wanted kind) or it came from a directory or glob
// (then files of other kinds are skipped).
type target struct {
	path     string
	explicit bool
}

// expand turns paths (files, directories, globs) into files. Directories
// are not searched recursively: a capture or run directory is flat. From
// directories and globs only *.parquet files are taken, and *.inprogress
// too when withIncomplete is set. A path that does not exist or a glob that
// matches nothing is an error naming it.
func expand(paths []string, withIncomplete bool) ([]target, error) {
	var out []target
	seen := map[string]bool{}
	add := func(p string, explicit bool) {
		if !seen[p] {
			seen[p] = true
			out = append(out, target{p, explicit})
		}
	}
	wanted := func(name string) bool {
		return strings.HasSuffix(name, Ext) || (withIncomplete && strings.HasSuffix(name, InProgressExt))
	}
	for _, p := range paths {
		if strings.ContainsAny(p, "*?[") {
			matches, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("captures: %s: %w", p, err)
			}
			n := 0
			for _, m := range matches {
				if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() && wanted(m) {
					add(m, false)
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("captures: %s: %w", p, ErrNoMatch)
			}
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("captures: %w", err)
		}
		if !st.IsDir() {
			add(p, true)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("captures: %w", err)
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.Type().IsRegular() && wanted(e.Name()) {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		for _, n := range names {
			add(filepath.Join(p, n), false)
		}
	}
	return out, nil
}

// parquetFile is an open capture file with its kind and schema checked.
type parquetFile struct {
	f      *os.File
	pf     *file.Reader
	kind   Kind
	schema int
}

func (p *parquetFile) Close() error {
	err := p.pf.Close() // closes p.f too
	p.pf = nil
	return err
}

// openFile opens path and checks that it is a complete loadtape capture of a
// schema version this package reads. Errors name the file.
func openFile(path string, mem memory.Allocator) (_ *parquetFile, err error) {
	if strings.HasSuffix(path, InProgressExt) {
		return nil, fmt.Errorf("%s: %w", path, ErrIncomplete)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		// The parquet footer parser trusts lengths in the file; a crafted
		// file can make it panic. Turn that into an error naming the file.
		if p := recover(); p != nil {
			f.Close()
			err = fmt.Errorf("%s: %w: %v", path, ErrCorruptFile, p)
		}
	}()
	props := parquet.NewReaderProperties(mem)
	// Read pages as they are needed rather than whole column chunks up
	// front, so memory stays small even for wide row groups.
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not a readable Parquet file: %s", path, oneLine(err))
	}
	kv := pf.MetaData().KeyValueMetadata()
	// pqarrow decodes an ARROW:schema entry if there is one, and a damaged
	// one makes arrow's IPC decoder allocate without bound (found by
	// FuzzReader: a fatal out-of-memory, which recover cannot catch). The
	// Parquet schema has every type we need, so hide the entry.
	for _, e := range kv {
		if e.Key == arrowSchemaKey {
			e.Key = ignoredArrowSchemaKey
		}
	}
	fail := func(e error) (*parquetFile, error) {
		pf.Close()
		return nil, fmt.Errorf("%s: %w", path, e)
	}
	kind := kv.FindValue(MetaKind)
	if kind == nil {
		return fail(ErrNotCapture)
	}
	switch k := Kind(*kind); k {
	case KindExchanges, KindResults, KindSamples:
	default:
		return fail(fmt.Errorf("%w %q", errUnknownKind, k))
	}
	sv := kv.FindValue(MetaSchema)
	if sv == nil {
		return fail(fmt.Errorf("%w: missing", ErrBadSchema))
	}
	v, err := strconv.Atoi(*sv)
	if err != nil || v < 1 {
		return fail(fmt.Errorf("%w: %q", ErrBadSchema, *sv))
	}
	if v > SchemaVersion {
		return fail(fmt.Errorf("%w: file has %d, this build reads up to %d", ErrNewerSchema, v, SchemaVersion))
	}
	return &parquetFile{f: f, pf: pf, kind: Kind(*kind), schema: v}, nil
}

// List describes every file that paths name (files, directories read
// non-recursively, globs), leftover .inprogress files included as
// Incomplete. Problems with one file go into its FileInfo.Err, so the others
// are still listed; the error is for paths that name nothing.
func List(paths ...string) ([]FileInfo, error) {
	var infos []FileInfo
	var errs []error
	for _, p := range paths {
		ts, err := expand([]string{p}, true)
		if err != nil {
			errs = append(errs, err)
			infos = append(infos, FileInfo{Path: p, Err: err})
			continue
		}
		for _, t := range ts {
			infos = append(infos, describe(t.path))
		}
	}
	return infos, errors.Join(errs...)
}

func describe(path string) FileInfo {
	fi := FileInfo{Path: path}
	if st, err := os.Stat(path); err == nil {
		fi.Bytes = st.Size()
	}
	if strings.HasSuffix(path, InProgressExt) {
		fi.Incomplete = true
		return fi
	}
	pf, err := openFile(path, memory.DefaultAllocator)
	if err != nil {
		fi.Err = err
		return fi
	}
	defer pf.Close()
	fi.Kind, fi.Schema, fi.Rows = pf.kind, pf.schema, pf.pf.NumRows()
	if err := checkSchema(pf); err != nil {
		fi.Err = fmt.Errorf("%s: %w", path, err)
	}
	kv := pf.pf.MetaData().KeyValueMetadata()
	fi.Metadata = map[string]string{}
	for i, k := range kv.Keys() {
		if k != ignoredArrowSchemaKey {
			fi.Metadata[k] = kv.Values()[i]
		}
	}
	return fi
}

// oneLine keeps error messages from the parquet library to one line.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// checkSchema checks that every column of the file's kind is present with
// its type, without reading any data.
func checkSchema(pf *parquetFile) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrCorruptFile, p)
		}
	}()
	fr, err := pqarrow.NewFileReader(pf.pf, pqarrow.ArrowReadProperties{BatchSize: DefaultBatchSize}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrCorruptFile, oneLine(err))
	}
	switch pf.kind {
	case KindExchanges:
		_, err = matchColumns(fr, exchangeCodec, allColumns(exchangeCodec))
	case KindResults:
		_, err = matchColumns(fr, resultCodec, allColumns(resultCodec))
	case KindSamples:
		_, err = matchColumns(fr, sampleCodec, allColumns(sampleCodec))
	}
	return err
}

func allColumns[T any](c *codec[T]) []int {
	idx, _ := c.checkColumns(nil)
	return idx
}
