package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/loadtape/loadtape/internal/loopback"
	"github.com/loadtape/loadtape/internal/s3test"
	"github.com/loadtape/loadtape/objstore"
	"github.com/loadtape/loadtape/runspec"
)

// TestObjectStorageShards runs two shards of one run with their captures
// read from and their run directories written to object storage, then
// analyzes the run's prefix: every shard found there, reports uploaded; a
// prefix missing a shard is refused naming it. The store is SeaweedFS,
// started by the test on 127.0.0.1 (internal/s3test).
func TestObjectStorageShards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	srv := s3test.Start(t, "caps", "runs") // the test's client and the binaries it starts
	st, err := objstore.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	capsLoc, _ := objstore.Parse("s3://caps/gateway")
	if _, err := st.Upload(ctx, writeTwoOpCapture(t), capsLoc); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	tmp := t.TempDir() // where the binaries stage s3:// paths
	t.Setenv("TMPDIR", tmp)
	stdout, stderr, code, _ := runBin(t, "", bin, "inspect", "s3://caps/gateway")
	if code != 0 || !strings.Contains(stdout, "s3://caps/gateway/exchanges-") || !strings.Contains(stdout, "chat.completions") || strings.Contains(stdout, "loadtape-s3-") {
		t.Errorf("inspect s3://caps/gateway: exit %d\n%s%s", code, stdout, stderr)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(up.Close)
	profile := writeProfile(t, `
scenarios:
  users:
    service: gateway
    stages: [{users: 4, duration: 800ms}]
    spawn_rate: 1000
    think: {constant: 40ms}
    mix: {chat.completions: 3, models.list: 1}
`)
	replayTo := func(out, shard, id string) (string, int) {
		_, stderr, code, _ := runBin(t, "", bin, "replay", "--captures", "s3://caps/gateway", "--profile", profile,
			"--target", "gateway="+up.URL, "--seed", "3", "--shard", shard, "--run-id", id, "--out", out)
		return stderr, code
	}
	for _, sh := range []string{"1/2", "2/2"} {
		if stderr, code := replayTo("s3://runs/job-s3/shard-"+sh[:1], sh, "job-s3"); code != 0 {
			t.Fatalf("shard %s: exit %d\n%s", sh, code, stderr)
		}
	}
	for _, key := range []string{"job-s3/shard-1/run.json", "job-s3/shard-2/run.json"} {
		if _, err := srv.Client.StatObject(ctx, "runs", key, minio.StatObjectOptions{}); err != nil {
			t.Errorf("s3://runs/%s: %v", key, err)
		}
	}

	// Another run into a prefix already used is refused before it starts.
	stderr, code = replayTo("s3://runs/job-s3/shard-1", "1/2", "job-s3")
	wantBadInput(t, "used --out prefix", stderr, code, "--out s3://runs/job-s3/shard-1: not empty", "--force")

	_, stderr, code, _ = runBin(t, "", bin, "analyze", "s3://runs/job-s3/", "--out", "s3://runs/reports/job-s3")
	if code != 0 && code != 3 {
		t.Fatalf("analyze: exit %d\n%s", code, stderr)
	}
	obj, err := srv.Client.StatObject(ctx, "runs", "reports/job-s3/summary.json", minio.StatObjectOptions{})
	if err != nil || obj.Size < 100 {
		t.Fatalf("summary.json uploaded: %+v, %v", obj, err)
	}

	// One shard of two finished, the other killed mid-run: analyze of the
	// prefix names the killed one as missing.
	if stderr, code := replayTo("s3://runs/job-half/shard-1", "1/2", "job-half"); code != 0 {
		t.Fatalf("half: exit %d\n%s", code, stderr)
	}
	killed := exec.Command(bin, "replay", "--captures", "s3://caps/gateway", "--profile", profile,
		"--target", "gateway="+up.URL, "--seed", "3", "--shard", "2/2", "--run-id", "job-half", "--out", "s3://runs/job-half/shard-2")
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	_ = killed.Process.Kill()
	_ = killed.Wait()
	_, stderr, code, _ = runBin(t, "", bin, "analyze", "s3://runs/job-half", "--out", t.TempDir())
	wantBadInput(t, "a shard missing in the store", stderr, code, "run job-half: shard 2/2 missing")
	_, stderr, code, _ = runBin(t, "", bin, "analyze", "s3://runs/job-none", "--out", t.TempDir())
	wantBadInput(t, "an empty prefix", stderr, code, "s3://runs/job-none: no objects there")
	// A bucket nobody made is bad input, refused before any load is sent.
	_, stderr, code, _ = runBin(t, "", bin, "analyze", "s3://nobucket/job", "--out", t.TempDir())
	wantBadInput(t, "analyze of a missing bucket", stderr, code, "s3://nobucket/job: no such bucket")
	stderr, code = replayTo("s3://nobucket/job/shard-1", "1/2", "job-nob")
	wantBadInput(t, "replay --out to a missing bucket", stderr, code, "--out s3://nobucket/job/shard-1: no such bucket")
	_, stderr, code, _ = runBin(t, "", bin, "inspect", "s3://nobucket/caps")
	wantBadInput(t, "inspect of a missing bucket", stderr, code, "s3://nobucket/caps: no such bucket")
	if strings.Contains(stderr, "panic") {
		t.Error(stderr)
	}
	// A run refused by replay itself (here: no profile file) uploads
	// nothing.
	_, stderr, code, _ = runBin(t, "", bin, "replay", "--captures", "s3://caps/gateway", "--profile", filepath.Join(tmp, "none.yaml"),
		"--target", "gateway="+up.URL, "--out", "s3://runs/job-bad/shard-1")
	if code != 2 {
		t.Errorf("no profile: exit %d\n%s", code, stderr)
	}
	if used, err := st.Used(ctx, objstore.Location{Bucket: "runs", Prefix: "job-bad"}); used || err != nil {
		t.Errorf("a refused run uploaded: %v %v", used, err)
	}
	// Every download and staged run was removed, refused runs included;
	// only the killed shard's two are left (its captures, its run).
	if left, _ := filepath.Glob(filepath.Join(tmp, "loadtape-s3*")); len(left) > 2 {
		t.Errorf("left behind: %v", left)
	}
}

