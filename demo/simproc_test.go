package demo

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/syncbuf"
)

// BuildLoadtape compiles cmd/loadtape into a temporary directory, without
// the race detector (the demo measures latency and send lag). Exported for
// the end-to-end test in package demo_test.
func BuildLoadtape(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	bin := filepath.Join(t.TempDir(), "loadtape")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/loadtape")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The sim as a child process: its URLs answer, stop ends it, and the
// ports close with it.
func TestSimProcessStartsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds loadtape: skipped in -short")
	}
	bin := BuildLoadtape(t)
	var log syncbuf.Buffer
	p, urls, err := startSimProcess(context.Background(), []string{bin, "sim"}, true, 1, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	for _, name := range []string{"gateway", "rag", "mcp"} {
		resp, err := http.Get(strings.TrimRight(urls[name], "/") + "/health")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /health: %s", name, resp.Status)
		}
	}
	if err := p.stop(); err != nil {
		t.Errorf("stop: %v (the sim's own SIGTERM stop should exit 0)\n%s", err, log.String())
	}
	c := http.Client{Timeout: time.Second}
	if resp, err := c.Get(urls["gateway"] + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("the gateway still answers after stop")
	}
}

// A command that is not there, or that prints no URL line, is an error
// that names it; nothing is left running.
func TestSimProcessBadCommand(t *testing.T) {
	t.Parallel()
	for _, argv := range [][]string{
		{filepath.Join(t.TempDir(), "no-such-loadtape"), "sim"},
		{"/bin/echo", "not json"},
	} {
		_, _, err := startSimProcess(context.Background(), argv, false, 1, &syncbuf.Buffer{})
		if err == nil || !strings.Contains(err.Error(), argv[0]) {
			t.Errorf("%v: err %v, want one naming %s", argv, err, argv[0])
		}
	}
}

// A demo cancelled while the sim starts gets the cancellation, not a
// complaint about the sim, and the child is stopped.
func TestSimProcessCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, _, err := startSimProcess(ctx, []string{"/bin/sh", "-c", "sleep 30"}, false, 1, &syncbuf.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v: the child was not stopped", d)
	}
}

// TestSimProcessStopEndsTheGroup: a child that ignores SIGTERM and leaves a
// process of its own holding stderr open is still stopped, within the 10 s
// grace and not when that process ends (30 s).
func TestSimProcessStopEndsTheGroup(t *testing.T) {
	t.Parallel()
	script := `trap '' TERM; echo '{"gateway":"g","rag":"r","mcp":"m"}'; sleep 30; true`
	p, _, err := startSimProcess(context.Background(), []string{"/bin/sh", "-c", script}, false, 1, &syncbuf.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.stop()
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("stop took %v: the group was not killed", d)
	}
}
