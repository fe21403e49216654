package replay

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

func TestResolveShard(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == JobIndexEnv {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		shard    string
		explicit bool
		shards   int
		index    string
		want     string // "" with wantErr
		wantErr  string
	}{
		{"1/1", false, 0, "3", "1/1", ""}, // no --shards: the index is not read
		{"2/5", true, 0, "", "2/5", ""},   // plain --shard
		{"1/1", false, 4, "0", "1/4", ""}, // index 0 is shard 1
		{"1/1", false, 4, "3", "4/4", ""}, // the last index is shard N
		{"3/4", true, 4, "0", "3/4", ""},  // an explicit --shard wins over the index
		{"1/1", false, 4, "4", "", "from 0 to 3"},
		{"1/1", false, 4, "-1", "", "from 0 to 3"},
		{"1/1", false, 4, "x", "", `JOB_COMPLETION_INDEX="x"`},
		{"1/1", false, 4, "", "", "JOB_COMPLETION_INDEX is not set"},
		{"2/3", true, 4, "", "", "--shard 2/3 and --shards 4 disagree"},
		{"1/1", false, -2, "", "", "--shards -2"},
	} {
		got, err := ResolveShard(c.shard, c.explicit, c.shards, env(c.index))
		if c.wantErr != "" {
			if err == nil || !IsBadInput(err) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%+v: err %v, want bad input with %q", c, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c, got, err, c.want)
		}
	}
}

func TestParseStartAt(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at, err := ParseStartAt("2026-03-01T12:00:05.25Z", now)
	if err != nil || !at.Equal(now.Add(5250*time.Millisecond)) {
		t.Errorf("ahead: %v, %v", at, err)
	}
	if at, err := ParseStartAt("2026-03-01T13:00:01+01:00", now); err != nil || !at.Equal(now.Add(time.Second)) {
		t.Errorf("with a zone: %v, %v", at, err)
	}
	if at, err := ParseStartAt("", now); err != nil || !at.IsZero() {
		t.Errorf("empty: %v, %v", at, err)
	}
	for in, want := range map[string]string{
		"2026-03-01T11:59:58Z": "2s in the past",
		"2026-03-01T12:00:00Z": "0s in the past",
		"12:00":                "want an RFC 3339 time",
		"2026-03-01 12:00:05":  "want an RFC 3339 time",
	} {
		_, err := ParseStartAt(in, now)
		if err == nil || !IsBadInput(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--start-at") {
			t.Errorf("%q: %v, want bad input naming --start-at with %q", in, err, want)
		}
	}
}

func TestRunIDChecked(t *testing.T) {
	for _, ok := range []string{"", "r1", "2026-03-01T12.shard_run-7"} {
		if err := checkRunID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"../x", "a/b", "-x", strings.Repeat("a", 65), "a b"} {
		if err := checkRunID(bad); err == nil || !IsBadInput(err) {
			t.Errorf("%q accepted", bad)
		}
	}
}

const barrierProfile = `
scenarios:
  g:
    service: gateway
    stages: [{users: 2, duration: 300ms}]
    think: {constant: 20ms}
    mix: {chat.completions: 1}
`

// TestStartAtWaitsAndRecordsSkew: the stages start at the instant given,
// not before, and run.json says when and how late; the run id is the one
// given.
func TestStartAtWaitsAndRecordsSkew(t *testing.T) {
	up := newUpstream(t, 0)
	at := time.Now().Add(700 * time.Millisecond)
	opts := Options{Exchanges: gatewayCapture(2, 3), Profile: mustProfile(t, barrierProfile),
		Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), Seed: 3, RunID: "shared-run", StartAt: at}
	info, rows := runAndRead(t, context.Background(), opts)
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
	if info.ID != "shared-run" || rows[0].Run != "shared-run" {
		t.Errorf("run id %q, rows' %q, want shared-run", info.ID, rows[0].Run)
	}
	for _, r := range rows {
		if r.StartNS < at.UnixNano() {
			t.Fatalf("a request started %v before --start-at", time.Duration(at.UnixNano()-r.StartNS))
		}
	}
	rf, err := runspec.Read(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	if rf.Start == nil {
		t.Fatal("run.json has no start record")
	}
	gotAt, err1 := time.Parse(time.RFC3339Nano, rf.Start.At)
	began, err2 := time.Parse(time.RFC3339Nano, rf.Start.Began)
	if err1 != nil || err2 != nil || !gotAt.Equal(at) {
		t.Fatalf("start record %+v (at want %v)", rf.Start, at.UTC())
	}
	// Within a microsecond either way: the run measured its skew on the
	// monotonic clock, the file's times are wall-clock readings.
	if d := began.Sub(at); d < 0 || math.Abs(rf.Start.SkewMS-float64(d.Microseconds())/1000) > 0.0015 {
		t.Errorf("began %v after at, skew_ms %v", d, rf.Start.SkewMS)
	}
	// Generous for a busy machine: the timer's lateness, not the run's.
	if rf.Start.SkewMS > 250 {
		t.Errorf("skew %v ms", rf.Start.SkewMS)
	}
	st0, _ := time.Parse(time.RFC3339Nano, rf.Stages[0].Start)
	if !st0.Equal(began) {
		t.Errorf("first stage starts %v, the start record says %v", st0, began)
	}
	t.Logf("start skew %.3f ms", rf.Start.SkewMS)

	// Without --start-at: no record.
	opts.StartAt, opts.Out, opts.RunID = time.Time{}, t.TempDir(), ""
	info, _ = runAndRead(t, context.Background(), opts)
	if rf, err := runspec.Read(opts.Out); err != nil || rf.Start != nil || info.ID == "shared-run" {
		t.Errorf("without --start-at: start %+v, id %q, %v", rf.Start, info.ID, err)
	}
}

// TestStartAtPastRefused: an instant already past is bad input before a
// request is sent or a file written.
func TestStartAtPastRefused(t *testing.T) {
	up := newUpstream(t, 0)
	out := t.TempDir() + "/run"
	_, err := Run(context.Background(), Options{Exchanges: gatewayCapture(2, 3), Profile: mustProfile(t, barrierProfile),
		Targets: map[string]string{"gateway": up.URL}, Out: out, StartAt: time.Now().Add(-time.Second)})
	if err == nil || !IsBadInput(err) || !strings.Contains(err.Error(), "in the past") {
		t.Fatalf("err %v, want bad input: in the past", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written", out)
	}
	_, err = Run(context.Background(), Options{Exchanges: gatewayCapture(2, 3), Profile: mustProfile(t, barrierProfile),
		Targets: map[string]string{"gateway": up.URL}, Out: out, RunID: "../x"})
	if err == nil || !IsBadInput(err) || !strings.Contains(err.Error(), "--run-id") {
		t.Fatalf("err %v, want bad input naming --run-id", err)
	}
}
