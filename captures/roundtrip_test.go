package captures_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
)

// randString mixes ASCII, multi-byte unicode and the odd control byte.
func randString(rng *rand.Rand, max int) string {
	alphabet := []rune("abcXYZ019 -_/:;,.\"'\\\t\nπ日本語🙂\u200béñ")
	n := rng.IntN(max + 1)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

func randBytes(rng *rand.Rand, n int) []byte {
	if n == 0 {
		return nil // empty bodies read back as nil
	}
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n:n]
}

func randHeaders(rng *rand.Rand) []captures.Header {
	n := rng.IntN(8)
	if n == 0 {
		return nil
	}
	hs := make([]captures.Header, n)
	for i := range hs {
		hs[i] = captures.Header{Name: randString(rng, 12), Value: randString(rng, 40)}
		if i > 0 && rng.IntN(3) == 0 {
			hs[i].Name = hs[i-1].Name // repeated header, e.g. Set-Cookie
		}
	}
	return hs
}

func randOffsets(rng *rand.Rand) []int64 {
	n := 0
	switch rng.IntN(40) {
	case 1, 2, 3, 4, 5, 6, 7, 8, 9, 10:
		n = 1 + rng.IntN(20)
	case 11:
		n = 1000 + rng.IntN(9000) // a long stream
	}
	if n == 0 {
		return nil
	}
	o := make([]int64, n)
	t := int64(0)
	for i := range o {
		t += rng.Int64N(1e8)
		o[i] = t
	}
	return o
}

func randExchange(rng *rand.Rand, i int) captures.Exchange {
	bodySize := func() int {
		switch rng.IntN(10) {
		case 0:
			return 0
		}
		return rng.IntN(3000)
	}
	e := captures.Exchange{
		ID: fmt.Sprintf("ex-%d", i), StartNS: rng.Int64(), Service: randString(rng, 8), Operation: randString(rng, 20),
		Session: randString(rng, 10), Seq: rng.Int64N(1000),
		Method: "POST", Scheme: "https", Host: randString(rng, 20), Path: "/" + randString(rng, 30), Query: randString(rng, 10),
		ReqHeaders: randHeaders(rng), RespHeaders: randHeaders(rng),
		ReqBody: randBytes(rng, bodySize()), RespBody: randBytes(rng, bodySize()),
		ReqSize: rng.Int64(), RespSize: rng.Int64(), ReqTruncated: rng.IntN(2) == 0, RespTruncated: rng.IntN(2) == 0,
		Status: rng.Int32N(600), TTFBNS: rng.Int64(), DurationNS: rng.Int64(), Stream: rng.IntN(2) == 0,
		ChunkOffsetsNS: randOffsets(rng), Model: randString(rng, 10),
		PromptTokens: rng.Int64N(1e6), CompletionTokens: rng.Int64N(1e6),
		RPCMethod: randString(rng, 10), RPCID: randString(rng, 5), Tool: randString(rng, 8),
		Error: randString(rng, 30), ClientAborted: rng.IntN(2) == 0,
	}
	if i%1000 == 1 {
		// 1 MiB bodies, only a few per test: under -race they are slow to compress.
		e.RespBody = randBytes(rng, 1<<20)
	}
	return e
}

func randResult(rng *rand.Rand, i int) captures.Result {
	return captures.Result{
		Run: "r", Scenario: randString(rng, 6), Stage: rng.Int32N(5), StageName: randString(rng, 6), StageUsers: rng.Int32(),
		VU: rng.Int32N(100) - 1, Iteration: int64(i), Operation: randString(rng, 12), Service: randString(rng, 6),
		SourceID: randString(rng, 8), IntendedNS: rng.Int64(), StartNS: rng.Int64(), TTFBNS: rng.Int64(), TTFTNS: rng.Int64(),
		DurationNS: rng.Int64(), ChunkOffsetsNS: randOffsets(rng), Status: rng.Int32N(600), ErrorKind: randString(rng, 6),
		Error: randString(rng, 20), BytesOut: rng.Int64(), BytesIn: rng.Int64(), PromptTokens: rng.Int64(),
		CompletionTokens: rng.Int64(), ActiveUsers: rng.Int32(),
	}
}

func randSample(rng *rand.Rand, i int) captures.Sample {
	return captures.Sample{TNS: rng.Int64(), Source: randString(rng, 5), Device: fmt.Sprint(i) + "|" + randString(rng, 5), Metric: randString(rng, 15), Value: rng.NormFloat64()}
}

// checkedAlloc returns an allocator that fails the test if any Arrow buffer
// is still held when the test ends.
func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() {
		// The parquet reader pools scratch buffers and frees them from
		// finalizers; let those run before counting.
		for range 5 {
			runtime.GC()
			if mem.CurrentAlloc() == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mem.AssertSize(t, 0)
	})
	return mem
}

