package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// TestMaxRunManyUsers ends a run of thousands of closed users against the
// real sim with --max-run: the command must exit soon after the limit with
// every in-flight request written as cut off, however many users were
// mid-request. LOADTAPE_MAXRUN_USERS sets the user count (default 5000).
//
// The bound is the limit + 2 s: the process's own start is outside the
// limit, and on a busy 2-core machine (the sim on it too) the command's
// last steps wait for a processor; 5,000 users end in about 5.1 s on a
// quiet one. Waiting for every cancelled request to unwind first took a
// 5 s limit to 8–9 s with 15,000 users.
func TestMaxRunManyUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	users := 5000
	if s := os.Getenv("LOADTAPE_MAXRUN_USERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("LOADTAPE_MAXRUN_USERS=%q: want a positive count", s)
		}
		users = n
	}
	// The replay and the sim each hold a connection per user: a machine
	// that cannot open that many files cannot run this test.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Max < uint64(users)+1024 {
		t.Skipf("open files limit %d: %d users need about %d", rl.Max, users, users+1024)
	}
	bin := buildBinary(t)
	caps := writeScaleCapture(t)
	config := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(config, []byte(`gateway:
  models:
    - {name: chat-7b, weights_mib: 2048, load: startup, load_time: 1ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	url := startSimBin(t, bin, config, 1)
	profile := writeProfile(t, `
scenarios:
  chat:
    service: gateway
    stages: [{users: `+strconv.Itoa(users)+`, duration: 1m}]
    think: {constant: 50ms}
    mix: {chat.completions: 1}
`)
	const limit = 5 * time.Second
	out := filepath.Join(t.TempDir(), "run")
	stdout, stderr, code, el := runBin(t, "", bin, "replay", "--captures", caps, "--profile", profile,
		"--target", "gateway="+url, "--out", out, "--seed", "1", "--max-run", limit.String())
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("--max-run %v, %d users: the command took %v (load average %s)", limit, users, el.Round(time.Millisecond), strings.Join(strings.Fields(string(load))[:3], " "))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if el > limit+2*time.Second {
		t.Errorf("--max-run %v with %d users: the command took %v, want at most %v", limit, users, el, limit+2*time.Second)
	}
	if !strings.Contains(stdout, "interrupted (--max-run 5s reached)") {
		t.Errorf("stdout %q", stdout)
	}
	rj := runFile(t, out)
	if rj["ended_by"] != "max_run" || rj["interrupted"] != true {
		t.Errorf("run.json ended_by %v interrupted %v", rj["ended_by"], rj["interrupted"])
	}
	req, _ := rj["requests"].(float64)
	if req < float64(users) {
		t.Errorf("run.json requests %v, want at least one per user (%d)", rj["requests"], users)
	}
	// Every row is in the files once: the requests cut off at the limit
	// as "cut off: --max-run 5s reached", however they were written.
	r, err := captures.NewReader[captures.Result]([]string{out}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, cut := 0, 0
	for r.Next() {
		for _, row := range r.Batch() {
			rows++
			if row.ErrorKind == runspec.ErrCutOff {
				cut++
				if row.Error != "cut off: --max-run 5s reached" {
					t.Fatalf("cut-off row says %q", row.Error)
				}
			}
		}
	}
	if r.Err() != nil || float64(rows) != rj["requests"] || cut == 0 || !strings.Contains(stdout, fmt.Sprintf("(%d cut off)", cut)) {
		t.Errorf("files: %d rows, %d cut off (err %v); run.json: %v requests; stdout %q", rows, cut, r.Err(), rj["requests"], stdout)
	}
	t.Logf("stdout: %s", strings.TrimSpace(stdout))
}
