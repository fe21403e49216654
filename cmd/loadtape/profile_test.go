package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/capturetest"
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

// TestProfileFromCaptureReplayed is `profile init --from` then `replay`,
// both through the binary, against a local upstream: the replay sends the
// recorded operation shares within ±2 points and pauses like the recorded
// ones (two-sample KS at 1 %).
func TestProfileFromCaptureReplayed(t *testing.T) {
	if testing.Short() {
		t.Skip("replays for 5 s")
	}
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	// 40 sessions of 60 exchanges: 60 % chats, 30 % model lists, 10 %
	// health checks, exponential pauses of 150 ms on average.
	rng := rand.New(rand.NewPCG(9, 9))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var xs []captures.Exchange
	var recorded []float64
	for s := 0; s < 40; s++ {
		at := t0 + int64(s)*int64(time.Hour)
		for q := 0; q < 60; q++ {
			x := captures.Exchange{ID: fmt.Sprintf("%d-%d", s, q), Service: "gateway", Session: fmt.Sprint("auth:", s), Seq: int64(q),
				StartNS: at, DurationNS: int64(10 * time.Millisecond), Status: 200, Scheme: "http", Host: "gw.invalid",
				Method: "POST", Path: "/v1/chat/completions", Operation: "chat.completions", ReqBody: []byte(`{"model":"m","messages":[]}`)}
			switch u := rng.Float64(); {
			case u < 0.3:
				x.Method, x.Path, x.Operation, x.ReqBody = "GET", "/v1/models", "models.list", nil
			case u < 0.4:
				x.Method, x.Path, x.Operation, x.ReqBody = "GET", "/health", "health", nil
			}
			xs = append(xs, x)
			pause := rng.ExpFloat64() * 0.15
			if q < 59 {
				recorded = append(recorded, pause)
			}
			at += x.DurationNS + int64(pause*1e9)
		}
	}
	bin := buildBinary(t)
	capDir := writeCapture(t, xs)
	y, stderr, code := loadtape(t, bin, "profile", "init", "--from", capDir)
	if code != 0 {
		t.Fatalf("profile init --from: exit %d: %s", code, stderr)
	}
	// Edit the defaults as a user would: one short stage, no targets.
	y = regexp.MustCompile(`(?m)^    stages:\n(      - .*\n)+`).ReplaceAllString(y, "    stages:\n      - {users: 150, duration: 5s}\n")
	y = regexp.MustCompile(`(?m)^    spawn_rate: .*\n`).ReplaceAllString(y, "")
	y = regexp.MustCompile(`(?m)^targets:\n(  - .*\n)+`).ReplaceAllString(y, "")
	prof := filepath.Join(t.TempDir(), "profile.yaml")
	os.WriteFile(prof, []byte(y), 0o644)
	runDir := filepath.Join(t.TempDir(), "run")
	if _, stderr, code := loadtape(t, bin, "replay", "--captures", capDir, "--profile", prof, "--target", "gateway="+up.URL, "--out", runDir); code != 0 {
		t.Fatalf("replay: exit %d: %s\n%s", code, stderr, y)
	}
	rows := capturetest.Read[captures.Result](t, runDir)
	if len(rows) < 2500 {
		t.Fatalf("%d requests replayed, want at least 2500", len(rows))
	}
	want, got := map[string]float64{}, map[string]float64{}
	for _, x := range xs {
		want[x.Operation] += 100 / float64(len(xs))
	}
	for _, row := range rows {
		got[row.Operation] += 100 / float64(len(rows))
	}
	for op := range want {
		if math.Abs(got[op]-want[op]) > 2 {
			t.Errorf("%s: replayed %.2f %%, recorded %.2f %% (±2 points)", op, got[op], want[op])
		}
	}
	// Pauses: from a request's end to the same user's next intended send.
	byVU := map[int32][]captures.Result{}
	for _, row := range rows {
		byVU[row.VU] = append(byVU[row.VU], row)
	}
	var replayed []float64
	for _, rs := range byVU {
		slices.SortFunc(rs, func(a, b captures.Result) int { return cmp.Compare(a.StartNS, b.StartNS) })
		for i := 1; i < len(rs); i++ {
			if rs[i-1].ErrorKind == "" {
				replayed = append(replayed, float64(rs[i].IntendedNS-(rs[i-1].StartNS+rs[i-1].DurationNS))/1e9)
			}
		}
	}
	slices.Sort(recorded)
	slices.Sort(replayed)
	n, m := float64(len(recorded)), float64(len(replayed))
	d, crit := stat.KolmogorovSmirnov(recorded, nil, replayed, nil), 1.628*math.Sqrt((n+m)/(n*m))
	t.Logf("%d requests, shares %v (recorded %v); KS D %.4f, 1 %% critical value %.4f", len(rows), got, want, d, crit)
	if d > crit {
		t.Errorf("replayed pauses differ from the recorded ones: KS D %.4f > %.4f", d, crit)
	}
}
