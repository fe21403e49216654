package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// abortProfile is three stages against a service answering in 30 ms, with
// one target of the given metric and bound.
func abortProfile(target string) string {
	return `scenarios:
  gateway:
    stages: [{users: 2, duration: 1s}, {users: 2, duration: 3s}, {users: 2, duration: 3s}]
    mix: {chat.completions: 1}
    think: {constant: 10ms}
targets:
  - ` + target + "\n"
}

func runAbortProfile(t *testing.T, y string) (*RunInfo, *runspec.Run) {
	t.Helper()
	up := newUpstream(t, 30*time.Millisecond)
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	info, err := Run(context.Background(), Options{ProfilePath: path, Exchanges: gatewayCapture(2, 6),
		Targets: map[string]string{"gateway": up.URL}, Out: out})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	rf, err := runspec.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	return info, rf
}

// A target with abort: true that fails over its first stage ends the run
// after that stage, and run.json says which target and why; without
// abort the same target lets the run go on to its end.
func TestAbortEndsTheRunAfterTheFailedStage(t *testing.T) {
	t.Parallel()
	info, rf := runAbortProfile(t, abortProfile("{scenario: gateway, metric: p50, max: 5ms, abort: true}"))
	if info.EndedBy != EndedAbort || rf.EndedBy != EndedAbort || !rf.Interrupted {
		t.Fatalf("ended_by %q (run.json %q, interrupted %v), want %q", info.EndedBy, rf.EndedBy, rf.Interrupted, EndedAbort)
	}
	for _, want := range []string{"target gateway p50 failed at stage 1", "against max 5 ms"} {
		if !strings.Contains(rf.EndReason, want) {
			t.Errorf("end_reason %q lacks %q", rf.EndReason, want)
		}
	}
	t.Logf("end_reason: %s", rf.EndReason)
	// Stage 1 ends 1 s in; the run ends within the grace after it, long
	// before stage 2's end at 4 s (generous for a busy machine).
	if d := info.Ended.Sub(info.Started); d < time.Second || d > 3*time.Second {
		t.Errorf("run lasted %v, want about 1 s (stage 1) and well under stage 2's end at 4 s", d)
	}
	if len(rf.Stages) != 2 {
		t.Errorf("run.json has %d stages, want stage 1 and the start of stage 2", len(rf.Stages))
	}
}

func TestPassingAbortTargetDoesNotStopTheRun(t *testing.T) {
	t.Parallel()
	info, rf := runAbortProfile(t, abortProfile("{scenario: gateway, metric: error_rate, max: 5%, abort: true}"))
	if info.EndedBy != EndedCompleted || rf.EndedBy != EndedCompleted || len(rf.Stages) != 3 {
		t.Errorf("ended_by %q (%s), %d stages; want completed with 3 stages", rf.EndedBy, rf.EndReason, len(rf.Stages))
	}
}

// A failing target without abort is analyze's to judge: the run goes on.
func TestTargetWithoutAbortDoesNotStopTheRun(t *testing.T) {
	t.Parallel()
	info, _ := runAbortProfile(t, abortProfile("{scenario: gateway, metric: p50, max: 5ms}"))
	if info.EndedBy != EndedCompleted {
		t.Errorf("ended_by %q (%s), want completed", info.EndedBy, info.EndReason)
	}
}

// abort on a metric replay cannot judge while it runs is refused at the
// target's abort key.
func TestAbortOnLiveUnknownMetricRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ target, want string }{
		{"{scenario: gateway, metric: itl_p95, max: 50ms, abort: true}", "test.yaml:7:53: target gateway itl_p95: abort needs a metric replay judges while it runs"},
		{"{scenario: gateway, metric: count, min: 10, abort: true}", "test.yaml:7:49: target gateway count: abort needs"},
	} {
		_, err := ParseProfile([]byte(abortProfile(tc.target)), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", tc.target, err, tc.want)
		}
	}
}

func TestNearestRank(t *testing.T) {
	t.Parallel()
	v := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0.5, 50}, {0.9, 90}, {0.95, 100}, {0.99, 100}, {0.01, 10}, {0.51, 60}} {
		if got := nearestRank(v, tc.p); got != tc.want {
			t.Errorf("nearestRank(p=%v) = %v, want %v (the ⌈p·n⌉-th smallest)", tc.p, got, tc.want)
		}
	}
}
