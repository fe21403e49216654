package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/fullfs"
	"github.com/loadtape/loadtape/internal/syncbuf"
)

// TestDiskFull records onto a small tmpfs, fills it, and frees it again:
// every request is served throughout, the live line, capture.json and the
// files' metadata add up at every step, and recording resumes once space
// returns.
func TestDiskFull(t *testing.T) {
	dir := fullfs.Mount(t, "8m")
	body := strings.Repeat("x", 2048)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer up.Close()
	var logBuf syncbuf.Buffer
	r, err := New(Options{Routes: []Route{{Name: "svc", Listen: "127.0.0.1:0", Upstream: mustURL(t, up.URL)}},
		Out: dir, Roll: 300 * time.Millisecond, Flush: 40 * time.Millisecond, LiveEvery: 50 * time.Millisecond, Log: &logBuf})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.Addrs()["svc"]
	c := client()
	send := func(n int) {
		t.Helper()
		for range n {
			resp, err := c.Get(base + "/x")
			if err != nil {
				t.Fatal(err)
			}
			if b := readAll(t, resp); resp.StatusCode != 200 || len(b) != len(body) {
				t.Fatalf("served %d with %d bytes, want 200 with %d", resp.StatusCode, len(b), len(body))
			}
		}
	}
	adds := func(what string, tot Totals) {
		t.Helper()
		if tot.Exchanges != tot.Written+tot.Pending+tot.Dropped+tot.Failed {
			t.Errorf("%s: %+v do not add up", what, tot)
		}
	}
	settle := func(want int64) Totals {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			tot := r.Totals()
			adds("Totals", tot)
			if tot.Exchanges == want && tot.Pending == 0 {
				return tot
			}
			if time.Now().After(deadline) {
				t.Fatalf("totals %+v never settled at %d exchanges", tot, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	summary := func() Totals {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "capture.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s Totals
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("capture.json is not whole: %v\n%s", err, b)
		}
		adds("capture.json", s)
		return s
	}

	send(100)
	if tot := settle(100); tot.Written != 100 {
		t.Fatalf("before the disk filled: %+v", tot)
	}
	filler := fullfs.Fill(t, dir)
	for range 10 {
		send(10)
		summary() // never a torn file, whatever the disk says
	}
	full := settle(200)
	if full.Failed == 0 {
		t.Fatalf("on a full disk: %+v, want failed rows", full)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	send(100)
	resumed := settle(300)
	if resumed.Failed != full.Failed || resumed.Written != 300-full.Failed {
		t.Errorf("after space returned: %+v; on the full disk: %+v", resumed, full)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logBuf.String(), "succeed again") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tot, err := r.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d rows lost", full.Failed)) {
		t.Errorf("Shutdown: %v, want the count of rows lost", err)
	}
	if tot != resumed {
		t.Errorf("final totals %+v, want %+v", tot, resumed)
	}
	if s := summary(); s != tot {
		t.Errorf("capture.json %+v, want %+v", s, tot)
	}

	// The live lines: every one adds up, and they show the failures.
	log := logBuf.String()
	lines, sawFailed := 0, false
	for line := range strings.Lines(log) {
		var lt Totals
		var rate float64
		var inflight int64
		if _, err := fmt.Sscanf(line, "record: %d exchanges, %f/s, %d written, %d pending, %d dropped, %d failed, %d in flight",
			&lt.Exchanges, &rate, &lt.Written, &lt.Pending, &lt.Dropped, &lt.Failed, &inflight); err != nil {
			continue
		}
		lines++
		adds("live line "+strings.TrimSpace(line), lt)
		sawFailed = sawFailed || lt.Failed > 0
	}
	if lines == 0 || !sawFailed {
		t.Errorf("%d live lines, failures shown: %v\n%s", lines, sawFailed, log)
	}
	for _, want := range []string{"capture writes are failing", "no space left on device", "capture writes succeed again"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not say %q:\n%s", want, log)
		}
	}

	// The files: every row Written is readable, once, and the footer of
	// the last file holds the final counts.
	infos, err := captures.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows, lastWritten int64
	for _, fi := range infos {
		if fi.Err != nil || fi.Incomplete {
			t.Errorf("after Shutdown: %+v", fi)
			continue
		}
		rows += fi.Rows
		m := func(k string) int64 { n, _ := strconv.ParseInt(fi.Metadata["loadtape.record."+k], 10, 64); return n }
		adds(filepath.Base(fi.Path)+" metadata", Totals{Exchanges: m("exchanges"), Written: m("written"), Pending: m("pending"), Dropped: m("dropped"), Failed: m("failed")})
		lastWritten = max(lastWritten, m("written"))
	}
	if rows != tot.Written || lastWritten != tot.Written {
		t.Errorf("%d rows readable, the last footer says %d written; totals %+v", rows, lastWritten, tot)
	}
	for _, ext := range []string{captures.WALExt, captures.InProgressExt} {
		if left, _ := filepath.Glob(filepath.Join(dir, "*"+ext)); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
	t.Logf("on the full disk %+v; final %+v", full, tot)
}
