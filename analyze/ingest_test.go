package analyze

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/benchrun"
)

// collectBoth reads dir's result files through the dictionary reader and
// through captures.Reader's rows, into two collectors.
func collectBoth(t *testing.T, dir string) (direct, rows *collector) {
	t.Helper()
	info, err := ReadRunInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := resultFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	direct, rows = newCollector(info, DefaultWarmUp), newCollector(info, DefaultWarmUp)
	whole := make([]filePart, len(files))
	for i, f := range files {
		whole[i] = filePart{path: f}
	}
	if err := readInto(direct, whole); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := readRows(rows, f); err != nil {
			t.Fatal(err)
		}
	}
	return direct, rows
}

func stagesJSON(t *testing.T, c *collector) string {
	t.Helper()
	js, err := json.Marshal(c.finish())
	if err != nil {
		t.Fatal(err)
	}
	return string(js) + " " + mustJSON(t, c.failuresOf()) + " " + mustJSON(t, c.seriesOf())
}

func mustJSON(t *testing.T, v any) string {
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// TestDirectReaderSameAsRows: the dictionary reader hands the collector
// the rows captures.Reader does (streams with chunk offsets, failures and
// their texts included), so every statistic comes out the same.
func TestDirectReaderSameAsRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := benchrun.Write(dir, 60_000); err != nil {
		t.Fatal(err)
	}
	direct, rows := collectBoth(t, dir)
	a, b := stagesJSON(t, direct), stagesJSON(t, rows)
	if a != b {
		t.Fatalf("direct reader's statistics differ from captures.Reader's:\n%.600s\nwant\n%.600s", a, b)
	}
	if !strings.Contains(a, `"chat.completions"`) || !strings.Contains(a, "upstream overloaded") {
		t.Fatalf("the run lacks the streams or failures it should test: %.300s", a)
	}
}

// TestDirectReaderHandsOverOddFiles: a result file without a column the
// direct reader needs goes to captures.Reader, whose error names the file
// and the column.
func TestDirectReaderHandsOverOddFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := benchrun.Write(dir, 1200); err != nil {
		t.Fatal(err)
	}
	files, err := resultFiles([]string{dir})
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v, %v", files, err)
	}
	// Rewrite the file without its bytes_in column, keeping the metadata.
	rewriteResults(t, files[0], nil, func(tbl arrow.Table) arrow.Table {
		var cols []arrow.Column
		var fields []arrow.Field
		for i, fl := range tbl.Schema().Fields() {
			if fl.Name != "bytes_in" {
				cols = append(cols, *tbl.Column(i))
				fields = append(fields, fl)
			}
		}
		return array.NewTable(arrow.NewSchema(fields, nil), cols, tbl.NumRows())
	})
	info, err := ReadRunInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = readInto(newCollector(info, DefaultWarmUp), []filePart{{path: files[0]}})
	if err == nil || !strings.Contains(err.Error(), filepath.Base(files[0])) || !strings.Contains(err.Error(), "bytes_in") {
		t.Fatalf("got %v, want captures.Reader's error naming the file and bytes_in", err)
	}
}

func readTable(t *testing.T, f *os.File) (arrow.Table, metadata.KeyValueMetadata) {
	t.Helper()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tbl, pf.MetaData().KeyValueMetadata()
}

// TestPartsLatencyIsMergedLatency: the "all" row's figures from sorted
// parts equal latencyOf of their merge, ties and empty parts included.
func TestPartsLatencyIsMergedLatency(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		parts := make([][]int64, 1+rng.IntN(5))
		for i := range parts {
			p := make([]int64, rng.IntN(50))
			for j := range p {
				p[j] = rng.Int64N(int64(1 + trial*trial))
			}
			slices.Sort(p)
			parts[i] = p
		}
		got := partsLatency(parts)
		merged := mergeSorted(slices.Clone(parts))
		want := latencyPtr(slices.Clone(merged))
		if (got == nil) != (want == nil) || got != nil && *got != *want {
			t.Fatalf("trial %d: parts %v: got %+v, want %+v", trial, parts, got, want)
		}
		for _, q := range append([]float64{0, 0.001}, SeriesPercentiles...) {
			g, w := PercentileOfParts(parts, q), Percentile(merged, q)
			if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
				t.Fatalf("trial %d: PercentileOfParts(%v, %v) = %v, want %v", trial, parts, q, g, w)
			}
		}
	}
}

