package captures_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/syncbuf"
)

const (
	crashEnv = "LOADTAPE_CAPTURES_CRASH_DIR"
	// crashSlack is what a loaded 2-core machine may add to a flush: the
	// time to encode and write the rows once their deadline passes.
	crashSlack = 1500 * time.Millisecond
)

// TestCrashChild is the child process of TestCrash: it writes exchanges
// with increasing seq, stamped with the time they were written, until it
// is killed, and prints every 100th seq with its time. It does nothing unless started by TestCrash.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child of TestCrash only")
	}
	// Default roll and flush: the kill comes long before the first roll,
	// so everything that survives comes from the write-ahead log.
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	body := []byte(strings.Repeat("x", 200))
	deadline := time.Now().Add(30 * time.Second) // bounded even if nobody kills us
	for i := 0; time.Now().Before(deadline); i++ {
		if err := w.Write(captures.Exchange{ID: fmt.Sprint(i), Seq: int64(i), StartNS: time.Now().UnixNano(), ReqBody: body}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if i%5 == 0 {
			// About 5k rows/s: a writer that falls behind holds rows in
			// memory, and the crash bound is about a writer that keeps
			// up (this one runs under -race on a shared 2-core machine).
			time.Sleep(time.Millisecond)
		}
		if i%100 == 0 {
			// Tell the parent when row i was written, so that it can date
			// the rows it does not find.
			fmt.Printf("%d %d\n", i, time.Now().UnixNano())
		}
	}
	os.Exit(3)
}

// TestCrash kills a writing child with SIGKILL before its first roll and
// checks the write-ahead log's promise: inspecting says what is
// recoverable without changing it, recovery turns it into readable files,
// and only rows of the last flush interval are lost.
func TestCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	var progress syncbuf.Buffer
	cmd.Stdout = &progress
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it log for a few flush intervals, then kill it mid-interval.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(progress.String(), "\n") < 50 { // 5,000 rows
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("child wrote fewer than 5,000 rows in 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2*captures.DefaultFlush + captures.DefaultFlush/3)
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()

	if files, _ := filepath.Glob(filepath.Join(dir, "*"+captures.Ext)); len(files) > 0 {
		t.Fatalf("child rolled %v before the kill; the test is about the log", files)
	}
	wals, err := captures.WALs(dir)
	if err != nil || len(wals) == 0 {
		t.Fatalf("WALs = %v, %v; want the child's logs", wals, err)
	}
	var logged int64
	for _, wi := range wals {
		if wi.Err != nil || wi.Live || wi.Rolled || wi.Kind != captures.KindExchanges {
			t.Errorf("WALs: %+v, want a readable, abandoned exchanges log", wi)
		}
		logged += wi.Rows
	}
	before := dirState(t, dir)
	if _, err := captures.WALs(dir); err != nil || dirState(t, dir) != before {
		t.Errorf("WALs changed the directory: %s, then %s", before, dirState(t, dir))
	}
	rcs, err := captures.Recover(dir)
	if err != nil {
		t.Fatal(err)
	}
	var recovered int64
	for _, rc := range rcs {
		recovered += rc.Rows
	}
	if recovered != logged {
		t.Errorf("recovered %d rows, WALs said %d", recovered, logged)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(left) > 0 {
		t.Errorf("logs left after recovery: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+captures.InProgressExt)); len(left) > 0 {
		t.Errorf(".inprogress files left after recovery: %v", left)
	}

	infos, err := captures.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range infos {
		if fi.Err != nil {
			t.Errorf("after SIGKILL: %v", fi.Err)
		}
	}
	rows := readAll[captures.Exchange](t, []string{dir}, captures.ReaderOptions{Columns: []string{"seq", "start_ns"}})
	if len(rows) == 0 {
		t.Fatal("no rows survived")
	}
	// checkpoints[k] is when row 100k was written.
	var checkpoints []int64
	for line := range strings.Lines(progress.String()) {
		var i, ns int64
		if _, err := fmt.Sscanf(line, "%d %d", &i, &ns); err == nil && i == int64(len(checkpoints))*100 {
			checkpoints = append(checkpoints, ns)
		}
	}
	seen := map[int64]bool{}
	var maxSeq int64
	for _, r := range rows {
		if seen[r.Seq] {
			t.Fatalf("row %d read twice", r.Seq)
		}
		seen[r.Seq] = true
		maxSeq = max(maxSeq, r.Seq)
	}
	// The oldest row lost was written after the checkpoint before it. Rows
	// from parallel files may survive beyond it; a lost row must still be
	// from the last roll interval.
	firstLost := int64(0)
	for seen[firstLost] {
		firstLost++
	}
	k := firstLost / 100
	if k >= int64(len(checkpoints)) {
		t.Fatalf("first lost row %d is after the last checkpoint %d: no progress read from the child", firstLost, len(checkpoints)*100)
	}
	lost := killed.Sub(time.Unix(0, checkpoints[k]))
	t.Logf("%d rows in %d files survived (highest seq %d); the first lost, %d, was written less than %v before the kill",
		len(rows), len(infos), maxSeq, firstLost, lost)
	if lost > captures.DefaultFlush+crashSlack {
		t.Errorf("lost rows written %v before the kill, want at most the flush interval %v (+%v slack)", lost, captures.DefaultFlush, crashSlack)
	}
	for _, fi := range infos {
		if fi.Metadata[captures.MetaRecovered] == "" {
			t.Errorf("%s: no %s metadata", fi.Path, captures.MetaRecovered)
		}
	}
}

// dirState names every file in dir with its size and modification time.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d:%d ", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
