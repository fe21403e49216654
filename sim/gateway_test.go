package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/nodefixture"
)

func chatBody(model string, maxTokens int, stream bool) map[string]any {
	b := map[string]any{
		"model":      model,
		"messages":   []any{map[string]any{"role": "user", "content": "Explain Python decorators"}},
		"max_tokens": maxTokens,
	}
	if stream {
		b["stream"] = true
		b["stream_options"] = map[string]any{"include_usage": true}
	}
	return b
}

func TestGatewayChatCompletion(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	status, body := postJSON(t, s.URLs()["gateway"]+"/v1/chat/completions", chatBody("qwen2.5-14b-instruct", 16, false))
	if status != 200 {
		t.Fatalf("status %d, want 200: %s", status, body)
	}
	m := decode(t, body)
	if m["object"] != "chat.completion" || !strings.HasPrefix(m["id"].(string), "chatcmpl-") || m["model"] != "qwen2.5-14b-instruct" {
		t.Errorf("envelope = %v", m)
	}
	choice := m["choices"].([]any)[0].(map[string]any)
	msg := choice["message"].(map[string]any)
	if msg["role"] != "assistant" || len(strings.Fields(msg["content"].(string))) != 16 {
		t.Errorf("message = %v, want 16 words from the assistant", msg)
	}
	if choice["finish_reason"] != "length" {
		t.Errorf("finish_reason = %v, want length (up to 16 tokens the model writes all it may)", choice["finish_reason"])
	}
	u := m["usage"].(map[string]any)
	if u["completion_tokens"].(float64) != 16 || u["prompt_tokens"].(float64) <= 0 || u["total_tokens"].(float64) != u["prompt_tokens"].(float64)+16 {
		t.Errorf("usage = %v", u)
	}
}

// readSSE returns the data payloads of an event stream.
func readSSE(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestGatewayStreamIncludeUsage(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	status, body := postJSON(t, s.URLs()["gateway"]+"/v1/chat/completions", chatBody("chat-7b", 100, true))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	events := readSSE(t, body)
	if events[len(events)-1] != "[DONE]" {
		t.Fatalf("last event %q, want [DONE]", events[len(events)-1])
	}
	var usage map[string]any
	var content strings.Builder
	for _, e := range events[:len(events)-1] {
		m := decode(t, []byte(e))
		if m["object"] != "chat.completion.chunk" {
			t.Fatalf("chunk object = %v", m["object"])
		}
		ch := m["choices"].([]any)
		if len(ch) == 0 {
			usage = m["usage"].(map[string]any)
			continue
		}
		if c, ok := ch[0].(map[string]any)["delta"].(map[string]any)["content"].(string); ok {
			content.WriteString(c)
		}
	}
	if usage == nil {
		t.Fatal("no usage chunk with include_usage")
	}
	if got := len(strings.Fields(content.String())); float64(got) != usage["completion_tokens"].(float64) {
		t.Errorf("streamed %d words, usage says %v completion tokens", got, usage["completion_tokens"])
	}
}

func TestGatewayErrors(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	url := s.URLs()["gateway"]
	cases := []struct {
		name   string
		body   any
		status int
		code   any
	}{
		{"bad JSON", `{"model": "chat-7b", "messages": [`, 400, nil},
		{"not an object", `[1,2,3]`, 400, nil},
		{"no model", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}, 400, nil},
		{"no messages", map[string]any{"model": "chat-7b", "messages": []any{}}, 400, nil},
		{"bad role", map[string]any{"model": "chat-7b", "messages": []any{map[string]any{"role": "robot", "content": "hi"}}}, 400, nil},
		{"zero max_tokens", map[string]any{"model": "chat-7b", "max_tokens": 0, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}, 400, nil},
		{"over context", chatBody("chat-7b", 100000, false), 400, nil},
		{"unknown model", chatBody("gpt-nonexistent", 10, false), 404, "model_not_found"},
	}
	for _, c := range cases {
		status, body := postJSON(t, url+"/v1/chat/completions", c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, status, c.status, body)
			continue
		}
		e, ok := decode(t, body)["error"].(map[string]any)
		if !ok || e["message"] == "" || e["type"] != "invalid_request_error" || e["code"] != c.code {
			t.Errorf("%s: error = %v, want OpenAI's shape with code %v", c.name, e, c.code)
		}
	}
	if status, body := getBody(t, url+"/v1/chat/completions"); status != 405 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("GET chat: %d %s", status, body)
	}
	if status, body := getBody(t, url+"/v2/nothing"); status != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("unknown path: %d %s", status, body)
	}
	status, body := getBody(t, url+"/v1/models")
	if status != 200 || !strings.Contains(string(body), `"chat-7b"`) || !strings.Contains(string(body), `"code-7b"`) {
		t.Errorf("models: %d %s", status, body)
	}
	if status, _ := getBody(t, url+"/health"); status != 200 {
		t.Errorf("health: %d", status)
	}
}