// writeAll writes rows through a Writer with the given options and returns
// its stats.
func writeAll[T captures.Row](t *testing.T, opts captures.WriterOptions, rows []T, per int) captures.WriterStats {
	t.Helper()
	w, err := captures.NewWriter[T](opts)
	if err != nil {
		t.Fatal(err)
	}
	for len(rows) > 0 {
		n := min(per, len(rows))
		if err := w.Write(rows[:n]...); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	return w.Stats()
}

func readAll[T captures.Row](t *testing.T, paths []string, opts captures.ReaderOptions) []T {
	t.Helper()
	r, err := captures.NewReader[T](paths, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []T
	for r.Next() {
		b := r.Batch()
		if len(b) == 0 || len(b) > opts.BatchSize && opts.BatchSize > 0 {
			t.Fatalf("batch of %d rows, BatchSize %d", len(b), opts.BatchSize)
		}
		if int64(len(b)) != r.Record().NumRows() {
			t.Fatalf("Batch has %d rows, Record %d", len(b), r.Record().NumRows())
		}
		out = append(out, b...)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// roundTrip writes random rows and reads them back equal. key gives a row's
// index: files written in parallel hold rows in no global order.
func roundTrip[T captures.Row](t *testing.T, gen func(*rand.Rand, int) T, key func(T) int) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			rows := make([]T, 1+rng.IntN(2000))
			for i := range rows {
				rows[i] = gen(rng, i)
			}
			dir := t.TempDir()
			mem := checkedAlloc(t)
			maxRows := int64(1 + rng.IntN(2000))
			st := writeAll(t, captures.WriterOptions{Dir: dir, MaxRows: maxRows, Allocator: mem, Metadata: map[string]string{"seed": fmt.Sprint(seed)}}, rows, 1+rng.IntN(500))
			if st.Rows != int64(len(rows)) {
				t.Errorf("Stats().Rows = %d, want %d", st.Rows, len(rows))
			}
			if want := (int64(len(rows)) + maxRows - 1) / maxRows; st.Files < want {
				t.Errorf("Stats().Files = %d, want at least %d (MaxRows %d)", st.Files, want, maxRows)
			}
			got := readAll[T](t, []string{dir}, captures.ReaderOptions{BatchSize: 1 + rng.IntN(700), Allocator: mem})
			if len(got) != len(rows) {
				t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
			}
			slices.SortFunc(got, func(a, b T) int { return key(a) - key(b) })
			for i := range rows {
				if !reflect.DeepEqual(got[i], rows[i]) {
					t.Fatalf("row %d differs:\n got %+v\nwant %+v", i, got[i], rows[i])
				}
			}
			infos, err := captures.List(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, fi := range infos {
				if fi.Err != nil || fi.Kind != captures.KindOf[T]() || fi.Schema != 1 || fi.Metadata["seed"] != fmt.Sprint(seed) {
					t.Errorf("List: %+v", fi)
				}
			}
		})
	}
}

func TestRoundTripExchanges(t *testing.T) {
	t.Parallel()
	roundTrip(t, randExchange, func(e captures.Exchange) int { return atoi(strings.TrimPrefix(e.ID, "ex-")) })
}

func TestRoundTripResults(t *testing.T) {
	t.Parallel()
	roundTrip(t, randResult, func(r captures.Result) int { return int(r.Iteration) })
}

func TestRoundTripSamples(t *testing.T) {
	t.Parallel()
	roundTrip(t, randSample, func(s captures.Sample) int {
		n, _, _ := strings.Cut(s.Device, "|")
		return atoi(n)
	})
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestProjection reads a few columns: those fields come back, the others
// stay zero, and Record holds only the columns asked for.
func TestProjection(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	rows := make([]captures.Exchange, 500)
	for i := range rows {
		rows[i] = randExchange(rng, i)
	}
	dir := t.TempDir()
	writeAll(t, captures.WriterOptions{Dir: dir}, rows, 100)
	mem := checkedAlloc(t)
	cols := []string{"req_headers", "duration_ns", "chunk_offsets_ns", "service"}
	r, err := captures.NewReader[captures.Exchange]([]string{dir}, captures.ReaderOptions{Columns: cols, BatchSize: 128, Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	i := 0
	for r.Next() {
		if got := r.Record().NumCols(); got != int64(len(cols)) {
			t.Fatalf("Record has %d columns, want %d", got, len(cols))
		}
		if idx := r.Record().Schema().FieldIndices("duration_ns"); len(idx) != 1 {
			t.Fatalf("duration_ns not in Record schema %s", r.Record().Schema())
		}
		for _, got := range r.Batch() {
			want := captures.Exchange{ReqHeaders: rows[i].ReqHeaders, DurationNS: rows[i].DurationNS, ChunkOffsetsNS: rows[i].ChunkOffsetsNS, Service: rows[i].Service}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("row %d: got %+v, want %+v", i, got, want)
			}
			i++
		}
	}
	if err := r.Err(); err != nil || i != len(rows) {
		t.Fatalf("read %d rows (err %v), want %d", i, err, len(rows))
	}
	if _, err := captures.NewReader[captures.Result]([]string{dir}, captures.ReaderOptions{Columns: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown column: err = %v, want one naming it", err)
	}
}

// TestConcurrentWrites: many goroutines write at once; every row arrives.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mem := checkedAlloc(t)
	w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir, Prefix: "results", MaxRows: 3000, Roll: 50 * time.Millisecond, Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, per = 8, 2500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				if err := w.Write(captures.Result{Iteration: int64(g*per + i), VU: int32(g)}); err != nil {
					t.Error(err)
					return
				}
				if i%500 == 0 {
					time.Sleep(10 * time.Millisecond) // let time rolls happen mid-stream
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(captures.Result{}); err != captures.ErrClosed {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	got := readAll[captures.Result](t, []string{filepath.Join(dir, "results-*.parquet")}, captures.ReaderOptions{Columns: []string{"iteration"}, Allocator: mem})
	its := make([]int64, len(got))
	for i, r := range got {
		its[i] = r.Iteration
	}
	slices.Sort(its)
	for i, it := range its {
		if it != int64(i) {
			t.Fatalf("iterations: position %d holds %d; %d rows, want %d", i, it, len(its), goroutines*per)
		}
	}
	if len(its) != goroutines*per {
		t.Fatalf("read %d rows, want %d", len(its), goroutines*per)
	}
	if st := w.Stats(); st.Files < 7 || st.Rows != goroutines*per {
		t.Errorf("Stats = %+v, want >= 7 files (MaxRows 3000) and %d rows", st, goroutines*per)
	}
}

// TestRollByTime: a file rolls every Roll even while no rows arrive, so a
// quiet proxy does not sit on an unfinished file.
func TestRollByTime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := captures.NewWriter[captures.Sample](captures.WriterOptions{Dir: dir, Roll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(captures.Sample{Metric: "cpu_util", Value: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Files == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := w.Stats(); st.Files != 1 || st.Rows != 1 {
		t.Fatalf("after the roll interval: Stats = %+v, want 1 file with 1 row", st)
	}
	infos, _ := captures.List(dir)
	if len(infos) != 1 || infos[0].Incomplete || infos[0].Rows != 1 {
		t.Fatalf("List = %+v, want one complete file", infos)
	}
}

// TestBoundsBySize: row groups are cut by compressed bytes (the writer's
// memory bound) and files roll by bytes.
func TestBoundsBySize(t *testing.T) {
	t.Parallel()
	g := fake.New(8, 1_700_000_000_000_000_000)
	rows := make([]captures.Exchange, 3000)
	for i := range rows {
		rows[i] = g.Chat(1024, 2048)
	}
	dir := t.TempDir()
	writeAll(t, captures.WriterOptions{Dir: dir, Files: 1, RowGroupBytes: 128 << 10, MaxBytes: 1 << 20}, rows, 50)
	files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if len(files) < 2 {
		t.Fatalf("%d files, want several with MaxBytes 1 MiB", len(files))
	}
	groups := 0
	for _, f := range files {
		pf, err := file.OpenParquetFile(f, false)
		if err != nil {
			t.Fatal(err)
		}
		groups += pf.NumRowGroups()
		for i := range pf.NumRowGroups() {
			// A cut happens after the chunk that crossed the bound: at
			// most one chunk beyond it (4 MiB raw; about 1.05 MiB with
			// Snappy bodies, which keep a third of chat JSON).
			if sz := pf.MetaData().RowGroup(i).TotalCompressedSize(); sz > 3<<19 {
				t.Errorf("%s row group %d: %d compressed bytes, want about 128 KiB", f, i, sz)
			}
		}
		pf.Close()
		st, _ := os.Stat(f)
		if st.Size() > 2<<20 {
			t.Errorf("%s: %d bytes, want about 1 MiB", f, st.Size())
		}
	}
	if groups <= len(files) {
		t.Errorf("%d row groups in %d files, want several per file", groups, len(files))
	}
	if got := readAll[captures.Exchange](t, []string{dir}, captures.ReaderOptions{Columns: []string{"id"}}); len(got) != len(rows) {
		t.Errorf("read %d rows, want %d", len(got), len(rows))
	}
}
