// Package fake makes deterministic, realistic-looking capture rows for the
// captures package's tests, benchmarks and the committed sample capture:
// OpenAI chat exchanges with JSON bodies of natural-language-like text,
// streamed and not, model listings, health checks, RAG queries and MCP
// tool calls, plus replay results and resource samples.
package fake

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Gen makes rows from a seeded random source; the same seed gives the same
// rows.
type Gen struct {
	rng   *rand.Rand
	zipf  *rand.Zipf
	words []string
	t0    int64
	n     int64
}

// New returns a generator whose rows start at unix ns t0.
func New(seed uint64, t0 int64) *Gen {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &Gen{rng: rng, t0: t0}
	// A fixed vocabulary with Zipf-distributed use, like natural language:
	// a few words very often, most words rarely.
	vr := rand.New(rand.NewPCG(1, 2))
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	g.words = make([]string, 4000)
	for i := range g.words {
		n := 2 + vr.IntN(4) + vr.IntN(5)
		b := make([]byte, n)
		for j := range b {
			b[j] = letters[min(vr.IntN(26), vr.IntN(26))]
		}
		g.words[i] = string(b)
	}
	g.zipf = rand.NewZipf(rng, 1.1, 1, uint64(len(g.words)-1))
	return g
}

// Text returns about n bytes of word-like text.
func (g *Gen) Text(n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		if b.Len() > 0 {
			if g.rng.IntN(12) == 0 {
				b.WriteString(". ")
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(g.words[g.zipf.Uint64()])
	}
	return b.String()
}

func (g *Gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.IntN(16)]
	}
	return string(b)
}

var (
	models        = []string{"gpt-4o-mini", "llama-3.1-8b-instruct", "qwen2.5-7b-instruct"}
	systemPrompts = []string{
		"You are a helpful assistant for the support team. Answer briefly and cite the knowledge base article when you use one.",
		"You are a coding assistant. Prefer short, correct answers with code blocks. Ask for clarification when the request is ambiguous.",
		"You summarise documents for analysts. Keep numbers exact, keep the order of events, and never invent sources.",
	}
	tools = []string{"read_file", "write_file", "git_status", "git_log", "fetch_url"}
)

// Chat returns a non-streamed chat completion of about reqBytes request and
// respBytes response body, as a typical OpenAI-compatible gateway sees it.
func (g *Gen) Chat(reqBytes, respBytes int) captures.Exchange {
	g.n++
	model := models[g.rng.IntN(len(models))]
	sys := systemPrompts[g.rng.IntN(len(systemPrompts))]
	user := g.Text(max(reqBytes-len(sys)-160, 16))
	req := fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":%q},{"role":"user","content":%q}],"temperature":0.7,"max_tokens":512,"stream":false}`, model, sys, user)
	answer := g.Text(max(respBytes-330, 16))
	pt, ct := int64(len(req)/4), int64(len(answer)/4)
	id := g.hex(24)
	resp := fmt.Sprintf(`{"id":"chatcmpl-%s","object":"chat.completion","created":%d,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d},"system_fingerprint":"fp_%s"}`,
		id, (g.t0/1e9)+g.n/50, model, answer, pt, ct, pt+ct, g.hex(10))
	start := g.t0 + g.n*20_000_000 + g.rng.Int64N(10_000_000)
	ttfb := 200_000_000 + g.rng.Int64N(800_000_000)
	session := "sess-" + fmt.Sprint(g.rng.IntN(64))
	return captures.Exchange{
		ID: fmt.Sprintf("ex-%08d", g.n), StartNS: start, Service: "gateway", Operation: "chat.completions",
		Session: session, Seq: g.n / 64,
		Method: "POST", Scheme: "http", Host: "gateway.internal:8080", Path: "/v1/chat/completions",
		ReqHeaders: []captures.Header{
			{Name: "Host", Value: "gateway.internal:8080"},
			{Name: "User-Agent", Value: "OpenAI/Python 1.54.3"},
			{Name: "Accept", Value: "application/json"},
			{Name: "Accept-Encoding", Value: "gzip, deflate"},
			{Name: "Authorization", Value: "[redacted]"},
			{Name: "Content-Type", Value: "application/json"},
			{Name: "Content-Length", Value: fmt.Sprint(len(req))},
			{Name: "X-Stainless-Lang", Value: "python"},
			{Name: "X-Stainless-Runtime-Version", Value: "3.12.7"},
			{Name: "X-Request-Id", Value: g.hex(32)},
		},
		RespHeaders: []captures.Header{
			{Name: "Date", Value: "Fri, 27 Nov 2026 10:00:00 GMT"},
			{Name: "Content-Type", Value: "application/json"},
			{Name: "Content-Length", Value: fmt.Sprint(len(resp))},
			{Name: "Connection", Value: "keep-alive"},
			{Name: "Openai-Processing-Ms", Value: fmt.Sprint(ttfb / 1e6)},
			{Name: "Openai-Version", Value: "2020-10-01"},
			{Name: "X-Ratelimit-Limit-Requests", Value: "10000"},
			{Name: "X-Ratelimit-Remaining-Requests", Value: fmt.Sprint(9999 - g.rng.IntN(50))},
			{Name: "X-Request-Id", Value: "req_" + g.hex(32)},
			{Name: "Strict-Transport-Security", Value: "max-age=31536000; includeSubDomains"},
		},
		ReqBody: []byte(req), RespBody: []byte(resp), ReqSize: int64(len(req)), RespSize: int64(len(resp)),
		Status: 200, TTFBNS: ttfb, DurationNS: ttfb + g.rng.Int64N(5_000_000),
		Model: model, PromptTokens: pt, CompletionTokens: ct,
	}
}

