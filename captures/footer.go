package captures

// Finishing a Parquet file so that it survives a crash: the roll of a
// file, the merge of small ones on Close and the rewrite of a log after a
// crash all end the same way.

import (
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// writeFooter writes kv into the footer in key order, with the schema
// version and row kind, which no key of kv overrides; then it closes the
// Parquet writer and fsyncs f. f stays open: the caller closes and renames it.
func writeFooter(fw *pqarrow.FileWriter, f *os.File, kind Kind, kv map[string]string) error {
	kv = maps.Clone(kv)
	if kv == nil {
		kv = map[string]string{}
	}
	kv[MetaSchema] = strconv.Itoa(SchemaVersion)
	kv[MetaKind] = string(kind)
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if err := fw.AppendKeyValueMetadata(k, kv[k]); err != nil {
			return err
		}
	}
	if err := fw.Close(); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir makes renames and removals in dir survive a power cut; best
// effort: not every file system syncs directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
