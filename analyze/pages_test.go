package analyze

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/loadtape/loadtape/internal/benchrun"
)

// TestPageEncodingsReadAlike: the result files rewritten with other page
// layouts (data pages V2, many small pages that end inside a slice of
// rows, strings without a dictionary, numbers with one or delta-encoded,
// other codecs) give the statistics of loadtape's own files, whether
// pageCol decodes a chunk or arrow-go's column readers do.
func TestPageEncodingsReadAlike(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := benchrun.Write(dir, 30_000); err != nil {
		t.Fatal(err)
	}
	want, err := Analyze(Options{Runs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name  string
		props *parquet.WriterProperties
		raw   bool // every chunk is one pageCol decodes
	}{
		{"v2 small pages snappy", parquet.NewWriterProperties(parquet.WithDataPageVersion(parquet.DataPageV2),
			parquet.WithDataPageSize(3000), parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(7000),
			parquet.WithDictionaryDefault(false), parquet.WithDictionaryFor("operation", true), parquet.WithDictionaryFor("error_kind", true),
			parquet.WithDictionaryFor("error", true), parquet.WithDictionaryFor("scenario", true), parquet.WithDictionaryFor("run", true)), true},
		{"v1 plain strings tiny pages", parquet.NewWriterProperties(parquet.WithDataPageSize(1000),
			parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(5000)), true},
		{"dictionary everywhere", parquet.NewWriterProperties(parquet.WithDictionaryDefault(true),
			parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDataPageSize(20_000)), false},
		{"delta numbers", parquet.NewWriterProperties(parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(9000),
			parquet.WithEncodingFor("start_ns", parquet.Encodings.DeltaBinaryPacked), parquet.WithEncodingFor("stage", parquet.Encodings.DeltaBinaryPacked),
			parquet.WithEncodingFor("chunk_offsets_ns.list.element", parquet.Encodings.DeltaBinaryPacked)), false},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			copyDir(t, dir, d)
			files, err := resultFiles([]string{d})
			if err != nil || len(files) == 0 {
				t.Fatalf("files %v, %v", files, err)
			}
			raw, other := 0, 0
			for _, path := range files {
				rewriteResults(t, path, v.props, nil)
				r, o := chunkEncodings(t, path)
				raw, other = raw+r, other+o
			}
			if v.raw && other > 0 || !v.raw && other == 0 || raw == 0 {
				t.Fatalf("%d chunks pageCol decodes, %d it leaves to arrow-go: not the layout this case is for", raw, other)
			}
			got, err := Analyze(Options{Runs: []string{d}})
			if err != nil {
				t.Fatal(err)
			}
			if a, b := mustJSON(t, got.Stages), mustJSON(t, want.Stages); a != b {
				t.Fatalf("stages differ from the loadtape files':\n%.400s\nwant\n%.400s", a, b)
			}
		})
	}
}

// chunkEncodings counts the column chunks analyze reads that pageCol
// decodes and those it leaves to arrow-go's readers.
func chunkEncodings(t *testing.T, path string) (raw, other int) {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	leaves, ok := directLeaves(pf)
	if !ok {
		t.Fatalf("%s: not read directly", path)
	}
	for g := range pf.NumRowGroups() {
		for i, leaf := range leaves {
			md, err := pf.MetaData().RowGroup(g).ColumnChunk(leaf)
			if err != nil {
				t.Fatal(err)
			}
			if rawEncodings(md.Encodings(), resultCols[i].kind) {
				raw++
			} else {
				other++
			}
		}
	}
	return raw, other
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// hybridEncode writes vals in Parquet's RLE / bit-packing hybrid with bw
// bits, choosing run kinds at random (the last bit-packed run padded, or
// cut short after its last value when short is set).
func hybridEncode(rng *rand.Rand, vals []uint32, bw int, short bool) []byte {
	var out []byte
	for i := 0; i < len(vals); {
		if rng.IntN(2) == 0 {
			// an RLE run of the value at i, as long as it repeats
			j := i + 1
			for j < len(vals) && vals[j] == vals[i] && j-i < 300 {
				j++
			}
			out = binary.AppendUvarint(out, uint64(j-i)<<1)
			for b := range (bw + 7) / 8 {
				out = append(out, byte(vals[i]>>(8*b)))
			}
			i = j
			continue
		}
		groups := 1 + rng.IntN(6)
		n := min(groups*8, len(vals)-i)
		groups = (n + 7) / 8
		out = binary.AppendUvarint(out, uint64(groups)<<1|1)
		packed := make([]byte, groups*bw)
		for k := range n {
			for b := range bw {
				if vals[i+k]>>b&1 == 1 {
					bit := k*bw + b
					packed[bit/8] |= 1 << (bit % 8)
				}
			}
		}
		if short && i+n == len(vals) {
			packed = packed[:(n*bw+7)/8]
		}
		out = append(out, packed...)
		i += n
	}
	return out
}

// TestHybridDecodes: values of every bit width 0 to 32, in runs of both
// kinds, read back in pieces of any size.
func TestHybridDecodes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := range 400 {
		bw := trial % 33
		vals := make([]uint32, 1+rng.IntN(700))
		for i := range vals {
			if i > 0 && rng.IntN(3) == 0 {
				vals[i] = vals[i-1] // repeats, for RLE runs
				continue
			}
			if bw > 0 {
				vals[i] = uint32(rng.Uint64() & (1<<bw - 1))
			}
		}
		data := hybridEncode(rng, vals, bw, trial%2 == 1)
		var h hybrid
		h.init(data, bw)
		var got []uint32
		for len(got) < len(vals) {
			buf := make([]uint32, min(1+rng.IntN(90), len(vals)-len(got)))
			if err := h.read(buf); err != nil {
				t.Fatalf("bw %d: after %d of %d values: %v", bw, len(got), len(vals), err)
			}
			got = append(got, buf...)
		}
		if !slices.Equal(got, vals) {
			t.Fatalf("bw %d: decoded %v, want %v", bw, got, vals)
		}
		if err := h.read(make([]uint32, 9)); err == nil && trial%2 == 1 {
			t.Fatalf("bw %d: read 9 values past a run cut short after its last", bw)
		}
	}
}

// TestHybridDamaged: a run that claims more than the data holds, or a
// header cut short, is an error, not a panic or a value made up.
func TestHybridDamaged(t *testing.T) {
	t.Parallel()
	for _, data := range [][]byte{
		{},
		{0x80},             // a header whose varint never ends
		{4 << 1},           // an RLE run of 4 without its value (bw 8)
		{1<<1 | 1},         // a bit-packed group of 8 without its bytes
		{1<<1 | 1, 0xff},   // ... with one of its 8
		{0xff, 0xff, 0xff}, // a header cut short
	} {
		var h hybrid
		h.init(data, 8)
		if err := h.read(make([]uint32, 4)); err == nil {
			t.Errorf("%x: read 4 values of bw 8 without an error", data)
		}
	}
}
