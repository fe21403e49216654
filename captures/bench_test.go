package captures_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/captures/internal/fake"
)

// BenchmarkWrite writes chat exchanges with 1 KiB request and response
// bodies from one goroutine, a few rows per call as the proxy does.
func BenchmarkWrite(b *testing.B) {
	g := fake.New(1, time.Now().UnixNano())
	rows := make([]captures.Exchange, 4096)
	for i := range rows {
		rows[i] = g.Chat(1024, 1024)
	}
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2048)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		if err := w.Write(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
	// On a shared machine wall-clock rates swing with the neighbours'
	// load; CPU time per exchange does not, and 1e9/cpu-ns/op is the rate
	// one free core sustains.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkWriteRecorder writes as the recording proxy does: chat
// exchanges with 1 KiB request and response bodies and ten headers each
// way, in batches of 512 from one goroutine, with the recorder's writer
// options (its prefix, footer metadata on every roll and the write-ahead
// log at the default flush interval), Close included. bench/captures.sh
// runs it.
func BenchmarkWriteRecorder(b *testing.B) {
	rows := chatRows()
	const batch = 512 // proxy/queue.go's batchMax
	var rolls int
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{
		Dir:    b.TempDir(),
		Prefix: "exchanges",
		RollMetadata: func(st captures.WriterStats) map[string]string {
			rolls++
			return map[string]string{"loadtape.record.written": fmt.Sprint(st.Rows + st.Logged)}
		},
		Metadata: map[string]string{"loadtape.record.routes": "gateway=http://127.0.0.1:1"},
		// Close merges files rolled below 16 MiB: once per recording, and
		// never at a rate that matters; b.N rows of the ramp-up runs would
		// be timed writing twice.
		CompactBelow: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2048)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += batch {
		at := i % len(rows)
		n := min(batch, b.N-i, len(rows)-at)
		if err := w.Write(rows[at : at+n]...); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := w.Stats()
	if st.Rows != int64(b.N) || rolls == 0 {
		b.Fatalf("%d rows in %d rolled files, want %d", st.Rows, rolls, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(st.Bytes)/float64(b.N), "file-B/op")
}

var (
	chatOnce sync.Once
	chatSet  []captures.Exchange
)

// chatRows is 32,768 chat exchanges with 1 KiB bodies each way, made once
// per process so that making them stays out of every measurement. That
// many distinct request ids and counters overflow the header values'
// dictionary (1 MiB) as real traffic does; fewer would repeat within it.
func chatRows() []captures.Exchange {
	chatOnce.Do(func() {
		g := fake.New(1, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
		chatSet = make([]captures.Exchange, 32768)
		for i := range chatSet {
			chatSet[i] = g.Chat(1024, 1024)
		}
	})
	return chatSet
}

// cpuTime is the process's user+system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkWriteParallel is BenchmarkWrite from GOMAXPROCS goroutines, as
// a proxy with many connections writes.
func BenchmarkWriteParallel(b *testing.B) {
	g := fake.New(1, time.Now().UnixNano())
	rows := make([]captures.Exchange, 4096)
	for i := range rows {
		rows[i] = g.Chat(1024, 1024)
	}
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2048)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := w.Write(rows[i%len(rows)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}

var (
	resultsOnce sync.Once
	resultsDir  string
)

const benchResults = 1 << 21

// resultFiles writes 2 Mi result rows once per process.
func resultFiles(b *testing.B) string {
	resultsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "captures-bench")
		if err != nil {
			b.Fatal(err)
		}
		g := fake.New(2, time.Now().UnixNano())
		w, err := captures.NewWriter[captures.Result](captures.WriterOptions{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]captures.Result, 4096)
		for n := 0; n < benchResults; n += len(batch) {
			for i := range batch {
				batch[i] = g.Result(int32(1+n/(benchResults/4)), 50)
			}
			if err := w.Write(batch...); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		resultsDir = dir
	})
	return resultsDir
}

var readCols = []string{"start_ns", "duration_ns", "status"}

// BenchmarkReadRecord reads 3 numeric columns of result rows through
// Record, the Arrow fast path analyze uses.
func BenchmarkReadRecord(b *testing.B) {
	dir := resultFiles(b)
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*benchResults), "cpu-ns/row") }()
	rows := 0
	for range b.N {
		r, err := captures.NewReader[captures.Result]([]string{dir}, captures.ReaderOptions{Columns: readCols})
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		for r.Next() {
			rec := r.Record()
			sc := rec.Schema()
			start := rec.Column(sc.FieldIndices("start_ns")[0]).(*array.Int64).Int64Values()
			dur := rec.Column(sc.FieldIndices("duration_ns")[0]).(*array.Int64).Int64Values()
			st := rec.Column(sc.FieldIndices("status")[0]).(*array.Int32).Int32Values()
			for i := range start {
				sum += start[i] + dur[i] + int64(st[i])
			}
			rows += len(start)
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		r.Close()
		_ = sum
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkReadBatch reads the same 3 columns into Result structs.
func BenchmarkReadBatch(b *testing.B) {
	dir := resultFiles(b)
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*benchResults), "cpu-ns/row") }()
	rows := 0
	for range b.N {
		r, err := captures.NewReader[captures.Result]([]string{dir}, captures.ReaderOptions{Columns: readCols})
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		for r.Next() {
			for _, x := range r.Batch() {
				sum += x.StartNS + x.DurationNS + int64(x.Status)
			}
			rows += len(r.Batch())
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		r.Close()
		_ = sum
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkReadAllColumns reads every column of chat exchanges into structs.
func BenchmarkReadAllColumns(b *testing.B) {
	dir := b.TempDir()
	g := fake.New(3, time.Now().UnixNano())
	rows := make([]captures.Exchange, 50_000)
	for i := range rows {
		rows[i] = g.Chat(1024, 2048)
	}
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Write(rows...); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	n := 0
	for range b.N {
		r, err := captures.NewReader[captures.Exchange]([]string{dir}, captures.ReaderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for r.Next() {
			n += len(r.Batch())
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "exchanges/s")
}

// BenchmarkSizeVsHAR writes 100,000 typical chat exchanges (1 KiB
// request, 2 KiB response) as a capture and as HAR 1.2 JSON and reports the
// capture's share of the HAR bytes.
func BenchmarkSizeVsHAR(b *testing.B) {
	for range b.N {
		ratio, pq, har := sizeVsHAR(b, 100_000)
		b.ReportMetric(ratio*100, "%_of_HAR")
		b.ReportMetric(float64(pq), "capture_bytes")
		b.ReportMetric(float64(har), "HAR_bytes")
	}
}

// TestSizeVsHAR holds the size target on fewer exchanges than the benchmark
// (the page-level compression that wins reaches its full effect within a
// few thousand rows).
func TestSizeVsHAR(t *testing.T) {
	t.Parallel()
	n := 10_000
	if raceEnabled {
		n = 3000
	}
	ratio, pq, har := sizeVsHAR(t, n)
	t.Logf("%d exchanges: capture %d bytes, HAR %d bytes, %.1f %%", n, pq, har, ratio*100)
	if ratio > 0.25 {
		t.Errorf("capture is %.1f %% of HAR JSON, want at most 25 %%", ratio*100)
	}
}

func sizeVsHAR(tb testing.TB, n int) (ratio float64, pqBytes, harBytes int64) {
	tb.Helper()
	dir := tb.TempDir()
	g := fake.New(4, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	cw := &countWriter{}
	enc := json.NewEncoder(cw)
	io.WriteString(cw, `{"log":{"version":"1.2","creator":{"name":"loadtape","version":"bench"},"entries":[`)
	for i := range n {
		e := g.Chat(1024, 2048)
		if err := w.Write(e); err != nil {
			tb.Fatal(err)
		}
		if i > 0 {
			io.WriteString(cw, ",")
		}
		if err := enc.Encode(harEntry(e)); err != nil {
			tb.Fatal(err)
		}
	}
	io.WriteString(cw, "]}}")
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	pqBytes = w.Stats().Bytes
	if pqBytes == 0 {
		tb.Fatal("no capture bytes written")
	}
	return float64(pqBytes) / float64(cw.n), pqBytes, cw.n
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type harNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// harEntry is e as a HAR 1.2 entry, with what browsers and proxies such as
// mitmproxy write: headers, query, post data, content, timings.
func harEntry(e captures.Exchange) any {
	hs := func(in []captures.Header) []harNV {
		out := make([]harNV, len(in))
		for i, h := range in {
			out[i] = harNV{h.Name, h.Value}
		}
		return out
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	url := e.Scheme + "://" + e.Host + e.Path
	if e.Query != "" {
		url += "?" + e.Query
	}
	return map[string]any{
		"startedDateTime": time.Unix(0, e.StartNS).UTC().Format(time.RFC3339Nano),
		"time":            ms(e.DurationNS),
		"request": map[string]any{
			"method": e.Method, "url": url, "httpVersion": "HTTP/1.1", "cookies": []any{},
			"headers": hs(e.ReqHeaders), "queryString": []any{}, "headersSize": -1, "bodySize": e.ReqSize,
			"postData": map[string]any{"mimeType": "application/json", "text": string(e.ReqBody)},
		},
		"response": map[string]any{
			"status": e.Status, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": []any{},
			"headers": hs(e.RespHeaders), "redirectURL": "", "headersSize": -1, "bodySize": e.RespSize,
			"content": map[string]any{"size": e.RespSize, "mimeType": "application/json", "text": string(e.RespBody)},
		},
		"cache":   map[string]any{},
		"timings": map[string]any{"send": 0, "wait": ms(e.TTFBNS), "receive": ms(e.DurationNS - e.TTFBNS)},
	}
}

// benchmarks and tests share this check that the HAR writer produced what
// it claims, so a broken encoder cannot flatter the ratio.
func TestHAREntryIsHAR(t *testing.T) {
	t.Parallel()
	e := fake.New(5, 0).Chat(1024, 2048)
	b, err := json.Marshal(harEntry(e))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Request struct {
			PostData struct{ Text string } `json:"postData"`
		} `json:"request"`
		Response struct {
			Content struct{ Text string } `json:"content"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Request.PostData.Text != string(e.ReqBody) || back.Response.Content.Text != string(e.RespBody) {
		t.Fatal("HAR entry lost the bodies")
	}
	if len(e.ReqBody) < 900 || len(e.RespBody) < 1800 || !strings.Contains(string(e.ReqBody), `"messages"`) {
		t.Fatalf("chat exchange bodies are %d and %d bytes, want about 1 KiB and 2 KiB", len(e.ReqBody), len(e.RespBody))
	}
}
