package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A decode step costs decode_per_token × (1 + batch_slowdown × (running − 1)).
func TestGPUTokenTimeGrowsWithTheBatch(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig().Gateway
	cfg.BatchSlots, cfg.BatchSlowdown, cfg.DecodePerToken = 8, 0.25, 4*time.Millisecond
	g := newGPU(cfg, 0.5)
	for n := 1; n <= 5; n++ {
		if err := g.acquire(context.Background(), "chat-7b"); err != nil {
			t.Fatal(err)
		}
		want := time.Duration(float64(4*time.Millisecond) * (1 + 0.25*float64(n-1)) * 0.5)
		if got := g.tokenTime(); got != want {
			t.Errorf("%d running: step %v, want %v", n, got, want)
		}
	}
	flat := cfg
	flat.BatchSlowdown = 0
	g = newGPU(flat, 1)
	for range 5 {
		_ = g.acquire(context.Background(), "chat-7b")
	}
	if got := g.tokenTime(); got != 4*time.Millisecond {
		t.Errorf("batch_slowdown 0: step %v with 5 running, want 4ms", got)
	}
}

// Past batch_slots a request waits for a slot before its prefill: with
// two slots, two of four streams sent at once get their first token after
// the first two finished, the others at once.
func TestGatewayBatchSlotsDelayTheFirstToken(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Gateway.BatchSlots, cfg.Gateway.BatchSlowdown = 2, 0
	cfg.Gateway.DecodePerToken, cfg.Gateway.PrefillPerToken = 5*time.Millisecond, 0
	cfg.Gateway.GPUMemoryMiB = 81920
	s := startSuite(t, cfg)
	url := s.URLs()["gateway"] + "/v1/chat/completions"
	type timing struct{ ttft, total time.Duration }
	out := make([]timing, 4)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(chatBody("chat-7b", 40, true))
			st := time.Now()
			resp, err := http.Post(url, "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if l := sc.Text(); out[i].ttft == 0 && strings.Contains(l, `"content":"`) && !strings.Contains(l, `"content":""`) {
					out[i].ttft = time.Since(st)
				}
			}
			out[i].total = time.Since(st)
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b timing) int { return int(a.ttft - b.ttft) })
	// 28–40 tokens of 5 ms: a request holds its slot 140–200 ms.
	first := min(out[0].total, out[1].total)
	for _, w := range out[2:] {
		if w.ttft < first*7/10 {
			t.Errorf("a request past the two slots had its first token after %v, want it to wait most of the %v a slot was held: %+v", w.ttft, first, out)
		}
	}
	if out[1].ttft > first/2 {
		t.Errorf("the two requests that got a slot waited %v for a first token: %+v", out[1].ttft, out)
	}
}

// The default config plants a slot limit and a batch slowdown; the healthy
// one has neither at the built-in profile's 100 users.
func TestConfigsPlantQueueingAndDecodeSlowdown(t *testing.T) {
	t.Parallel()
	d, h := DefaultConfig().Gateway, HealthyConfig().Gateway
	if d.BatchSlots >= 100 || d.BatchSlowdown*float64(d.BatchSlots-1) < 0.5 {
		t.Errorf("default: %d slots, slowdown %v: want fewer slots than 100 users and a full batch ≥ 1.5× slower per step", d.BatchSlots, d.BatchSlowdown)
	}
	if h.BatchSlots < 100 || h.BatchSlowdown != 0 {
		t.Errorf("healthy: %d slots, slowdown %v: want room for 100 users and no slowdown", h.BatchSlots, h.BatchSlowdown)
	}
}