// StreamChat returns a streamed chat completion with SSE chunks and their
// arrival offsets.
func (g *Gen) StreamChat() captures.Exchange {
	e := g.Chat(600, 0)
	e.ReqBody = []byte(strings.Replace(string(e.ReqBody), `"stream":false`, `"stream":true,"stream_options":{"include_usage":true}`, 1))
	e.ReqSize = int64(len(e.ReqBody))
	n := 8 + g.rng.IntN(40)
	var body strings.Builder
	offs := make([]int64, 0, n+2)
	t := e.TTFBNS
	for i := 0; i < n; i++ {
		t += 15_000_000 + g.rng.Int64N(25_000_000)
		offs = append(offs, t)
		fmt.Fprintf(&body, "data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", e.Model, " "+g.Text(4))
	}
	fmt.Fprintf(&body, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n", e.PromptTokens, n)
	offs = append(offs, t+1_000_000, t+1_100_000)
	e.RespBody = []byte(body.String())
	e.RespSize = int64(len(e.RespBody))
	e.RespHeaders = []captures.Header{{Name: "Content-Type", Value: "text/event-stream"}, {Name: "Cache-Control", Value: "no-cache"}}
	e.Stream, e.ChunkOffsetsNS, e.CompletionTokens = true, offs, int64(n)
	e.DurationNS = t + 1_100_000
	return e
}

// Mixed returns an exchange from a mix of the services and operations of
// a typical AI stack (gateway, RAG, MCP), with some failures.
func (g *Gen) Mixed() captures.Exchange {
	switch p := g.rng.IntN(100); {
	case p < 35:
		return g.Chat(700, 900)
	case p < 50:
		return g.StreamChat()
	case p < 58:
		return g.simple("gateway", "models.list", "GET", "/v1/models", 200, `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}`)
	case p < 63:
		return g.simple("gateway", "health", "GET", "/health", 200, `{"status":"ok"}`)
	case p < 75:
		return g.simple("rag", "rag.query", "POST", "/query", 200, `{"answer":"`+g.Text(200)+`","sources":["kb-12","kb-40"]}`)
	case p < 78:
		return g.simple("rag", "rag.query", "POST", "/query", 503, `{"status":{"error":"too many connections"}}`)
	case p < 80:
		e := g.simple("rag", "rag.query", "POST", "/query", 0, "")
		e.Error, e.TTFBNS = "upstream: dial tcp 10.0.0.7:6333: connect: connection refused", 0
		return e
	default:
		tool := tools[g.rng.IntN(len(tools))]
		e := g.simple("mcp", "mcp.tools.call/"+tool, "POST", "/mcp", 200,
			`{"jsonrpc":"2.0","id":`+fmt.Sprint(g.n)+`,"result":{"content":[{"type":"text","text":"`+g.Text(120)+`"}],"isError":false}}`)
		e.ReqBody = []byte(`{"jsonrpc":"2.0","id":` + fmt.Sprint(g.n) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
		e.ReqSize = int64(len(e.ReqBody))
		e.Session = "mcp-" + g.hex(8)[:2]
		e.RPCMethod, e.RPCID, e.Tool = "tools/call", fmt.Sprint(g.n), tool
		e.ReqHeaders = append(e.ReqHeaders, captures.Header{Name: "Mcp-Session-Id", Value: e.Session}, captures.Header{Name: "Mcp-Protocol-Version", Value: "2025-06-18"})
		return e
	}
}

func (g *Gen) simple(service, op, method, path string, status int32, resp string) captures.Exchange {
	g.n++
	start := g.t0 + g.n*20_000_000
	ttfb := 2_000_000 + g.rng.Int64N(80_000_000)
	var req []byte
	if method == "POST" {
		req = []byte(`{"query":"` + g.Text(60) + `","top_k":5}`)
	}
	return captures.Exchange{
		ID: fmt.Sprintf("ex-%08d", g.n), StartNS: start, Service: service, Operation: op,
		Session: "client-" + fmt.Sprint(g.rng.IntN(8)), Seq: g.n / 8,
		Method: method, Scheme: "http", Host: service + ".internal", Path: path,
		ReqHeaders:  []captures.Header{{Name: "Content-Type", Value: "application/json"}},
		RespHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"}},
		ReqBody:     req, RespBody: []byte(resp), ReqSize: int64(len(req)), RespSize: int64(len(resp)),
		Status: status, TTFBNS: ttfb, DurationNS: ttfb + g.rng.Int64N(2_000_000),
	}
}

// Result returns a replay result row for stage stage with users users.
func (g *Gen) Result(stage int32, users int32) captures.Result {
	g.n++
	r := captures.Result{
		Run: "run-sample", Scenario: "gateway", Stage: stage, StageUsers: users, VU: int32(g.rng.IntN(int(users))),
		Iteration: g.n, Operation: "chat.completions", Service: "gateway", SourceID: fmt.Sprintf("ex-%08d", 1+g.rng.IntN(500)),
		IntendedNS: g.t0 + g.n*5_000_000, Status: 200,
		TTFBNS: 100_000_000 + g.rng.Int64N(int64(users)*10_000_000), BytesOut: 700, BytesIn: 900,
		PromptTokens: 170, CompletionTokens: 220, ActiveUsers: users,
	}
	r.StartNS = r.IntendedNS + g.rng.Int64N(200_000)
	r.TTFTNS = r.TTFBNS + 1_000_000
	r.DurationNS = r.TTFBNS + 50_000_000
	switch p := g.rng.IntN(100); {
	case p < 3:
		r.Status, r.ErrorKind, r.Error = 503, runspec.ErrHTTP5xx, "503 Service Unavailable"
	case p < 4:
		r.Status, r.ErrorKind, r.Error, r.TTFBNS, r.TTFTNS = 0, runspec.ErrTimeout, "request timeout after 30s", 0, 0
	}
	return r
}

// Samples returns one round of host and GPU samples at unix ns t.
func (g *Gen) Samples(t int64) []captures.Sample {
	return []captures.Sample{
		{TNS: t, Source: "host", Metric: "cpu_util", Value: 20 + 60*g.rng.Float64()},
		{TNS: t, Source: "host", Metric: "mem_used_bytes", Value: float64(8<<30 + g.rng.IntN(1<<30))},
		{TNS: t, Source: "nvml", Device: "0", Metric: "gpu_util", Value: 50 + 50*g.rng.Float64()},
		{TNS: t, Source: "nvml", Device: "0", Metric: "gpu_mem_used_bytes", Value: float64(60 << 30)},
	}
}
