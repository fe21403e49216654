package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/loopback"
)

// TestRecordSIGKILLRecovers kills `loadtape record`, at its default
// settings, with SIGKILL while 50 clients send through it, long before its
// first roll. inspect then says what is recoverable without touching it,
// and the next record into the same directory recovers every row but
// those of the last second.
func TestRecordSIGKILLRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin := buildBinary(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	defer up.Close()
	out := filepath.Join(t.TempDir(), "captures")
	addr := loopback.FreeAddr(t)
	base := "http://" + addr
	// The readiness probe goes through the proxy: it is a row too.
	rec, recOut := start(t, bin, base+"/health", "record", "--out", out, "--route", "gateway@"+addr+"="+up.URL)

	const clients = 50
	var served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	for range clients {
		wg.Go(func() {
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for i := 0; i < 1_000_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
				if err != nil {
					return // the proxy is gone
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == http.StatusOK {
					served.Add(1)
				}
			}
		})
	}
	time.Sleep(3 * time.Second)
	// Count what was served up to the kill: responses finished after it
	// cannot have been recorded.
	servedAtKill := served.Load() + 1 // the readiness probe
	killed := time.Now()
	if err := rec.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	rec.Wait()
	close(stop)
	wg.Wait()
	rate := float64(servedAtKill) / killed.Sub(began).Seconds()

	// inspect: the logs and how many rows they hold, the directory unchanged.
	before := dirNames(t, out)
	cmd := exec.Command(bin, "inspect", "--json", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // exits non-zero: the directory holds an unreadable .inprogress file
	var inv struct {
		Recoverable []struct {
			Path string `json:"path"`
			Rows int64  `json:"rows"`
		} `json:"recoverable"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &inv); err != nil {
		t.Fatalf("inspect --json: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var recoverable int64
	for _, r := range inv.Recoverable {
		recoverable += r.Rows
	}
	if after := dirNames(t, out); after != before {
		t.Errorf("inspect changed the directory: %s, then %s", before, after)
	}

	// The next record recovers them.
	addr2 := loopback.FreeAddr(t)
	rec2, rec2Out := start(t, bin, "http://"+addr2+"/health", "record", "--out", out, "--route", "gateway@"+addr2+"="+up.URL)
	interrupt(t, rec2, rec2Out)
	infos, err := captures.List(out)
	if err != nil {
		t.Fatal(err)
	}
	var recovered, rows int64
	for _, fi := range infos {
		if fi.Err != nil || fi.Incomplete {
			t.Errorf("after recovery: %+v", fi)
		}
		rows += fi.Rows
		if fi.Metadata[captures.MetaRecovered] != "" {
			recovered += fi.Rows
		}
	}
	t.Logf("served %d in %v (%.0f/s) before SIGKILL; inspect said %d recoverable; recovered %d; %d rows in all\nfirst record:\n%s\nsecond record:\n%s",
		servedAtKill, killed.Sub(began).Round(time.Millisecond), rate, recoverable, recovered, rows, recOut.String(), rec2Out.String())
	if recoverable != recovered {
		t.Errorf("inspect said %d rows recoverable, %d were recovered", recoverable, recovered)
	}
	if float64(recovered) < float64(servedAtKill)-rate {
		t.Errorf("recovered %d rows of %d served: lost more than one second of traffic (%.0f rows)", recovered, servedAtKill, rate)
	}
	if recovered > servedAtKill+clients { // a response may be recorded a moment before its client counts it
		t.Errorf("recovered %d rows, more than the %d served", recovered, servedAtKill)
	}
	var sum struct {
		Exchanges int64 `json:"exchanges"`
		Recovered int64 `json:"recovered"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "capture.json")); err != nil || json.Unmarshal(b, &sum) != nil || sum.Recovered != recovered || sum.Exchanges+sum.Recovered != rows {
		t.Errorf("capture.json of the second record: %+v (%v), want %d recovered and %d rows in all", sum, err, recovered, rows)
	}
	if !strings.Contains(rec2Out.String(), "recovered") {
		t.Errorf("the second record did not say it recovered rows:\n%s", rec2Out.String())
	}
}

// dirNames lists the names and sizes of the files in dir.
func dirNames(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range m {
		b.WriteString(filepath.Base(p) + " ")
	}
	return b.String()
}
