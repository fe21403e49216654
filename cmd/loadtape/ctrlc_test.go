package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/loopback"
	"github.com/loadtape/loadtape/internal/s3test"
	"github.com/loadtape/loadtape/sim"
)

// These tests run the real binary as a person would: `loadtape sim`, then
// `loadtape record` in front of it, both stopped with SIGINT (Ctrl-C), then
// `loadtape inspect` on what was left.

// binary is cmd/loadtape built once for all the tests of this package:
// a link takes seconds, and a dozen tests run the binary.
var binary struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
}

// buildBinary compiles cmd/loadtape without the race detector, once per
// test process, and returns its path; tests must not change the file.
func buildBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "loadtape-test-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "loadtape")
		cmd := exec.Command("go", "build", "-o", binary.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatalf("go build: %v", binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop() // the S3 server the object-storage tests share
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// start runs bin with args and waits until url answers.
func start(t *testing.T, bin string, url string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return cmd, &out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: %s never answered: %v\n%s", args, url, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// interrupt sends SIGINT and wants a clean exit within the drain time.
func interrupt(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v after Ctrl-C: %v\n%s", cmd.Args, err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not stop within 30 s of Ctrl-C\n%s", cmd.Args, out.String())
	}
}

func TestRecordSimStoppedWithCtrlCThenInspect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin := buildBinary(t)
	gw, rag, mcp := loopback.FreeAddr(t), loopback.FreeAddr(t), loopback.FreeAddr(t)
	simCmd, simOut := start(t, bin, "http://"+gw+"/health",
		"sim", "--gateway", gw, "--rag", rag, "--mcp", mcp, "--healthy", "--time-scale", "0.05")

	pg, pr, pm := loopback.FreeAddr(t), loopback.FreeAddr(t), loopback.FreeAddr(t)
	out := filepath.Join(t.TempDir(), "captures")
	recCmd, recOut := start(t, bin, "http://"+pg+"/health", "record", "--out", out, "--roll", "1s",
		"--route", "gateway@"+pg+"=http://"+gw,
		"--route", "rag@"+pr+"=http://"+rag,
		"--route", "mcp@"+pm+"=http://"+mcp)

	client := &sim.Client{Targets: map[string]string{"gateway": "http://" + pg, "rag": "http://" + pr, "mcp": "http://" + pm},
		Users: 3, Seed: 3, Think: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stats, err := client.Run(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	interrupt(t, recCmd, recOut)
	interrupt(t, simCmd, simOut)

	cmd := exec.Command(bin, "inspect", "--json", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("inspect: %v\n%s", err, stderr.String())
	}
	var inv struct {
		Files []struct {
			Kind       string `json:"kind"`
			Rows       int64  `json:"rows"`
			Incomplete bool   `json:"incomplete"`
		} `json:"files"`
		Operations []struct {
			Service   string `json:"service"`
			Operation string `json:"operation"`
			Exchanges int64  `json:"exchanges"`
		} `json:"operations"`
		Sessions map[string]int `json:"sessions"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &inv); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, stdout.String())
	}
	var rows int64
	for _, f := range inv.Files {
		if f.Incomplete || f.Kind != "exchanges" {
			t.Errorf("after Ctrl-C every file is a finished exchanges file, got %+v", f)
		}
		rows += f.Rows
	}
	got := map[string]int64{}
	var total int64
	for _, o := range inv.Operations {
		got[o.Operation] += o.Exchanges
		total += o.Exchanges
	}
	// Every request the users made went through the proxy and is in the
	// capture, under the operation name the users used. The capture holds
	// a little more: the MCP handshake's notification and session DELETE,
	// which the users do not count, and the requests in flight when their
	// run ended (sandbox probes are tools/call requests on the wire).
	if total != rows || total < stats.Requests {
		t.Errorf("capture holds %d exchanges in %d rows, the users made %d requests\ncapture: %v\nusers: %+v", total, rows, stats.Requests, got, stats.Operations)
	}
	for op, s := range stats.Operations {
		if op != "mcp.sandbox_probe" && got[op] < s.Count {
			t.Errorf("operation %s: %d in the capture, the users made %d", op, got[op], s.Count)
		}
	}
	if init := got["mcp.initialize"]; init == 0 || got["mcp.notifications/initialized"] != init {
		t.Errorf("MCP handshakes: %d initialize, %d notifications/initialized", init, got["mcp.notifications/initialized"])
	}
	for _, svc := range []string{"gateway", "rag", "mcp"} {
		if inv.Sessions[svc] == 0 {
			t.Errorf("no %s sessions in %v", svc, inv.Sessions)
		}
	}
}