// TestBarrierShards starts 3 shards with --barrier 700 ms apart: none
// starts before the last has registered, all from one instant, within
// 250 ms of each other by their run files; a shard whose partner never
// comes fails naming it.
func TestBarrierShards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	s3test.Start(t, "runs")
	bin := buildBinary(t)
	caps := writeTwoOpCapture(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(up.Close)
	profile := writeProfile(t, `
scenarios:
  users:
    service: gateway
    stages: [{users: 6, duration: 500ms}]
    spawn_rate: 1000
    think: {constant: 40ms}
    mix: {chat.completions: 1}
`)
	args := func(out, shard, id string, extra ...string) []string {
		return append([]string{"replay", "--captures", caps, "--profile", profile, "--target", "gateway=" + up.URL,
			"--shard", shard, "--run-id", id, "--barrier", "s3://runs/barrier", "--out", out}, extra...)
	}
	base := t.TempDir()
	var procs []*exec.Cmd
	var logs []*strings.Builder
	var lastUp time.Time
	for i := 1; i <= 3; i++ {
		cmd := exec.Command(bin, args(filepath.Join(base, fmt.Sprint(i)), fmt.Sprintf("%d/3", i), "job-bar")...)
		var b strings.Builder
		cmd.Stdout, cmd.Stderr = &b, &b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lastUp = time.Now()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		procs, logs = append(procs, cmd), append(logs, &b)
		time.Sleep(700 * time.Millisecond)
	}
	var began []time.Time
	at := ""
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("shard %d/3: %v\n%s", i+1, err, logs[i])
		}
		rf, err := runspec.Read(filepath.Join(base, fmt.Sprint(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		if rf.Start == nil || (at != "" && rf.Start.At != at) {
			t.Fatalf("shard %d/3: start %+v, want the instant %s of the others", i+1, rf.Start, at)
		}
		at = rf.Start.At
		b, _ := time.Parse(time.RFC3339Nano, rf.Start.Began)
		began = append(began, b)
		t.Logf("shard %d/3: skew %.3f ms", i+1, rf.Start.SkewMS)
	}
	first := slices.MinFunc(began, time.Time.Compare)
	spread := slices.MaxFunc(began, time.Time.Compare).Sub(first)
	t.Logf("barrier: shards began within %v; first %v after the last process started", spread, first.Sub(lastUp))
	if first.Before(lastUp) {
		t.Errorf("a shard began %v before the last one was started", lastUp.Sub(first))
	}
	if spread > 250*time.Millisecond {
		t.Errorf("shards began %v apart, want within 250 ms", spread)
	}

	// The partner never comes: named, after the timeout, nothing sent.
	_, stderr, code, el := runBin(t, "", bin, args(filepath.Join(base, "alone"), "1/2", "job-alone", "--barrier-timeout", "1s")...)
	if code != 1 || !strings.Contains(stderr, "shard 2/2 of the run had not registered") || el > 20*time.Second {
		t.Errorf("alone: exit %d after %v\n%s", code, el, stderr)
	}
	_, stderr, code, _ = runBin(t, "", bin, args(filepath.Join(base, "both"), "1/2", "job-both", "--start-at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))...)
	wantBadInput(t, "--barrier with --start-at", stderr, code, "--barrier and --start-at: give one")
}

// TestRecordToObjectStorage records through the proxy with --out s3://:
// a rolled file reaches the store while the recorder still runs, and
// after Ctrl-C every exchange is there, read back by inspect.
func TestRecordToObjectStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	s3test.Start(t, "caps")
	st, err := objstore.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
	}))
	t.Cleanup(up.Close)
	addr := loopback.FreeAddr(t)
	rec, recOut := start(t, bin, "http://"+addr+"/health", "record", "--route", "gateway@"+addr+"="+up.URL,
		"--out", "s3://caps/rec", "--roll", "1s", "--flush", "200ms")
	get := func(n int) {
		for i := 0; i < n; i++ {
			resp, err := http.Get("http://" + addr + "/v1/models")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	get(5)
	loc := objstore.Location{Bucket: "caps", Prefix: "rec"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		names, _ := st.Download(context.Background(), loc, t.TempDir())
		if slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "exchanges-") && strings.HasSuffix(n, ".parquet") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exchanges file in the store 15 s into the recording (%v)\n%s", names, recOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	get(5)
	interrupt(t, rec, recOut)
	stdout, stderr, code, _ := runBin(t, "", bin, "inspect", "--json", "s3://caps/rec")
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	var inv struct {
		Operations []struct{ Exchanges int64 } `json:"operations"`
	}
	if err := json.Unmarshal([]byte(stdout), &inv); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	var total int64
	for _, o := range inv.Operations {
		total += o.Exchanges
	}
	// The readiness probe's /health requests are recorded too.
	if total < 10 {
		t.Errorf("%d exchanges in the store, want the 10 sent at least\n%s", total, stdout)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "loadtape-s3*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	// A bucket nobody made: refused before recording, not at the first
	// roll (a recorder that starts would run until the deadline kills it).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errb strings.Builder
	nob := exec.CommandContext(ctx, bin, "record", "--route", "gateway@"+loopback.FreeAddr(t)+"="+up.URL, "--out", "s3://nobucket/rec")
	nob.Stderr = &errb
	code = 0
	var ee *exec.ExitError
	if err := nob.Run(); errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	wantBadInput(t, "record --out to a missing bucket", errb.String(), code, "--out s3://nobucket/rec: no such bucket")
}
