package main

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
	"github.com/loadtape/loadtape/replay"
)

// writeCapture writes xs as a capture directory.
func writeCapture(t *testing.T, xs []captures.Exchange) string {
	t.Helper()
	dir := t.TempDir()
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(xs...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sampleExchanges is a small gateway and MCP capture: chats and model lists
// in sessions with pauses, one recorded 404, and two MCP sessions.
func sampleExchanges() []captures.Exchange {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var xs []captures.Exchange
	for s := 0; s < 4; s++ {
		at := t0 + int64(s)*int64(time.Minute)
		for q := 0; q < 10; q++ {
			x := captures.Exchange{ID: fmt.Sprintf("g%d-%d", s, q), Service: "gateway", Session: fmt.Sprint("auth:", s), Seq: int64(q),
				StartNS: at, DurationNS: int64(300 * time.Millisecond), Status: 200, Scheme: "http", Host: "gw.invalid",
				Method: "POST", Path: "/v1/chat/completions", Operation: "chat.completions", Model: "m", Stream: q%2 == 0,
				PromptTokens: 10, CompletionTokens: int64(5 + q)}
			if q%4 == 3 {
				x.Method, x.Path, x.Operation, x.Model, x.Stream, x.PromptTokens, x.CompletionTokens = "GET", "/v1/models", "models.list", "", false, 0, 0
			}
			if s == 0 && q == 9 {
				x.Status, x.Model = 404, "nope"
			}
			xs = append(xs, x)
			at += x.DurationNS + int64(time.Duration(1+q%3)*time.Second)
		}
	}
	for s := 0; s < 2; s++ {
		sid := fmt.Sprint("mcp-", s)
		for q, m := range []string{"initialize", "notifications/initialized", "tools/list"} {
			xs = append(xs, captures.Exchange{ID: fmt.Sprintf("m%d-%d", s, q), Service: "mcp", Session: sid, Seq: int64(q),
				StartNS: t0 + int64(q)*int64(time.Second), DurationNS: int64(time.Millisecond), Status: 200, Method: "POST", Path: "/mcp",
				Operation: "mcp." + m, RPCMethod: m, ReqHeaders: []captures.Header{{Name: "Mcp-Session-Id", Value: sid}}})
		}
	}
	return xs
}

// loadtape runs the real binary and returns its stdout, stderr and exit code.
func loadtape(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestProfileInitFromCapture runs `loadtape profile init` with and without
// --from through the binary; what it prints is accepted by replay's parser.
func TestProfileInitFromCapture(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := writeCapture(t, sampleExchanges())

	out, stderr, code := loadtape(t, bin, "profile", "init", "--from", dir)
	if code != 0 {
		t.Fatalf("profile init --from: exit %d: %s", code, stderr)
	}
	p, err := replay.ParseProfile([]byte(out), "generated.yaml")
	if err != nil {
		t.Fatalf("generated profile refused: %v\n%s", err, out)
	}
	gw, mcp := p.Scenarios["gateway"], p.Scenarios["mcp"]
	if gw == nil || mcp == nil || len(p.Scenarios) != 2 {
		t.Fatalf("scenarios %v, want gateway and mcp\n%s", p.ScenarioNames(), out)
	}
	// 39 successful gateway exchanges: 8 model lists, 31 chats.
	if gw.Mode != replay.ModeClosed || gw.Mix["chat.completions"] != 79.49 || gw.Mix["models.list"] != 20.51 {
		t.Errorf("gateway: mode %s mix %v, want closed with 79.49 / 20.51", gw.Mode, gw.Mix)
	}
	if mcp.Mode != replay.ModeSessions {
		t.Errorf("mcp mode %s, want sessions", mcp.Mode)
	}
	if !strings.Contains(out, "1 failed when recorded (HTTP 404 x1)") {
		t.Errorf("the left-out 404 is not named:\n%s", out)
	}

	out, _, code = loadtape(t, bin, "profile", "init", "--from", dir, "--think", "as_recorded")
	if p, err := replay.ParseProfile([]byte(out), "g.yaml"); code != 0 || err != nil || !p.Scenarios["gateway"].Think.AsRecorded {
		t.Errorf("--think as_recorded: exit %d, %v", code, err)
	}
	if out, _, code = loadtape(t, bin, "profile", "init"); code != 0 || out != string(replay.BuiltinProfile()) {
		t.Errorf("plain profile init: exit %d, output is not the default profile", code)
	}
	empty := t.TempDir()
	notParquet := filepath.Join(t.TempDir(), "x.parquet")
	os.WriteFile(notParquet, []byte("not parquet"), 0o644)
	for _, args := range [][]string{
		{"profile", "init", "--from", empty},
		{"profile", "init", "--from", notParquet},
		{"profile", "init", "--from", dir, "--think", "gaussian"},
		{"profile", "init", "--think", "as_recorded"},
	} {
		if _, stderr, code := loadtape(t, bin, args...); code != exitBadInput || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("loadtape %v: exit %d, stderr %q; want exit 2 with one line", args, code, stderr)
		}
	}
}
