package captures_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
)

// chunkCodecs is each column chunk's codec and whether it is dictionary
// encoded, by column path, in the first row group of path.
func chunkCodecs(t *testing.T, path string) map[string]struct {
	codec compress.Compression
	dict  bool
} {
	t.Helper()
	r, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rg := r.MetaData().RowGroup(0)
	out := map[string]struct {
		codec compress.Compression
		dict  bool
	}{}
	for i := range rg.NumColumns() {
		cc, err := rg.ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		encs := cc.Encodings()
		dict := slices.Contains(encs, parquet.Encodings.RLEDict) || slices.Contains(encs, parquet.Encodings.PlainDict)
		out[cc.PathInSchema().String()] = struct {
			codec compress.Compression
			dict  bool
		}{cc.Compression(), dict}
	}
	return out
}

// TestCodecs: the writer compresses bodies with Snappy and the rest with
// zstd, keeps header names and values out of dictionaries, and a
// directory mixing such files with ones written before (the committed
// sample: zstd bodies, dictionary-encoded headers) reads back whole.
func TestCodecs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := fake.New(6, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
	rows := make([]captures.Exchange, 500)
	for i := range rows {
		rows[i] = g.Chat(1024, 1024)
	}
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, CompactBelow: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(rows...)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "*"+captures.Ext))
	if len(written) != 1 {
		t.Fatalf("files %v, want one", written)
	}
	got := chunkCodecs(t, written[0])
	for path, c := range got {
		want := compress.Codecs.Zstd
		if path == "req_body" || path == "resp_body" {
			want = compress.Codecs.Snappy
		}
		if c.codec != want {
			t.Errorf("column %s: codec %v, want %v", path, c.codec, want)
		}
	}
	for _, path := range []string{"req_headers.list.element.name", "req_headers.list.element.value", "resp_headers.list.element.name", "resp_headers.list.element.value"} {
		if c, ok := got[path]; !ok || c.dict {
			t.Errorf("column %s: present %v, dictionary %v; want present, no dictionary", path, ok, c.dict)
		}
	}
	if !got["operation"].dict {
		t.Error("column operation lost its dictionary")
	}

	old, _ := filepath.Glob(filepath.Join("testdata", "sample", "exchanges-*"+captures.Ext))
	if len(old) != 1 {
		t.Fatalf("testdata/sample exchanges files %v, want one", old)
	}
	if c := chunkCodecs(t, old[0]); c["req_body"].codec != compress.Codecs.Zstd || !c["req_headers.list.element.name"].dict {
		t.Fatalf("the sample is no longer a file of the earlier codecs (req_body %v, header names dictionary %v): this test needs one", c["req_body"].codec, c["req_headers.list.element.name"].dict)
	}
	b, err := os.ReadFile(old[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(old[0])), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := captures.NewReader[captures.Exchange]([]string{dir}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := map[string]captures.Exchange{} // by body: the sample's ids repeat the new ones'
	for _, x := range rows {
		want[string(x.ReqBody)] = x
	}
	var n, bodies, same int
	for r.Next() {
		for _, x := range r.Batch() {
			n++
			if len(x.ReqBody) > 0 || len(x.RespBody) > 0 {
				bodies++
			}
			if w, ok := want[string(x.ReqBody)]; ok && w.ID == x.ID && string(w.RespBody) == string(x.RespBody) &&
				slices.Equal(w.ReqHeaders, x.ReqHeaders) && slices.Equal(w.RespHeaders, x.RespHeaders) {
				same++
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 300+len(rows) {
		t.Fatalf("read %d exchanges, want the sample's 300 + %d", n, len(rows))
	}
	if same != len(rows) {
		t.Errorf("%d of the %d new exchanges read back equal", same, len(rows))
	}
	if bodies < len(rows)+100 {
		t.Errorf("%d exchanges with a body, want all %d new ones and most of the sample's", bodies, len(rows))
	}
}