// oomConfig fits exactly fit requests' KV cache of prompt+2 tokens; each
// request decodes 2 tokens slowly so that all are active at once.
func oomConfig(fit int) (Config, int) {
	c := DefaultConfig()
	c.TimeScale = 1
	g := &c.Gateway
	g.Models = []ModelConfig{{Name: "chat-7b", WeightsMiB: 100, Load: "startup"}}
	g.Aliases = nil
	g.ReservedMiB = 100
	g.KVMiBPerToken = 1
	g.DecodePerToken = 300 * time.Millisecond // requests overlap even on a busy machine
	g.PrefillPerToken = 0
	pt := promptTokens([]chatMessage{{Role: "user", Content: json.RawMessage(`"Explain Python decorators"`)}})
	g.GPUMemoryMiB = 200 + float64(fit*(pt+2))
	return c, pt
}

func TestGatewayOutOfMemoryPastCapacity(t *testing.T) {
	t.Parallel()
	const fit, sent = 3, 6
	cfg, _ := oomConfig(fit)
	s := startSuite(t, cfg)
	var mu sync.Mutex
	var ok, oom int
	var wg sync.WaitGroup
	for range sent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := postJSON(t, s.URLs()["gateway"]+"/v1/chat/completions", chatBody("chat-7b", 2, false))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == 200:
				ok++
			case status == 500 && strings.Contains(string(body), "CUDA out of memory"):
				oom++
			default:
				t.Errorf("status %d: %s", status, body)
			}
		}()
	}
	wg.Wait()
	if ok != fit || oom != sent-fit {
		t.Errorf("%d succeeded and %d ran out of memory, want %d and %d", ok, oom, fit, sent-fit)
	}
	_, metrics := getBody(t, s.URLs()["gateway"]+"/metrics")
	if !strings.Contains(string(metrics), "sim_gateway_oom_errors_total 3") {
		t.Errorf("metrics do not count 3 OOMs:\n%s", metrics)
	}
}

func TestGatewayOutOfMemoryMidStream(t *testing.T) {
	t.Parallel()
	// Two prompts fit, but only one of them can grow by a token.
	cfg, pt := oomConfig(0)
	cfg.Gateway.GPUMemoryMiB = 200 + float64(2*pt+1)
	s := startSuite(t, cfg)
	var wg sync.WaitGroup
	results := make([][]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := postJSON(t, s.URLs()["gateway"]+"/v1/chat/completions", chatBody("chat-7b", 2, true))
			if status != 200 {
				t.Errorf("status %d before the first byte; want the failure mid-stream: %s", status, body)
			}
			results[i] = readSSE(t, body)
		}()
	}
	wg.Wait()
	errorsSeen := 0
	for _, ev := range results {
		for _, e := range ev {
			if strings.HasPrefix(e, `{"error"`) {
				errorsSeen++
				if !strings.Contains(e, "CUDA out of memory") || ev[len(ev)-1] != "[DONE]" {
					t.Errorf("error event %s, stream %v", e, ev)
				}
			}
		}
	}
	if errorsSeen != 1 {
		t.Errorf("%d streams failed mid-stream, want 1: %v", errorsSeen, results)
	}
}