// TestMergeIsOneReader: rows cut in two at any point, collected apart and
// merged, give what one collector reading them all gives: a user's
// iteration split across the cut counts once and its pause across the cut
// counts, so the row groups can be shared among readers freely.
func TestMergeIsOneReader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := benchrun.Write(dir, 36_000); err != nil {
		t.Fatal(err)
	}
	info, err := ReadRunInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := readAllRows(t, dir)
	one := newCollector(info, DefaultWarmUp)
	for i := range rows {
		one.add(&rows[i])
	}
	want := stagesJSON(t, one)
	for _, cut := range []int{1, 2_999, 3_000, 17_777, len(rows) - 1} {
		a, b := newCollector(info, DefaultWarmUp), newCollector(info, DefaultWarmUp)
		for i := range rows[:cut] {
			a.add(&rows[i])
		}
		for i := range rows[cut:] {
			b.add(&rows[cut+i])
		}
		a.merge(b)
		for k, st := range one.stages {
			if got := a.stages[k]; got.iterations != st.iterations || got.thinkN != st.thinkN || got.thinkSum != st.thinkSum {
				t.Fatalf("cut at %d, %v: iterations %d, pauses %d (%v ns), want %d, %d (%v ns)", cut, k, got.iterations, got.thinkN, got.thinkSum, st.iterations, st.thinkN, st.thinkSum)
			}
		}
		if got := stagesJSON(t, a); got != want {
			t.Fatalf("cut at %d: merged statistics differ from one reader's:\n%.400s\nwant\n%.400s", cut, got, want)
		}
	}
}

func readAllRows(t *testing.T, dir string) []captures.Result {
	t.Helper()
	rr, err := captures.NewReader[captures.Result]([]string{dir}, captures.ReaderOptions{Columns: resultColumns})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	var out []captures.Result
	for rr.Next() {
		out = append(out, rr.Batch()...)
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFromIntendedCountsSendLag: latency from the intended send time is
// each success's send lag plus its duration, so a late generator shows in
// it where the duration alone hides it (coordinated omission).
func TestFromIntendedCountsSendLag(t *testing.T) {
	t.Parallel()
	info, rows, _ := simulate(healthy, 3)
	const late = 7 * int64(time.Millisecond)
	var want []int64
	for i := range rows {
		r := &rows[i]
		if r.StartNS > 0 && r.IntendedNS > 0 {
			r.IntendedNS = r.StartNS - late // every request 7 ms late
		}
		if r.Stage == 1 && r.ErrorKind == "" && r.StartNS > 0 {
			want = append(want, late+r.DurationNS)
		}
	}
	s, err := Summarize(info, rows, nil, nil, 0, &WarmUp{})
	if err != nil {
		t.Fatal(err)
	}
	var all *OpStats
	for _, st := range s.Stages {
		if st.Stage == 1 {
			all = st.Operations[AllOps]
		}
	}
	if all == nil || all.FromIntendedMS == nil || len(want) == 0 {
		t.Fatalf("stage 1 has no latency from the intended send time: %+v", all)
	}
	slices.Sort(want)
	for _, c := range []struct{ got, p float64 }{{all.FromIntendedMS.P50, 0.5}, {all.FromIntendedMS.P99, 0.99}} {
		if w := Percentile(want, c.p) / 1e6; c.got != w {
			t.Errorf("p%g from intended: got %v ms, want %v ms", 100*c.p, c.got, w)
		}
	}
	if d := all.FromIntendedMS.P50 - all.LatencyMS.P50; math.Abs(d-7) > 1 {
		t.Errorf("p50 from intended %v ms, duration p50 %v ms: want about 7 ms more", all.FromIntendedMS.P50, all.LatencyMS.P50)
	}
}

// TestHistBinIsTheLogarithm: the table lookup gives the formula's bin for
// every duration tried, those next to each edge included.
func TestHistBinIsTheLogarithm(t *testing.T) {
	t.Parallel()
	check := func(ns int64) {
		if got, want := histBin(ns), histBinLog(ns); got != want {
			t.Fatalf("histBin(%d) = %d, want %d", ns, got, want)
		}
	}
	for _, e := range histEdges {
		for d := int64(-6); d <= 6; d++ {
			check(max(0, e+d))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		check(rng.Int64N(1 << uint(1+rng.IntN(50))))
	}
}

// rewriteResults writes a result file again, changed by change when it is
// not nil, with props (nil: the defaults), keeping its metadata.
func rewriteResults(t *testing.T, path string, props *parquet.WriterProperties, change func(arrow.Table) arrow.Table) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tbl, md := readTable(t, f)
	f.Close()
	if change != nil {
		tbl = change(tbl)
	}
	rows := int64(1 << 20)
	if props != nil {
		rows = max(1, props.MaxRowGroupLength())
	}
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pqarrow.NewFileWriter(tbl.Schema(), w, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range md {
		if !strings.HasPrefix(kv.Key, "ARROW:") {
			fw.AppendKeyValueMetadata(kv.Key, *kv.Value)
		}
	}
	if err := fw.WriteTable(tbl, rows); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
}
