package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// startSimBin runs `loadtape sim --json` with only the gateway, at the
// given time scale, and returns the gateway's URL once the sim prints it.
// The sim is stopped with SIGTERM when the test ends.
func startSimBin(t *testing.T, bin, config string, scale float64) string {
	t.Helper()
	cmd := exec.Command(bin, "sim", "--json", "--healthy", "--config", config,
		"--time-scale", strconv.FormatFloat(scale, 'g', -1, 64),
		"--gateway", "127.0.0.1:0", "--rag", "", "--mcp", "")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	logs := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- s
		_, _ = r.WriteTo(discard{})
	}()
	var s string
	select {
	case s = <-line:
	case <-time.After(30 * time.Second):
		t.Fatalf("sim --time-scale %g printed no URL within 30 s; stderr:\n%s", scale, logs())
	}
	var urls map[string]string
	if err := json.Unmarshal([]byte(s), &urls); err != nil || urls["gateway"] == "" {
		t.Fatalf("sim --time-scale %g: want a JSON line with the gateway's URL, got %q (%v); stderr:\n%s", scale, s, err, logs())
	}
	return urls["gateway"]
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// writeScaleCapture writes a capture of two services that both point at
// the sim's gateway when replayed: "gateway" holds short chat completions
// of a model the sim serves, "broken" chat completions of a model it does
// not (recorded as 200, so every replayed one is a status_mismatch).
func writeScaleCapture(t *testing.T) string {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	prompts := []string{"hi", "hello there", "what is a load test", "name three colours"}
	var xs []captures.Exchange
	add := func(service, op, method, path string, body string) {
		n := len(xs)
		x := captures.Exchange{ID: fmt.Sprintf("x%d", n), Service: service, Session: fmt.Sprintf("s%d", n%3), Seq: int64(n),
			StartNS: t0 + int64(n)*int64(time.Second), DurationNS: int64(50 * time.Millisecond), Status: 200,
			Operation: op, Method: method, Path: path,
			ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"}}}
		if body != "" {
			x.ReqBody = []byte(body)
		}
		xs = append(xs, x)
	}
	for _, p := range prompts {
		add("gateway", "chat.completions", "POST", "/v1/chat/completions",
			fmt.Sprintf(`{"model":"chat-7b","max_tokens":16,"messages":[{"role":"user","content":%q}]}`, p))
		add("broken", "chat.completions", "POST", "/v1/chat/completions",
			fmt.Sprintf(`{"model":"no-such-model","max_tokens":16,"messages":[{"role":"user","content":%q}]}`, p))
	}
	add("gateway", "models.list", "GET", "/v1/models", "")
	add("gateway", "models.list", "GET", "/v1/models", "")
	return writeCapture(t, xs)
}

// scaleTarget is one row of summary.json's targets.
type scaleTarget struct {
	Scenario   string   `json:"scenario"`
	Metric     string   `json:"metric"`
	Operation  string   `json:"operation"`
	Stage      *int     `json:"stage"`
	Bound      float64  `json:"bound"`
	Acceptable float64  `json:"acceptable"`
	Unit       string   `json:"unit"`
	TimeScale  float64  `json:"time_scale"`
	Value      *float64 `json:"value"`
	Verdict    string   `json:"verdict"`
}

// key names the target as written; the stage it was judged at (the
// worst one) may differ between runs.
func (s scaleTarget) key() string {
	return fmt.Sprintf("%s %s %s", s.Scenario, s.Metric, s.Operation)
}

func (s scaleTarget) value() string {
	if s.Value == nil {
		return "none"
	}
	v := strconv.FormatFloat(*s.Value, 'f', 2, 64) + " " + s.Unit
	if s.Stage != nil {
		v += " (stage " + strconv.Itoa(*s.Stage) + ")"
	}
	return v
}

// TestTimeScaleSameVerdicts runs one profile through the real binary
// against the sim at --time-scale 1 and again, ten times faster, with the
// sim and the replay both at --time-scale 0.1: analyze scales the bounds
// (latency × 0.1, rates ÷ 0.1), so every target gets the same verdict, and
// the scaled run's targets say they were scaled.
//
// The targets are chosen far from what the sim gives, so that the verdicts
// are not a coin toss on a busy machine: a chat completion of 16 tokens
// takes about 15 ms prefill + up to 16 × 8 ms decode (≈ 0.1–0.15 s, 10–15 ms
// at 0.1, where the machine's own overhead of a few ms adds on top), so
// p95 ≤ 1 s passes and p95 ≤ 40 ms fails at both scales by a factor of
// three or more. 8 users thinking 100 ms send about 30 req/s (300 at 0.1):
// ≥ 10 passes, ≥ 150 fails. The open scenario's 15 arrivals/s (150 at 0.1):
// ≥ 5 passes, ≥ 45 fails. Every request of the broken scenario names a
// model the sim lacks: its error_rate ≤ 5 % fails (100 %), the chat's
// ≤ 1 % passes (0 %).
func TestTimeScaleSameVerdicts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin := buildBinary(t)
	caps := writeScaleCapture(t)
	// Models load at once: the default load time (8 s at scale 1) would
	// only delay the first requests of the unscaled run.
	config := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(config, []byte(`gateway:
  models:
    - {name: chat-7b, weights_mib: 2048, load: startup, load_time: 1ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	profile := writeProfile(t, `
scenarios:
  chat:
    service: gateway
    stages: [{users: 4, duration: 8s}, {users: 8, duration: 8s}]
    think: {constant: 100ms}
    mix: {chat.completions: 1}
  arrivals:
    service: gateway
    mode: open
    stages: [{rate: 15, duration: 16s}]
    mix: {models.list: 1}
  broken:
    service: broken
    stages: [{users: 2, duration: 16s}]
    think: {constant: 200ms}
    mix: {chat.completions: 1}
targets:
  - {scenario: chat, metric: p95, operation: chat.completions, max: 1s}
  - {scenario: chat, metric: p95, operation: chat.completions, max: 40ms}
  - {scenario: chat, metric: avg, operation: chat.completions, max: 1s}
  - {scenario: chat, metric: error_rate, max: 1%}
  - {scenario: chat, metric: rps, users: 8, min: 10}
  - {scenario: chat, metric: rps, users: 8, min: 150}
  - {scenario: arrivals, metric: rps, min: 5}
  - {scenario: arrivals, metric: rps, min: 45}
  - {scenario: broken, metric: error_rate, max: 5%}
acceptance: 0.8
`)
	run := func(scale float64) []scaleTarget {
		sc := strconv.FormatFloat(scale, 'g', -1, 64)
		url := startSimBin(t, bin, config, scale)
		out := filepath.Join(t.TempDir(), "run")
		_, stderr, code, el := runBin(t, "", bin, "replay", "--captures", caps, "--profile", profile,
			"--target", "gateway="+url, "--target", "broken="+url, "--out", out, "--seed", "3", "--time-scale", sc)
		if code != 0 {
			t.Fatalf("replay --time-scale %s: exit %d\n%s", sc, code, stderr)
		}
		t.Logf("replay --time-scale %s took %v", sc, el.Round(time.Millisecond))
		report := filepath.Join(t.TempDir(), "report")
		_, stderr, code, _ = runBin(t, "", bin, "analyze", out, "--out", report)
		// Some targets fail by design: exit 3.
		if code != 3 {
			t.Fatalf("analyze of the run at --time-scale %s: exit %d, want 3 (targets missed)\n%s", sc, code, stderr)
		}
		raw, err := os.ReadFile(filepath.Join(report, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Run struct {
				TimeScale float64 `json:"time_scale"`
			} `json:"run"`
			Targets []scaleTarget `json:"targets"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		if s.Run.TimeScale != scale {
			t.Errorf("--time-scale %s: summary.json run.time_scale %v", sc, s.Run.TimeScale)
		}
		return s.Targets
	}
	one, tenth := run(1), run(0.1)
	if len(one) != 9 || len(tenth) != len(one) {
		t.Fatalf("targets: %d at scale 1, %d at 0.1, want 9 each", len(one), len(tenth))
	}
	verdicts := map[string]int{}
	for i, a := range one {
		b := tenth[i]
		t.Logf("%-30s scale 1: %-22s bound %g → %-4s | scale 0.1: %-22s bound %g → %s",
			a.key(), a.value(), a.Bound, a.Verdict, b.value(), b.Bound, b.Verdict)
		if a.key() != b.key() {
			t.Fatalf("target %d: %q at scale 1, %q at 0.1", i, a.key(), b.key())
		}
		if a.Value == nil || b.Value == nil {
			t.Errorf("%s: no value (scale 1 %s, scale 0.1 %s)", a.key(), a.value(), b.value())
		}
		if a.Verdict != b.Verdict {
			t.Errorf("%s: %s at scale 1 (%s, bound %g %s), %s at scale 0.1 (%s, bound %g %s)",
				a.key(), a.Verdict, a.value(), a.Bound, a.Unit, b.Verdict, b.value(), b.Bound, b.Unit)
		}
		verdicts[a.Verdict]++
		// The unscaled run's bounds are as written; the scaled run's
		// latency and rate bounds are scaled and say so, its error rates
		// are not.
		if a.TimeScale != 0 {
			t.Errorf("%s: scale 1 run says time_scale %v", a.key(), a.TimeScale)
		}
		var want float64
		switch a.Unit {
		case "ms":
			want = a.Bound * 0.1
		case "req/s":
			want = a.Bound / 0.1
		default:
			if b.TimeScale != 0 || b.Bound != a.Bound {
				t.Errorf("%s: error-rate bound %g scaled to %g (time_scale %v)", a.key(), a.Bound, b.Bound, b.TimeScale)
			}
			continue
		}
		if b.TimeScale != 0.1 || !near(b.Bound, want) {
			t.Errorf("%s: scaled run's bound %g %s (time_scale %v), want %g with time_scale 0.1", a.key(), b.Bound, b.Unit, b.TimeScale, want)
		}
	}
	// The profile is built so that both outcomes occur.
	if verdicts["pass"] != 5 || verdicts["fail"] != 4 {
		t.Errorf("verdicts at scale 1: %v, want 5 pass and 4 fail", verdicts)
	}
}

func near(a, b float64) bool {
	d := a - b
	return d < 1e-9*max(1, b) && -d < 1e-9*max(1, b)
}
