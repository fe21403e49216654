package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// gateway is the OpenAI-compatible service: /v1/chat/completions,
// /v1/models, /health and /metrics.
type gateway struct {
	cfg     Config
	gpu     *gpu
	started time.Time
	ids     atomic.Int64
}

func newGateway(cfg Config) *gateway {
	return &gateway{cfg: cfg, gpu: newGPU(cfg.Gateway, cfg.TimeScale), started: time.Now()}
}

func (g *gateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", g.chat)
	mux.HandleFunc("/v1/models", g.listModels)
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "service": "gateway"})
	})
	mux.HandleFunc("/metrics", g.metrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openAIError(w, http.StatusNotFound, "invalid_request_error", "unknown_url",
			fmt.Sprintf("Unknown request URL: %s %s.", r.Method, r.URL.Path))
	})
	return mux
}

// unloader runs until ctx ends, unloading idle on-demand models.
func (g *gateway) unloader(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.gpu.unloadIdle(now)
		}
	}
}

// openAIError writes OpenAI's error object.
func openAIError(w http.ResponseWriter, status int, typ, code, msg string) {
	var c any
	if code != "" {
		c = code
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (g *gateway) listModels(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		openAIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "Method not allowed: use GET.")
		return
	}
	var data []map[string]any
	for _, m := range g.cfg.Gateway.Models {
		data = append(data, map[string]any{"id": m.Name, "object": "model", "created": g.started.Unix(), "owned_by": "sim", "max_model_len": g.cfg.Gateway.MaxModelLen})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	MaxTokens     *int          `json:"max_tokens"`
	MaxCompletion *int          `json:"max_completion_tokens"`
	Temperature   *float64      `json:"temperature"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns a message's content, a string or a list of text parts.
func (m chatMessage) text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(m.Content, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
		b.WriteByte(' ')
	}
	return b.String()
}

// promptTokens estimates tokens as about 4/3 per word plus the chat template.
func promptTokens(msgs []chatMessage) int {
	n := 3
	for _, m := range msgs {
		n += 4 + (len(strings.Fields(m.text()))*4+2)/3
	}
	return n
}

func (g *gateway) parseChat(w http.ResponseWriter, r *http.Request) (*chatRequest, bool) {
	if r.Method != http.MethodPost {
		openAIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "Method not allowed: use POST.")
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "Could not read the request body: "+err.Error())
		return nil, false
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "",
			"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.) "+err.Error())
		return nil, false
	}
	switch {
	case req.Model == "":
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "you must provide a model parameter")
		return nil, false
	case len(req.Messages) == 0:
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", "[] is too short - 'messages'")
		return nil, false
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "user", "assistant", "tool", "developer":
		default:
			openAIError(w, http.StatusBadRequest, "invalid_request_error", "",
				fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'. (messages[%d].role)", m.Role, i))
			return nil, false
		}
	}
	if req.MaxTokens == nil {
		req.MaxTokens = req.MaxCompletion
	}
	if req.MaxTokens != nil && *req.MaxTokens < 1 {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf("max_tokens must be at least 1, got %d.", *req.MaxTokens))
		return nil, false
	}
	return &req, true
}

// completionLength picks how many tokens the model writes: deterministic in
// the prompt, between 70 % and 100 % of max_tokens ("length" at 100 %).
func completionLength(prompt string, maxTokens int) int {
	if maxTokens <= 16 {
		return maxTokens
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(prompt))
	frac := 0.7 + 0.3*float64(h.Sum32()%1001)/1000
	return max(1, min(maxTokens, int(frac*float64(maxTokens)+0.5)))
}

var vocabulary = strings.Fields(`a decorator in Python is a function that takes another function and extends its behaviour
without modifying it explicitly you apply it with the at sign above a definition the wrapper receives the arguments
calls the original and can add logging timing caching or access control GPU kernels run many threads so keep data on
the device batch your work and avoid copies between host and device memory profile first then optimise the hot loop`)

func (g *gateway) chat(w http.ResponseWriter, r *http.Request) {
	req, ok := g.parseChat(w, r)
	if !ok {
		return
	}
	gc := g.cfg.Gateway
	model := req.Model
	if target, ok := gc.Aliases[model]; ok {
		model = target
	}
	if _, ok := g.gpu.models[model]; !ok {
		openAIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", req.Model))
		return
	}
	maxTokens := gc.DefaultMaxTokens
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	var prompt strings.Builder
	for _, m := range req.Messages {
		prompt.WriteString(m.text())
	}
	pt := promptTokens(req.Messages)
	if pt+maxTokens > gc.MaxModelLen {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", "",
			fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				gc.MaxModelLen, pt+maxTokens, pt, maxTokens))
		return
	}
	ctx := r.Context()
	releaseModel, err := g.gpu.ensureLoaded(ctx, model)
	if err != nil {
		g.serverError(w, err)
		return
	}
	defer releaseModel()
	if err := g.gpu.acquire(ctx, model); err != nil {
		return // client left while waiting
	}
	defer g.gpu.release(model)
	kv := float64(pt) * gc.KVMiBPerToken
	if err := g.gpu.alloc(kv); err != nil {
		g.serverError(w, err)
		return
	}
	defer func() { g.gpu.free(kv) }()
	if !sleepCtx(ctx, time.Duration(float64(gc.PrefillPerToken)*float64(pt)*g.cfg.TimeScale)) {
		return
	}

	n := completionLength(prompt.String(), maxTokens)
	finish := "stop"
	if n == maxTokens {
		finish = "length"
	}
	id := fmt.Sprintf("chatcmpl-sim%016x", g.ids.Add(1))
	created := time.Now().Unix()
	usage := map[string]any{"prompt_tokens": pt, "completion_tokens": n, "total_tokens": pt + n}

	var sse *sseWriter
	if req.Stream {
		sse = newSSE(w)
		sse.event(chunk(id, created, req.Model, delta{Role: "assistant", Content: ptr("")}, nil))
		sse.flush()
	}
	var text strings.Builder
	start := hashWord(prompt.String())
	// Decode on absolute deadlines: sleeping per step would drift by the
	// timer overhead, and waking per token at small time scales wastes the CPU,
	// so each wake emits every token whose deadline has passed (at least 1 ms apart).
	deadline := time.Now()
	for i := 0; i < n; {
		deadline = deadline.Add(g.gpu.tokenTime())
		if wait := time.Until(deadline); wait > time.Millisecond || i == n-1 {
			if !sleepCtx(ctx, wait) {
				return
			}
		}
		batch := 1
		for now := time.Now(); i+batch < n && !deadline.Add(g.gpu.tokenTime()).After(now) && batch < 64; batch++ {
			deadline = deadline.Add(g.gpu.tokenTime())
		}
		more := float64(batch) * gc.KVMiBPerToken
		if err := g.gpu.alloc(more); err != nil {
			if sse != nil {
				sse.event(map[string]any{"error": map[string]any{"message": err.Error(), "type": "InternalServerError", "param": nil, "code": 500}})
				sse.done()
				return
			}
			g.serverError(w, err)
			return
		}
		kv += more
		for j := 0; j < batch; j++ {
			word := vocabulary[(start+i+j)%len(vocabulary)]
			if i+j > 0 {
				word = " " + word
			}
			text.WriteString(word)
			if sse != nil {
				sse.event(chunk(id, created, req.Model, delta{Content: &word}, nil))
			}
		}
		i += batch
		if sse != nil {
			sse.flush()
		}
	}
	if sse != nil {
		sse.event(chunk(id, created, req.Model, delta{}, &finish))
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			sse.event(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
				"system_fingerprint": "fp_sim", "choices": []any{}, "usage": usage})
		}
		sse.done()
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": req.Model, "system_fingerprint": "fp_sim",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text.String()},
			"logprobs": nil, "finish_reason": finish}},
		"usage": usage,
	})
}

func hashWord(s string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return int(h.Sum32() % uint32(len(vocabulary)))
}

// Stream chunks are typed structs, not maps: a streamed completion encodes
// one per token, and at small time scales map encoding (sorted keys,
// reflection per entry) was the sim's largest CPU cost.
type chatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	Logprobs     *string `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func chunk(id string, created int64, model string, d delta, finish *string) chatChunk {
	return chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model,
		SystemFingerprint: "fp_sim", Choices: []chunkChoice{{Delta: d, FinishReason: finish}}}
}

// serverError answers a failure before any byte of the response was sent:
// out of memory is a 500 with the CUDA text, as vLLM reports it.
func (g *gateway) serverError(w http.ResponseWriter, err error) {
	var oom *errOOM
	if errors.As(err, &oom) {
		openAIError(w, http.StatusInternalServerError, "InternalServerError", "", err.Error())
		return
	}
	openAIError(w, http.StatusServiceUnavailable, "server_error", "", err.Error())
}

// sseWriter writes OpenAI's server-sent events.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) *sseWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sseWriter{w: w, f: f}
}

