package captures_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

const (
	crashEnv  = "LOADTAPE_CAPTURES_CRASH_DIR"
	crashRoll = 300 * time.Millisecond
	// crashSlack is what a loaded 2-core machine may add to a roll: the
	// time to encode, fsync and rename the file once its deadline passes.
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
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Roll: crashRoll})
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

// TestCrash kills a writing child with SIGKILL and checks the bound of
// DESIGN.md: every rolled file reads back whole, and only rows of the last
// roll interval are lost.
func TestCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	var progress bytes.Buffer
	cmd.Stdout = &progress
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it roll a few files, then kill it mid-interval.
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*"+captures.Ext))
		if len(files) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child rolled %d files in 20 s, want 3", len(files))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(crashRoll / 2)
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()

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
	if lost > crashRoll+crashSlack {
		t.Errorf("lost rows written %v before the kill, want at most the roll interval %v (+%v slack)", lost, crashRoll, crashSlack)
	}
}
