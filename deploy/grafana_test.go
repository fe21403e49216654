package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/loopback"
	"github.com/loadtape/loadtape/replay"
)

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr   string `json:"expr"`
			Legend string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardQueries runs every query of deploy/grafana/loadtape.json
// against a real Prometheus (Debian's prometheus package) scraping two
// shards of a real replay, and wants each to return series: the per-shard
// ones one series per shard.
func TestDashboardQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and a replay")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is not on PATH; CI must install it (apt-get install prometheus)")
		}
		t.Skip("prometheus is not installed (Debian: apt-get install prometheus)")
	}
	raw, err := os.ReadFile("grafana/loadtape.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("dashboard: %v (%d panels)", err, len(d.Panels))
	}

	// A streaming chat upstream; every 4th answer is a 500, so errors by
	// kind have series too.
	var n atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/v1/chat/completions" {
			fmt.Fprint(w, `{"ok":true}`)
			return
		}
		if n.Add(1)%4 == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":"boom"}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 4; i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"tok%d \"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	var xs []captures.Exchange
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := 0; i < 4; i++ {
		xs = append(xs, captures.Exchange{ID: fmt.Sprintf("x%d", i), Service: "gateway", Session: "s", Seq: int64(i),
			StartNS: t0 + int64(i)*int64(time.Second), DurationNS: int64(time.Millisecond), Status: 200,
			Operation: "chat.completions", Method: "POST", Path: "/v1/chat/completions",
			ReqHeaders:  []captures.Header{{Name: "Content-Type", Value: "application/json"}},
			RespHeaders: []captures.Header{{Name: "Content-Type", Value: "text/event-stream"}},
			ReqBody:     []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`),
			RespBody:    []byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n")})
	}
	prof, err := replay.ParseProfile([]byte(`
scenarios:
  chat:
    service: gateway
    stages: [{users: 4, duration: 60s}]
    spawn_rate: 100
    think: {constant: 50ms}
    mix: {chat.completions: 1}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}

	// Two shards, each serving its metrics.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	addrs := []string{loopback.FreeAddr(t), loopback.FreeAddr(t)}
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := replay.Run(ctx, replay.Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up.URL},
				Out: t.TempDir(), Seed: 1, Shard: fmt.Sprintf("%d/2", i+1), RunID: "dash", MetricsAddr: addr})
			if err != nil {
				t.Errorf("shard %d: %v", i+1, err)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	// Prometheus scraping both every second.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: loadtape\n    static_configs: [{targets: [%q, %q]}]\n", addrs[0], addrs[1])), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := loopback.FreeAddr(t)
	prom := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var promLog strings.Builder
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prom.Process.Kill(); _ = prom.Wait() }()

	query := func(expr string) (series int, err error) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(expr))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		for _, s := range r.Data.Result {
			if v, _ := s.Value[1].(string); v != "" {
				if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
					series++
				}
			}
		}
		return series, nil
	}
	// Grafana fills $__rate_interval (at least four scrape intervals).
	exprOf := func(e string) string { return strings.ReplaceAll(e, "$__rate_interval", "10s") }
	deadline := time.Now().Add(40 * time.Second)
	for {
		var missing []string
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				want := 1
				if strings.Contains(tg.Expr, "instance") {
					want = len(addrs)
				}
				got, err := query(exprOf(tg.Expr))
				if err != nil && !strings.Contains(err.Error(), "connection refused") {
					t.Fatalf("%s: %s: %v", p.Title, tg.Expr, err)
				}
				if got < want {
					missing = append(missing, fmt.Sprintf("%s: %s: %d series, want %d", p.Title, tg.Expr, got, want))
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queries without series after 40 s:\n%s\nprometheus:\n%s", strings.Join(missing, "\n"), promLog.String())
		}
		time.Sleep(time.Second)
	}
	t.Logf("%d panels: every query returned series from both shards", len(d.Panels))
}