func (s *sseWriter) event(v any) {
	b, _ := json.Marshal(v)
	buf := make([]byte, 0, len(b)+8)
	buf = append(append(append(buf, "data: "...), b...), "\n\n"...)
	_, _ = s.w.Write(buf)
}

func (s *sseWriter) flush() {
	if s.f != nil {
		s.f.Flush()
	}
}

func (s *sseWriter) done() {
	_, _ = io.WriteString(s.w, "data: [DONE]\n\n")
	s.flush()
}

// sleepCtx sleeps d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *gateway) metrics(w http.ResponseWriter, r *http.Request) {
	s := g.gpu.snapshot()
	m := newPromText()
	gpuLabels := `gpu="0",UUID="GPU-5151e000-0000-4000-8000-000000000000",device="nvidia0",modelName="NVIDIA GeForce RTX 4050 Laptop GPU",Hostname="loadtape-sim"`
	m.gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", gpuLabels, s.util)
	m.gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", gpuLabels, s.usedMiB)
	m.gauge("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", gpuLabels, s.freeMiB)
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m.gauge("vllm:num_requests_running", "Number of requests currently running on GPU.", fmt.Sprintf(`model_name=%q`, n), float64(s.running[n]))
	}
	for _, n := range names {
		m.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", fmt.Sprintf(`model_name=%q`, n), float64(s.waiting[n]))
	}
	kvCap := g.cfg.Gateway.GPUMemoryMiB - g.cfg.Gateway.ReservedMiB
	for _, mc := range g.cfg.Gateway.Models {
		if s.loaded[mc.Name] {
			kvCap -= mc.WeightsMiB
		}
	}
	perc := 1.0
	if kvCap > 0 {
		perc = min(1, s.kvMiB/kvCap)
	}
	m.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", "", perc)
	for _, n := range names {
		v := 0.0
		if s.loaded[n] {
			v = 1
		}
		m.gauge("sim_gateway_model_loaded", "Whether the model's weights are in GPU memory.", fmt.Sprintf(`model_name=%q`, n), v)
	}
	m.counter("sim_gateway_oom_errors_total", "Requests failed with CUDA out of memory.", "", float64(s.ooms))
	m.write(w)
}
