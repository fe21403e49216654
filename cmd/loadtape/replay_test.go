package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/keeptarget"
)

// These tests run `loadtape replay` as a person would, against a target
// that keeps every request it receives.

// writeCredentialCapture writes a gateway capture whose recorder redacted
// the Authorization header, an api_key query parameter and an api_key
// field of the JSON body.
func writeCredentialCapture(t *testing.T) string {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var xs []captures.Exchange
	for i := 0; i < 5; i++ {
		xs = append(xs, captures.Exchange{ID: fmt.Sprintf("c%d", i), Service: "gateway", Session: "s", Seq: int64(i),
			StartNS: t0 + int64(i)*int64(time.Second), DurationNS: int64(time.Millisecond),
			Operation: "chat.completions", Method: "POST", Path: "/v1/chat/completions", Status: 200,
			Query: "api_key=redacted%3A0123456789abcdef",
			ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"},
				{Name: "Authorization", Value: "redacted:fedcba9876543210"}},
			ReqBody: []byte(`{"model":"m","api_key":"redacted:00112233aabbccdd","messages":[{"role":"user","content":"hi"}]}`)})
	}
	return writeCapture(t, xs)
}

func writeProfile(t *testing.T, y string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBin runs bin with args (through sh when a shell prefix is given) and
// returns stdout, stderr, the exit code and the wall time.
func runBin(t *testing.T, shPrefix, bin string, args ...string) (string, string, int, time.Duration) {
	t.Helper()
	var cmd *exec.Cmd
	if shPrefix != "" {
		cmd = exec.Command("sh", append([]string{"-c", shPrefix + ` && exec "$0" "$@"`, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code, el
}

// wantBadInput wants exit 2 with one line on stderr holding every want.
func wantBadInput(t *testing.T, what, stderr string, code int, want ...string) {
	t.Helper()
	if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("%s: exit %d, want 2 with one line; stderr:\n%s", what, code, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr lacks %q:\n%s", what, w, stderr)
		}
	}
}

func TestReplayBinaryRunSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin := buildBinary(t)
	caps := writeCredentialCapture(t)
	small := writeProfile(t, `
scenarios: {gateway: {stages: [{users: 2, duration: 1s}], think: {constant: 50ms}, mix: {chat.completions: 1}}}
`)
	creds := []string{"--header", "Authorization: Bearer live-token", "--secret", "api_key=live-key"}
	replayArgs := func(target, profile, out string, extra ...string) []string {
		return append([]string{"replay", "--captures", caps, "--profile", profile, "--target", "gateway=" + target, "--out", out}, extra...)
	}

	t.Run("credentials", func(t *testing.T) {
		tgt := keeptarget.Start(t, 0)
		out := filepath.Join(t.TempDir(), "run")
		_, stderr, code, _ := runBin(t, "", bin, replayArgs(tgt.URL, small, out)...)
		wantBadInput(t, "no credentials", stderr, code, "header Authorization (5 requests of gateway): --header 'Authorization: ...'",
			"query parameter api_key", "body field api_key", "--secret api_key=...", "--allow-missing-credentials")
		if n := len(tgt.Received()); n != 0 {
			t.Errorf("a refused run sent %d requests", n)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a refused run wrote %s", out)
		}

		stdout, stderr, code, _ := runBin(t, "", bin, replayArgs(tgt.URL, small, out, creds...)...)
		if code != 0 {
			t.Fatalf("with credentials: exit %d\n%s%s", code, stdout, stderr)
		}
		got := tgt.Received()
		if len(got) < 4 {
			t.Fatalf("%d requests received", len(got))
		}
		for _, r := range got {
			if captures.ContainsPlaceholder(r) || strings.Contains(r, "redacted") {
				t.Fatalf("a placeholder reached the target:\n%s", r)
			}
			for _, w := range []string{"?api_key=live-key", "Authorization: Bearer live-token", `"api_key":"live-key"`} {
				if !strings.Contains(r, w) {
					t.Fatalf("request lacks %q:\n%s", w, r)
				}
			}
		}

		tgt = keeptarget.Start(t, 0)
		stdout, stderr, code, _ = runBin(t, "", bin, replayArgs(tgt.URL, small, filepath.Join(t.TempDir(), "run"), "--allow-missing-credentials")...)
		if code != 0 {
			t.Fatalf("--allow-missing-credentials: exit %d\n%s%s", code, stdout, stderr)
		}
		for _, r := range tgt.Received() {
			if captures.ContainsPlaceholder(r) || strings.Contains(r, "redacted") || strings.Contains(r, "api_key") || strings.Contains(r, "Authorization") {
				t.Fatalf("sent without credentials, a request still carries one:\n%s", r)
			}
		}
	})

	t.Run("out", func(t *testing.T) {
		tgt := keeptarget.Start(t, 0)
		out := filepath.Join(t.TempDir(), "run")
		if _, stderr, code, _ := runBin(t, "", bin, replayArgs(tgt.URL, small, out, creds...)...); code != 0 {
			t.Fatalf("first run: exit %d\n%s", code, stderr)
		}
		first := runFile(t, out)
		sent := len(tgt.Received())
		_, stderr, code, _ := runBin(t, "", bin, replayArgs(tgt.URL, small, out, creds...)...)
		wantBadInput(t, "non-empty --out", stderr, code, "--out "+out, "not empty", "--force")
		if n := len(tgt.Received()); n != sent {
			t.Errorf("a refused run sent %d requests", n-sent)
		}
		if again := runFile(t, out); again["id"] != first["id"] {
			t.Errorf("a refused run replaced run.json")
		}
		if _, stderr, code, _ := runBin(t, "", bin, replayArgs(tgt.URL, small, out, append(creds, "--force")...)...); code != 0 {
			t.Fatalf("--force: exit %d\n%s", code, stderr)
		}
		second := runFile(t, out)
		r, err := captures.NewReader[captures.Result]([]string{out}, captures.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows := 0
		for r.Next() {
			for _, row := range r.Batch() {
				rows++
				if row.Run != second["id"] {
					t.Fatalf("after --force a row of run %s is left beside run %v", row.Run, second["id"])
				}
			}
		}
		if r.Err() != nil || rows == 0 || float64(rows) != second["requests"] {
			t.Errorf("%d rows after --force (err %v), run.json says %v", rows, r.Err(), second["requests"])
		}
	})

	t.Run("user limit", func(t *testing.T) {
		tgt := keeptarget.Start(t, 0)
		huge := writeProfile(t, `scenarios: {gateway: {stages: [{users: 10000000, duration: 2s}], mix: {chat.completions: 1}}}`)
		_, stderr, code, el := runBin(t, "", bin, replayArgs(tgt.URL, huge, filepath.Join(t.TempDir(), "run"), creds...)...)
		wantBadInput(t, "10,000,000 users", stderr, code, `scenario "gateway" stage 1: 10000000 users is more than this machine can hold`)
		if el > 10*time.Second {
			t.Errorf("refusing took %v", el)
		}
		// 300 open files hold 300 − 256 kept for the run = 44 users.
		many := writeProfile(t, `scenarios: {gateway: {stages: [{users: 1000, duration: 2s}], mix: {chat.completions: 1}}}`)
		_, stderr, code, _ = runBin(t, "ulimit -n 300", bin, replayArgs(tgt.URL, many, filepath.Join(t.TempDir(), "run"), creds...)...)
		wantBadInput(t, "1000 users with ulimit -n 300", stderr, code, "1000 users", "can hold: 44", "open files limit 300")
		if n := len(tgt.Received()); n != 0 {
			t.Errorf("refused runs sent %d requests", n)
		}
	})

	t.Run("max-run", func(t *testing.T) {
		tgt := keeptarget.Start(t, 30*time.Second)
		long := writeProfile(t, `scenarios: {gateway: {stages: [{users: 20, duration: 1m}], mix: {chat.completions: 1}}}`)
		out := filepath.Join(t.TempDir(), "run")
		stdout, stderr, code, el := runBin(t, "", bin, replayArgs(tgt.URL, long, out, append(creds, "--max-run", "3s")...)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		// The process's own start and the build of its flags count too:
		// a second of slack on top of the second the limit allows.
		if el > 5*time.Second {
			t.Errorf("--max-run 3s: the command took %v", el)
		}
		if !strings.Contains(stdout, "interrupted (--max-run 3s reached)") || !strings.Contains(stdout, "20 cut off") {
			t.Errorf("stdout %q", stdout)
		}
		rj := runFile(t, out)
		if rj["ended_by"] != "max_run" || rj["end_reason"] != "--max-run 3s reached" || rj["interrupted"] != true {
			t.Errorf("run.json ended_by %v end_reason %v interrupted %v", rj["ended_by"], rj["end_reason"], rj["interrupted"])
		}
	})
}

func runFile(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
