package captures

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"
)

// TestAlignedBuf: the log's write buffer stays on a block boundary as it
// grows, and keeps what was written.
func TestAlignedBuf(t *testing.T) {
	t.Parallel()
	var a alignedBuf
	want := 0
	for _, n := range []int{3, 5000, 70_000, 1, 300_000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(want + i)
		}
		a.Write(p)
		want += n
		if uintptr(unsafe.Pointer(unsafe.SliceData(a.b)))%logBlock != 0 {
			t.Fatalf("after %d bytes the buffer is not %d-aligned", want, logBlock)
		}
	}
	if len(a.b) != want {
		t.Fatalf("%d bytes, want %d", len(a.b), want)
	}
	for i, c := range a.b {
		if c != byte(i) {
			t.Fatalf("byte %d is %d, want %d: bytes moved while the buffer grew", i, c, byte(i))
		}
	}
}

// TestDirectLog: where the file system takes direct I/O, the log is
// written in whole blocks (padding frames between the batches), and it
// still gives back every row, live and after a crash-like stop.
func TestDirectLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	probe, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	ok := directIO(probe)
	probe.Close()
	os.Remove(probe.Name())
	if !ok {
		t.Skip("this file system does not take O_DIRECT")
	}
	w, err := NewWriter[Exchange](WriterOptions{Dir: dir, Roll: time.Hour, Flush: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for k := range 3 {
		rows := make([]Exchange, 100+k*37)
		for i := range rows {
			rows[i] = Exchange{ID: "x", ReqBody: make([]byte, 100+i)}
		}
		w.Write(rows...)
		deadline := time.Now().Add(20 * time.Second)
		for w.Stats().Logged < int64(100*(k+1)+37*k*(k+1)/2) {
			if time.Now().After(deadline) {
				t.Fatal("timed out waiting for the batch to be logged")
			}
			time.Sleep(5 * time.Millisecond)
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*"+WALExt))
		if len(logs) != 1 {
			t.Fatalf("logs %v, want one", logs)
		}
		st, err := os.Stat(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		if st.Size()%logBlock != 0 {
			t.Errorf("after batch %d the log is %d bytes, not whole %d-byte blocks", k, st.Size(), logBlock)
		}
	}
	// A copy of the live log is what a crash would leave: every row in it.
	logs, _ := filepath.Glob(filepath.Join(dir, "*"+WALExt))
	b, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, filepath.Base(logs[0])), b, 0o644); err != nil {
		t.Fatal(err)
	}
	infos, err := WALs(d)
	if err != nil || len(infos) != 1 || infos[0].Rows != 411 || infos[0].TornBytes != 0 {
		t.Fatalf("WALs of the copied log = %+v, %v; want 411 rows, no torn bytes", infos, err)
	}
}

// TestDirectLogFallsBack: a direct write the device refuses (here: from a
// buffer off its alignment) is made again through the page cache, and
// the log stays whole.
func TestDirectLogFallsBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "exchanges-x-000001"+WALExt)
	l, err := createWAL(path, exchangeCodec.schema, writerAlloc, walHeader{Kind: KindExchanges, Schema: SchemaVersion})
	if err != nil {
		t.Fatal(err)
	}
	if !l.direct {
		l.close(true)
		t.Skip("this file system does not take O_DIRECT")
	}
	raw := make([]byte, 1<<20)
	l.frame.b = raw[1:1] // off the block boundary
	rec := exchangeCodec.record(writerAlloc, make([]Exchange, 10))
	err = l.append(rec, nil)
	rec.Release()
	if err != nil {
		t.Fatalf("append after a refused direct write: %v", err)
	}
	// The write is asynchronous: sync waits for it.
	if err := l.sync(); err != nil {
		t.Fatal(err)
	}
	if l.direct {
		t.Error("the log still claims direct I/O")
	}
	l.f.Close() // keeps the file, as a crash would
	infos, err := WALs(dir)
	if err != nil || len(infos) != 1 || infos[0].Rows != 10 || infos[0].TornBytes != 0 {
		t.Fatalf("WALs = %+v, %v; want 10 rows, no torn bytes", infos, err)
	}
}