func TestGatewayMetricsUnderLoad(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Gateway.UtilFullBatch = 1
	cfg.Gateway.DecodePerToken = 150 * time.Millisecond // 16 tokens: 2.4 s, sampled at 1.4 s
	s := startSuite(t, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		postJSON(t, s.URLs()["gateway"]+"/v1/chat/completions", chatBody("chat-7b", 16, false))
	}()
	time.Sleep(1400 * time.Millisecond)
	_, m := getBody(t, s.URLs()["gateway"]+"/metrics")
	<-done
	metrics := parseProm(string(m))
	if u := metrics["DCGM_FI_DEV_GPU_UTIL"]; u < 90 {
		t.Errorf("GPU util %v with the batch full for a second, want ≥ 90", u)
	}
	used, free := metrics["DCGM_FI_DEV_FB_USED"], metrics["DCGM_FI_DEV_FB_FREE"]
	if used < 4096+1152 || used+free != 6144 {
		t.Errorf("FB used %v free %v, want weights+reserved in use and a 6144 MiB total", used, free)
	}
	if metrics[`vllm:num_requests_running{model_name="chat-7b"}`] != 1 {
		t.Errorf("running = %v, want 1\n%s", metrics[`vllm:num_requests_running{model_name="chat-7b"}`], m)
	}
	if _, ok := metrics[`vllm:num_requests_waiting{model_name="chat-7b"}`]; !ok {
		t.Errorf("no vllm:num_requests_waiting\n%s", m)
	}
}

// parseProm maps "name" (labels dropped for DCGM) or "name{labels}" to values.
func parseProm(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		_ = json.Unmarshal([]byte(line[i+1:]), &v)
		key := line[:i]
		if strings.HasPrefix(key, "DCGM_") {
			key = key[:strings.IndexByte(key, '{')]
		}
		out[key] = v
	}
	return out
}

func TestGatewayOnDemandModelLoad(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.Gateway.Models[1].Load = "on_demand"
	cfg.Gateway.Models[1].LoadTime = 20 * time.Second // 200 ms at this scale
	cfg.Gateway.Models[1].UnloadIdle = 20 * time.Second
	s := startSuite(t, cfg)
	url := s.URLs()["gateway"]
	_, m := getBody(t, url+"/metrics")
	before := parseProm(string(m))["DCGM_FI_DEV_FB_USED"]
	start := time.Now()
	if status, body := postJSON(t, url+"/v1/chat/completions", chatBody("code-7b", 2, false)); status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("first code-7b request took %v, want ≥ the 200 ms load", el)
	}
	_, m = getBody(t, url+"/metrics")
	if after := parseProm(string(m))["DCGM_FI_DEV_FB_USED"]; after-before != 2048 {
		t.Errorf("FB used grew by %v MiB, want code-7b's 2048", after-before)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		_, m = getBody(t, url+"/metrics")
		if parseProm(string(m))[`sim_gateway_model_loaded{model_name="code-7b"}`] == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("code-7b was not unloaded after its idle time")
}

// TestGatewayOpenAINodeClient streams from the gateway with the official
// npm openai client (include_usage), and checks its non-streamed call, model
// listing and the error it raises for an unknown model.
func TestGatewayOpenAINodeClient(t *testing.T) {
	t.Parallel()
	dir, node := nodefixture.Dir(t, "openai")
	s := startSuite(t, fastConfig())
	cmd := exec.Command(node, filepath.Join(dir, "sim-openai-stream.mjs"), s.URLs()["gateway"]+"/v1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Chunks   int
		Content  string
		Usage    struct{ PromptTokens, CompletionTokens int } `json:"usage"`
		Finish   string
		Object   string
		Once     struct{ Object, Content string }
		Models   []string
		NotFound struct {
			Status int
			Code   string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	var u struct {
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	_ = json.Unmarshal(out, &u)
	words := len(strings.Fields(got.Content))
	if u.Usage.CompletionTokens == 0 || words != u.Usage.CompletionTokens || got.Chunks < words {
		t.Errorf("streamed %d words in %d chunks, usage %+v", words, got.Chunks, u.Usage)
	}
	if got.Object != "chat.completion.chunk" || got.Finish == "" {
		t.Errorf("object %q finish %q", got.Object, got.Finish)
	}
	if got.Once.Object != "chat.completion" || got.Once.Content == "" {
		t.Errorf("non-streamed: %+v", got.Once)
	}
	if strings.Join(got.Models, ",") != "chat-7b,code-7b" {
		t.Errorf("models %v", got.Models)
	}
	if got.NotFound.Status != http.StatusNotFound || got.NotFound.Code != "model_not_found" {
		t.Errorf("unknown model raised %+v, want 404 model_not_found", got.NotFound)
	}
}
