package analyze_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/replay"
	"github.com/loadtape/loadtape/runspec"
)

// replay judges abort and search targets while it runs, from its own
// rows; analyze judges them afterwards. Both must read the same value
// from the same stage: here each of six scenarios searches one user
// count (from = max, one stage) on one metric, and the value run.json
// records for that stage is analyze's for it.
func TestReplayJudgesTargetsAsAnalyzeDoes(t *testing.T) {
	t.Parallel()
	var mu = make(chan struct{}, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			fmt.Fprint(w, `{"status":"ok"}`)
			return
		}
		mu <- struct{}{}
		d := time.Duration(2+rng.IntN(30)) * time.Millisecond
		fail := rng.IntN(10) == 0
		<-mu
		time.Sleep(d)
		if fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"content":"Hi"}}]}`)
	}))
	defer srv.Close()

	metrics := []string{"p50", "p95", "avg", "ttfb_p90", "error_rate", "rps"}
	var y strings.Builder
	y.WriteString("scenarios:\n")
	for i := range metrics {
		fmt.Fprintf(&y, "  s%d:\n    service: gateway\n    mix: {chat.completions: 1}\n    think: {constant: 5ms}\n    stages: [{duration: 2s}]\n    search: {target: %d, users: {from: 3, max: 3}}\n", i, i+1)
	}
	y.WriteString("targets:\n")
	for i, m := range metrics {
		bound := "10s"
		switch m {
		case "error_rate":
			bound = "100%"
		case "rps":
			bound = "0"
		}
		side := "max"
		if m == "rps" {
			side = "min"
		}
		fmt.Fprintf(&y, "  - {scenario: s%d, metric: %s, %s: %s}\n", i, m, side, bound)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var xs []captures.Exchange
	for q := range 4 {
		xs = append(xs, captures.Exchange{ID: fmt.Sprint(q), Service: "gateway", Session: "s", Seq: int64(q),
			StartNS: t0 + int64(q)*int64(time.Second), DurationNS: int64(time.Millisecond), Scheme: "http", Host: "recorded.invalid:9", Status: 200,
			Operation: "chat.completions", Method: "POST", Path: "/v1/chat/completions",
			ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"}},
			ReqBody:    []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)})
	}
	out := filepath.Join(dir, "run")
	if _, err := replay.Run(context.Background(), replay.Options{ProfilePath: path, Exchanges: xs,
		Targets: map[string]string{"gateway": srv.URL}, Out: out}); err != nil {
		t.Fatal(err)
	}
	rf, err := runspec.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := analyze.Analyze(analyze.Options{Runs: []string{out}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Search) != len(metrics) {
		t.Fatalf("run.json has %d searches, want %d", len(rf.Search), len(metrics))
	}
	for _, s := range rf.Search {
		k, _ := strconv.Atoi(strings.TrimPrefix(s.Scenario, "s"))
		if len(s.Steps) != 1 || s.Steps[0].Value == nil {
			t.Errorf("%s: steps %+v, want one measured stage", s.Scenario, s.Steps)
			continue
		}
		live := *s.Steps[0].Value
		var got *analyze.TargetResult
		for j := range sum.Targets {
			if sum.Targets[j].Scenario == s.Scenario {
				got = &sum.Targets[j]
			}
		}
		if got == nil || got.Value == nil {
			t.Errorf("%s %s: analyze has no value", s.Scenario, metrics[k])
			continue
		}
		// analyze rounds to 4 decimals.
		if math.Abs(*got.Value-live) > 5.1e-5 {
			t.Errorf("%s %s: replay judged %v, analyze %v", s.Scenario, metrics[k], live, *got.Value)
		} else {
			t.Logf("%s %s: replay %v, analyze %v", s.Scenario, metrics[k], live, *got.Value)
		}
	}
}
