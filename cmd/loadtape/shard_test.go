package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// writeTwoOpCapture writes a gateway capture of chat completions and model
// listings, without credentials.
func writeTwoOpCapture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "caps")
	w, err := captures.NewWriter[captures.Exchange](captures.WriterOptions{Dir: dir, Prefix: "exchanges"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := 0; i < 6; i++ {
		x := captures.Exchange{ID: fmt.Sprintf("x%d", i), Service: "gateway", Session: fmt.Sprintf("s%d", i%2), Seq: int64(i),
			StartNS: t0 + int64(i)*int64(time.Second), DurationNS: int64(time.Millisecond), Status: 200,
			Operation: "chat.completions", Method: "POST", Path: "/v1/chat/completions",
			ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"}},
			ReqBody:    []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)}
		if i%3 == 2 {
			x.Operation, x.Method, x.Path, x.ReqBody = "models.list", "GET", "/v1/models", nil
		}
		if err := w.Write(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestShardsMakeOneRun runs the binary as 4 shards of an Indexed Job
// (JOB_COMPLETION_INDEX 0..3, --shards 4), started one after another with
// one --start-at, then once unsharded with the same seed: the shards start
// together by their run files, their results hold the same requests per
// user and operation as the unsharded run, analyze of all four counts the
// same requests per operation, and analyze of three names the missing one.
func TestShardsMakeOneRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin := buildBinary(t)
	caps := writeTwoOpCapture(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(up.Close)
	// Closed mode: each user's choices come from the seed and its index;
	// open mode: each arrival's from the seed and its number.
	profile := writeProfile(t, `
scenarios:
  users:
    service: gateway
    stages: [{users: 8, duration: 1500ms}]
    spawn_rate: 1000
    think: {constant: 40ms}
    mix: {chat.completions: 3, models.list: 1}
  arrivals:
    service: gateway
    mode: open
    stages: [{rate: 60, duration: 1500ms}]
    mix: {chat.completions: 1, models.list: 1}
`)
	base := t.TempDir()
	args := func(out string, extra ...string) []string {
		return append([]string{"replay", "--captures", caps, "--profile", profile, "--target", "gateway=" + up.URL,
			"--out", out, "--seed", "5"}, extra...)
	}

	const n = 4
	at := time.Now().Add(6 * time.Second).UTC()
	var procs []*exec.Cmd
	var logs []*strings.Builder
	dirs := make([]string, n)
	for i := 0; i < n; i++ {
		dirs[i] = filepath.Join(base, fmt.Sprintf("shard%d", i))
		cmd := exec.Command(bin, args(dirs[i], "--shards", "4", "--run-id", "job-1", "--start-at", at.Format(time.RFC3339Nano))...)
		cmd.Env = append(os.Environ(), fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i))
		var b strings.Builder
		cmd.Stdout, cmd.Stderr = &b, &b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		procs, logs = append(procs, cmd), append(logs, &b)
		time.Sleep(300 * time.Millisecond) // pods do not start at once either
	}
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("shard index %d: %v\n%s", i, err, logs[i])
		}
	}

	// Started together, by their own run files.
	var began []time.Time
	for i, d := range dirs {
		rf, err := runspec.Read(d)
		if err != nil {
			t.Fatal(err)
		}
		if rf.Shard != fmt.Sprintf("%d/4", i+1) || rf.ID != "job-1" || rf.Start == nil {
			t.Fatalf("shard index %d: shard %q id %q start %+v", i, rf.Shard, rf.ID, rf.Start)
		}
		b, err := time.Parse(time.RFC3339Nano, rf.Start.Began)
		if err != nil {
			t.Fatal(err)
		}
		if rf.Start.SkewMS < 0 || b.Before(at) {
			t.Errorf("shard %s began %v before --start-at", rf.Shard, at.Sub(b))
		}
		t.Logf("shard %s: skew %.3f ms", rf.Shard, rf.Start.SkewMS)
		began = append(began, b)
	}
	spread := slices.MaxFunc(began, time.Time.Compare).Sub(slices.MinFunc(began, time.Time.Compare))
	t.Logf("start spread across %d shards: %v", n, spread)
	// The aim is 50 ms; a 2-core machine shared with other builds gets
	// more room.
	if spread > 250*time.Millisecond {
		t.Errorf("shards began %v apart, want within 250 ms", spread)
	}

	whole := filepath.Join(base, "whole")
	if _, stderr, code, _ := runBin(t, "", bin, args(whole)...); code != 0 {
		t.Fatalf("unsharded: exit %d\n%s", code, stderr)
	}

	// The same requests per user and operation.
	sh, wh := readRows(t, dirs...), readRows(t, whole)
	arrivals := func(rows []captures.Result) []string {
		var out []string
		for _, r := range rows {
			if r.Scenario == "arrivals" {
				out = append(out, fmt.Sprintf("%d %s", r.Iteration, r.Operation))
			}
		}
		slices.Sort(out)
		return out
	}
	if a, b := arrivals(sh), arrivals(wh); !slices.Equal(a, b) || len(a) < 40 {
		t.Errorf("open mode: shards sent %d arrivals, unsharded %d; want the same arrival numbers and operations", len(a), len(b))
	}
	perUser := func(rows []captures.Result) map[int32][]string {
		m := map[int32][]string{}
		for _, r := range rows {
			if r.Scenario == "users" {
				m[r.VU] = append(m[r.VU], r.Operation)
			}
		}
		return m
	}
	su, wu := perUser(sh), perUser(wh)
	if len(su) != 8 || len(wu) != 8 {
		t.Fatalf("users: shards ran %d, unsharded %d, want 8", len(su), len(wu))
	}
	compared := 0
	for vu, got := range su {
		want := wu[vu]
		// How many requests a closed-mode user gets through depends on
		// response times; the ones both made must be the same.
		k := min(len(got), len(want))
		if k < len(want)/2 || !slices.Equal(got[:k], want[:k]) {
			t.Errorf("user %d: shards %v, unsharded %v", vu, got, want)
		}
		compared += k
	}
	if compared < 100 {
		t.Errorf("compared %d closed-mode requests", compared)
	}

	// analyze over all four: the open scenario's requests per operation
	// (answered or cut off by the end) are the unsharded run's.
	counts := func(runs ...string) map[string]int64 {
		out := filepath.Join(t.TempDir(), "report")
		a := append(append([]string{"analyze"}, runs...), "--out", out, "--warmup-fraction", "0")
		if _, stderr, code, _ := runBin(t, "", bin, a...); code != 0 && code != 3 {
			t.Fatalf("analyze %v: exit %d\n%s", runs, code, stderr)
		}
		var s struct {
			Stages []struct {
				Scenario   string
				Operations map[string]struct{ Count, CutOff int64 } `json:"operations"`
			}
		}
		raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, st := range s.Stages {
			if st.Scenario == "arrivals" {
				for op, o := range st.Operations {
					m[op] += o.Count + o.CutOff
				}
			}
		}
		return m
	}
	// The rows are the same arrivals (checked above); which stage window
	// the last few fall in goes by when each was sent, and a busy machine
	// sends one due just before a stage's end just after it, in one run
	// and not the other (82 against 75 answered, 81 against 82 counted
	// with the cut-off ones, under load 7-12). A shard left out of the
	// merge would take a quarter.
	a, b := counts(dirs...), counts(whole)
	for _, op := range []string{"all", "chat.completions", "models.list"} {
		if a[op] == 0 || math.Abs(float64(a[op]-b[op])) > max(3, 0.06*float64(b[op])) {
			t.Errorf("analyze: shards %v, unsharded %v", a, b)
			break
		}
	}

	// One shard left out is named.
	_, stderr, code, _ := runBin(t, "", bin, "analyze", dirs[0], dirs[1], dirs[3], "--out", filepath.Join(t.TempDir(), "r"))
	wantBadInput(t, "3 of 4 shards", stderr, code, "run job-1: shard 3/4 missing", "1/4 in "+dirs[0])

	// A start instant already past, and --shards without the index, are
	// refused before anything is sent.
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	_, stderr, code, _ = runBin(t, "", bin, args(filepath.Join(base, "late"), "--start-at", past)...)
	wantBadInput(t, "past --start-at", stderr, code, "--start-at "+past, "in the past")
	_, stderr, code, _ = runBin(t, "unset JOB_COMPLETION_INDEX", bin, args(filepath.Join(base, "noindex"), "--shards", "4")...)
	wantBadInput(t, "--shards without an index", stderr, code, "--shards 4: JOB_COMPLETION_INDEX is not set")
}

func readRows(t *testing.T, dirs ...string) []captures.Result {
	t.Helper()
	r, err := captures.NewReader[captures.Result](dirs, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []captures.Result
	for r.Next() {
		out = append(out, r.Batch()...)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(out, func(a, b captures.Result) int { return cmp.Compare(a.StartNS, b.StartNS) })
	return out
}
