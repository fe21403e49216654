package captures_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/fullfs"
)

// waitFor polls cond for up to 20 s (a busy machine), failing the test
// with what when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exchanges(from, n int, body int) []captures.Exchange {
	rows := make([]captures.Exchange, n)
	b := []byte(strings.Repeat("b", body))
	for i := range rows {
		rows[i] = captures.Exchange{ID: fmt.Sprint(from + i), Seq: int64(from + i), StartNS: time.Now().UnixNano(), ReqBody: b}
	}
	return rows
}

// TestTornWAL: a log cut mid-frame or damaged mid-file gives back every
// whole record before the damage, says how many bytes it dropped, and the
// recovered file says so in its metadata.
func TestTornWAL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: time.Hour, Flush: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Three batches, each logged (fsynced) before the next is written,
	// so each is one frame; ends[k] is the log's size after batch k.
	var ends []int64
	var walFile string
	for k := range 3 {
		if err := w.Write(exchanges(k*100, 100, 300)...); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the batch to be logged", func() bool { return w.Stats().Logged == int64(k+1)*100 })
		wals, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		if len(wals) != 1 {
			t.Fatalf("logs %v, want one", wals)
		}
		walFile = wals[0]
		st, err := os.Stat(walFile)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, st.Size())
	}
	whole, err := os.ReadFile(walFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(left) > 0 {
		t.Errorf("Close left logs %v", left)
	}
	cases := []struct {
		name     string
		damage   func([]byte) []byte
		wantRows int
		wantTorn int64
	}{
		{"whole", func(b []byte) []byte { return b }, 300, 0},
		// Half-way through the last batch's write is in its Arrow frame,
		// whether or not a padding frame (direct I/O) ends the write.
		{"cut in the last frame's body", func(b []byte) []byte { return b[:(ends[1]+ends[2])/2] }, 200, (ends[2] - ends[1]) / 2},
		{"cut in the last frame's head", func(b []byte) []byte { return b[:ends[1]+3] }, 200, 3},
		{"a flipped byte in the second frame", func(b []byte) []byte {
			b = slices.Clone(b)
			b[ends[0]+40] ^= 0x20
			return b
		}, 100, ends[2] - ends[0]},
		{"cut in the magic", func(b []byte) []byte { return b[:5] }, 0, 0},
		{"cut in the header frame", func(b []byte) []byte { return b[:8+8+10] }, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			p := filepath.Join(d, filepath.Base(walFile))
			if err := os.WriteFile(p, tc.damage(whole), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.wantRows > 0 {
				wals, err := captures.WALs(d)
				if err != nil || len(wals) != 1 || wals[0].Rows != int64(tc.wantRows) || wals[0].TornBytes != tc.wantTorn || wals[0].Live {
					t.Fatalf("WALs = %+v, %v; want %d rows, %d torn bytes", wals, err, tc.wantRows, tc.wantTorn)
				}
				// Only a log is there: what it can recover is the answer,
				// not an empty directory's bad-input error.
				inv, err := captures.Inspect([]string{d})
				if err != nil {
					t.Errorf("Inspect of a directory holding only a log: %v", err)
				}
				var text strings.Builder
				inv.WriteText(&text)
				if len(inv.Recoverable) != 1 || inv.Recoverable[0].Rows != int64(tc.wantRows) || !strings.Contains(text.String(), fmt.Sprintf("%d exchanges rows recoverable", tc.wantRows)) {
					t.Errorf("Inspect: %+v\n%s", inv.Recoverable, text.String())
				}
			}
			rcs, err := captures.Recover(d)
			if err != nil {
				t.Fatal(err)
			}
			if len(rcs) != 1 || rcs[0].Rows != int64(tc.wantRows) || (tc.wantRows > 0 && rcs[0].TornBytes != tc.wantTorn) {
				t.Fatalf("Recover = %+v, want %d rows, %d torn bytes", rcs, tc.wantRows, tc.wantTorn)
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("log still there after recovery: %v", err)
			}
			if tc.wantRows == 0 {
				if files, _ := filepath.Glob(filepath.Join(d, "*")); len(files) > 0 {
					t.Errorf("files %v, want none", files)
				}
				return
			}
			rows := readAll[captures.Exchange](t, []string{d}, captures.ReaderOptions{Columns: []string{"seq"}})
			seqs := make([]int64, len(rows))
			for i, r := range rows {
				seqs[i] = r.Seq
			}
			slices.Sort(seqs)
			for i, s := range seqs {
				if s != int64(i) {
					t.Fatalf("recovered seqs %v..., want 0..%d", seqs[:min(len(seqs), 5)], tc.wantRows-1)
				}
			}
			if len(seqs) != tc.wantRows {
				t.Fatalf("read %d rows, want %d", len(seqs), tc.wantRows)
			}
			infos, _ := captures.List(d)
			torn := infos[0].Metadata[captures.MetaRecoveredTorn]
			if want := fmt.Sprint(tc.wantTorn); tc.wantTorn > 0 && torn != want || tc.wantTorn == 0 && torn != "" {
				t.Errorf("%s = %q, want %d", captures.MetaRecoveredTorn, torn, tc.wantTorn)
			}
		})
	}
}

// TestLiveWALLeftAlone: a writer starting in a directory where another
// writer is running recovers nothing of the running writer's log, and
// WALs says it is live.
func TestLiveWALLeftAlone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: time.Hour, Flush: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(exchanges(0, 50, 10)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rows to be logged", func() bool { return a.Stats().Logged == 50 })
	b, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if rcs, err := b.Recovered(); len(rcs) > 0 || err != nil {
		t.Errorf("second writer recovered %+v, %v from a running writer's log", rcs, err)
	}
	wals, err := captures.WALs(dir)
	if err != nil || len(wals) != 1 || !wals[0].Live || wals[0].Rows != 50 {
		t.Errorf("WALs = %+v, %v; want one live log of 50 rows", wals, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if rows := readAll[captures.Exchange](t, []string{dir}, captures.ReaderOptions{Columns: []string{"seq"}}); len(rows) != 50 {
		t.Errorf("read %d rows, want 50", len(rows))
	}
}

// TestDiskFull: writes into a full file system fail without stopping the
// writer, the counts add up at every step, and once space returns writing
// resumes and the rows that reached the log before the disk filled are
// made readable.
func TestDiskFull(t *testing.T) {
	dir := fullfs.Mount(t, "4m")
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: 300 * time.Millisecond, Flush: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	settled := func(want int64) func() bool {
		return func() bool {
			st := w.Stats()
			if st.Rows+st.Logged+st.Pending+st.Failed != want {
				t.Fatalf("stats %+v do not add up to %d rows written", st, want)
			}
			return st.Pending == 0
		}
	}
	for i := range 5 {
		w.Write(exchanges(i*100, 100, 1000)...)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the first rows on disk", settled(500))
	if st := w.Stats(); st.Failed != 0 {
		t.Fatalf("before the disk filled: %+v", st)
	}
	filler := fullfs.Fill(t, dir)
	for i := 5; i < 10; i++ {
		if err := w.Write(exchanges(i*100, 100, 1000)...); err != nil {
			t.Fatalf("Write on a full disk: %v, want no error (the rows are counted as failed)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the rows on the full disk to settle", settled(1000))
	full := w.Stats()
	if full.Failed == 0 || full.Errors == 0 || !strings.Contains(full.LastError, "no space") {
		t.Fatalf("on a full disk: %+v, want failed rows and the error", full)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 15; i++ {
		w.Write(exchanges(i*100, 100, 1000)...)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the rows after space returned to settle", settled(1500))
	if st := w.Stats(); st.Failed != full.Failed {
		t.Errorf("rows failed after space returned: %+v, before %+v", st, full)
	}
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d rows lost", full.Failed)) {
		t.Errorf("Close = %v, want the count of rows lost", err)
	}
	st := w.Stats()
	t.Logf("on the full disk: %+v; after Close: %+v", full, st)
	if st.Logged != 0 || st.Pending != 0 || st.Rows+st.Failed != 1500 {
		t.Errorf("after Close: %+v, want every row readable or failed", st)
	}
	rows := readAll[captures.Exchange](t, []string{dir}, captures.ReaderOptions{Columns: []string{"seq"}})
	if int64(len(rows)) != st.Rows {
		t.Errorf("read %d rows, Stats says %d", len(rows), st.Rows)
	}
	seen := map[int64]bool{}
	for _, r := range rows {
		if seen[r.Seq] {
			t.Fatalf("row %d read twice", r.Seq)
		}
		seen[r.Seq] = true
	}
	for s := int64(0); s < 500; s++ {
		if !seen[s] {
			t.Fatalf("row %d, on disk before the disk filled, is missing", s)
		}
	}
	for s := int64(1000); s < 1500; s++ {
		if !seen[s] {
			t.Fatalf("row %d, written after space returned, is missing", s)
		}
	}
	for _, ext := range []string{captures.WALExt, captures.InProgressExt} {
		if left, _ := filepath.Glob(filepath.Join(dir, "*"+ext)); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}

// TestCompactOnClose: the small files of frequent rolls become one file on
// Close, holding every row, naming the files it replaces.
func TestCompactOnClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 5 {
		w.Write(exchanges(k*50, 50, 100)...)
		n := int64(k + 1)
		waitFor(t, "a roll", func() bool { return w.Stats().Files >= n })
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	infos, err := captures.List(dir)
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %+v, %v; want one merged file", infos, err)
	}
	if st := w.Stats(); st.Files != 1 || st.Rows != 250 || infos[0].Rows != 250 {
		t.Errorf("Stats %+v, file %+v; want one file of 250 rows", st, infos[0])
	}
	if from := strings.Fields(infos[0].Metadata[captures.MetaCompactedFrom]); len(from) < 5 {
		t.Errorf("%s = %v, want the 5 or more files it replaced", captures.MetaCompactedFrom, from)
	}
	rows := readAll[captures.Exchange](t, []string{dir}, captures.ReaderOptions{Columns: []string{"seq"}})
	for i, r := range rows {
		if r.Seq != int64(i) {
			t.Fatalf("row %d has seq %d: the merge changed the order", i, r.Seq)
		}
	}
	if len(rows) != 250 {
		t.Fatalf("read %d rows, want 250", len(rows))
	}
}

// TestInterruptedCompaction: a crash after the merged file was renamed
// leaves its sources to delete; before, the half-written merge is deleted
// and the sources stay.
func TestInterruptedCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: 20 * time.Millisecond, CompactBelow: -1})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		w.Write(exchanges(k*10, 10, 10)...)
		n := int64(k + 1)
		waitFor(t, "a roll", func() bool { return w.Stats().Files >= n })
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src, _ := filepath.Glob(filepath.Join(dir, "*"+captures.Ext))
	if len(src) != 3 {
		t.Fatalf("files %v, want 3", src)
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Renamed, sources not yet deleted: merged "m" stands for src[1] and src[2].
	m := filepath.Join(dir, "exchanges-merged-000009")
	copyFile(src[1], m+captures.Ext)
	os.WriteFile(m+captures.CompactExt, []byte(filepath.Base(src[1])+"\n"+filepath.Base(src[2])+"\n"), 0o644)
	// Not yet renamed: "n" would replace src[0].
	n := filepath.Join(dir, "exchanges-merged-000010")
	copyFile(src[0], n+captures.InProgressExt)
	os.WriteFile(n+captures.CompactExt, []byte(filepath.Base(src[0])+"\n"), 0o644)
	if _, err := captures.Recover(dir); err != nil {
		t.Fatal(err)
	}
	got, _ := filepath.Glob(filepath.Join(dir, "*"))
	want := []string{src[0], m + captures.Ext}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after Recover: %v, want %v", got, want)
	}
}

// TestNoWAL: with Flush < 0 no log is written and rows reach disk at rolls
// only, counted Pending until then.
func TestNoWAL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: time.Hour, Flush: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(exchanges(0, 100, 10)...)
	time.Sleep(50 * time.Millisecond)
	if wals, _ := filepath.Glob(filepath.Join(dir, "*"+captures.WALExt)); len(wals) > 0 {
		t.Errorf("logs %v with Flush < 0", wals)
	}
	if st := w.Stats(); st.Pending != 100 || st.Logged != 0 {
		t.Errorf("before the roll: %+v, want 100 pending", st)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Rows != 100 || st.Pending != 0 {
		t.Errorf("after Close: %+v, want 100 rows", st)
	}
}

// TestForeignWAL: a .wal file that is not a loadtape log is left alone,
// with an error naming it.
func TestForeignWAL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "notes.wal")
	if err := os.WriteFile(p, []byte("some other program's journal, long enough\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := captures.Recover(dir); err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, captures.ErrNotWAL) {
		t.Errorf("Recover = %v, want ErrNotWAL naming %s", err, p)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the foreign file is gone: %v", err)
	}
	if wals, _ := captures.WALs(dir); len(wals) != 1 || wals[0].Err == nil {
		t.Errorf("WALs = %+v, want the file with its error", wals)
	}
}
