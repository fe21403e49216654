package sim

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/loadtape/loadtape/internal/yamlx"
)

// Config sets every mechanism of the suite. The YAML keys are the tags;
// docs/sim.md lists each knob with its default and its healthy value.
type Config struct {
	// TimeScale multiplies every service time (prefill, decode, search, tool
	// work, pool and load timeouts). A replay compressed with --time-scale F
	// against a sim with TimeScale F keeps the same utilisation, so the same
	// user counts show the same bottlenecks. 1 = real time.
	TimeScale float64       `yaml:"time_scale"`
	Gateway   GatewayConfig `yaml:"gateway"`
	RAG       RAGConfig     `yaml:"rag"`
	MCP       MCPConfig     `yaml:"mcp"`
}

// GatewayConfig models one GPU serving OpenAI-compatible chat completions
// the way vLLM does: batch slots, prefill and decode cost, and GPU memory
// taken by model weights and by the KV cache of the requests in flight.
type GatewayConfig struct {
	// BatchSlots is the number of sequences decoded together (vLLM
	// max_num_seqs); requests beyond it wait (vllm:num_requests_waiting).
	BatchSlots int `yaml:"batch_slots"`
	// PrefillPerToken is the prompt processing cost per prompt token.
	PrefillPerToken time.Duration `yaml:"prefill_per_token"`
	// DecodePerToken is the time of one decode step with one running request.
	DecodePerToken time.Duration `yaml:"decode_per_token"`
	// BatchSlowdown makes a decode step cost DecodePerToken×(1+BatchSlowdown×(running−1)):
	// a fuller batch decodes each sequence more slowly.
	BatchSlowdown float64 `yaml:"batch_slowdown"`
	// GPUMemoryMiB is the device memory capacity (6144 by default: a 6 GB laptop card such as an RTX 4050, small enough
	// that a few models and a busy KV cache fill it).
	GPUMemoryMiB float64 `yaml:"gpu_memory_mib"`
	// ReservedMiB is taken at start for the CUDA context and activations.
	ReservedMiB float64 `yaml:"reserved_mib"`
	// KVMiBPerToken is the KV-cache memory of one token (prompt or generated)
	// of a request in flight; a request that cannot get it fails with a CUDA
	// out-of-memory error.
	KVMiBPerToken float64 `yaml:"kv_mib_per_token"`
	// UtilFullBatch is the number of running requests at which
	// DCGM_FI_DEV_GPU_UTIL reads 100 (fewer keep the GPU partly idle).
	UtilFullBatch int `yaml:"util_full_batch"`
	// DefaultMaxTokens applies when a request sets no max_tokens.
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// MaxModelLen bounds prompt+max_tokens; beyond it the request gets a 400.
	MaxModelLen int `yaml:"max_model_len"`
	// Models are the models served and how their weights are loaded.
	Models []ModelConfig `yaml:"models"`
	// Aliases maps other model names onto served ones (by default
	// qwen2.5-14b-instruct → chat-7b, a name clients commonly ask for); any other name gets a 404 model_not_found.
	Aliases map[string]string `yaml:"aliases"`
}

// ModelConfig is one served model.
type ModelConfig struct {
	Name       string  `yaml:"name"`
	WeightsMiB float64 `yaml:"weights_mib"`
	// Load is "startup" (weights in memory from the start) or "on_demand"
	// (loaded by the first request that names the model, which waits LoadTime).
	Load     string        `yaml:"load"`
	LoadTime time.Duration `yaml:"load_time"`
	// UnloadIdle unloads an on-demand model after this long without requests (0: never).
	UnloadIdle time.Duration `yaml:"unload_idle"`
}

// RAGConfig models a RAG service in front of a vector store (Qdrant) and a
// database (PostgreSQL), each reached through a client pool.
type RAGConfig struct {
	VectorPool VectorPoolConfig `yaml:"vector_pool"`
	DB         DBConfig         `yaml:"db"`
	// SearchBase + SearchPerVector×(vectors in the collection) is the cost of
	// one brute-force search: search slows down as the collection grows.
	SearchBase      time.Duration `yaml:"search_base"`
	SearchPerVector time.Duration `yaml:"search_per_vector"`
	// UpsertPerVector is the vector-store cost of storing one chunk.
	UpsertPerVector time.Duration `yaml:"upsert_per_vector"`
	// EmbedPerChunk is the embedding cost of one chunk or query.
	EmbedPerChunk time.Duration `yaml:"embed_per_chunk"`
	// Dimensions of the hashing embedder.
	Dimensions int `yaml:"dimensions"`
	// ChunkWords is the chunk size of indexed documents, in words.
	ChunkWords int `yaml:"chunk_words"`
	// SeedVectors chunks are indexed into the "default" collection at start.
	SeedVectors int `yaml:"seed_vectors"`
	// Context is the LLM reading the retrieved chunks before it answers.
	Context ContextConfig `yaml:"context"`
}

// ContextConfig models the model reading retrieved context: a query
// ends with the retrieved chunks read by the model, TokensPerHit tokens per
// chunk returned, at GPUPerToken each; when the GPU's memory is at or above
// CPUFallbackAt (a share, 0–1) the work is offloaded to the CPU and costs
// CPUPerToken each. The GPU is the gateway's when both run in one suite (a
// small stack shares one card); with no gateway the GPU is never short.
type ContextConfig struct {
	TokensPerHit  int           `yaml:"tokens_per_hit"`
	GPUPerToken   time.Duration `yaml:"gpu_per_token"`
	CPUPerToken   time.Duration `yaml:"cpu_per_token"`
	CPUFallbackAt float64       `yaml:"cpu_fallback_at"`
}

// VectorPoolConfig is the vector-store client pool.
type VectorPoolConfig struct {
	// Size is the number of concurrent vector-store operations (like
	// a Qdrant client's connection pool, default 10).
	Size int `yaml:"size"`
	// WaitTimeout: a request that waits longer for a connection fails with
	// HTTP 504 and Qdrant's timeout text.
	WaitTimeout time.Duration `yaml:"wait_timeout"`
}

// DBConfig is a SQLAlchemy-style pool in front of PostgreSQL.
type DBConfig struct {
	// PoolSize connections are kept open; MaxOverflow more are opened under
	// load and closed after use (SQLAlchemy pool_size, max_overflow).
	PoolSize    int `yaml:"pool_size"`
	MaxOverflow int `yaml:"max_overflow"`
	// MaxConnections is what the database server lets this service open;
	// opening one more fails with "FATAL: sorry, too many clients already".
	MaxConnections int `yaml:"max_connections"`
	// PoolTimeout: waiting longer for a pool slot fails with SQLAlchemy's
	// "QueuePool limit ... connection timed out".
	PoolTimeout time.Duration `yaml:"pool_timeout"`
	// ConnectTime is the cost of opening a connection.
	ConnectTime time.Duration `yaml:"connect_time"`
	// QueryTime is the cost of each statement (one per query, one per indexed document).
	QueryTime time.Duration `yaml:"query_time"`
}

// MCPConfig models an MCP tool server whose tools run on an executor.
type MCPConfig struct {
	// ExecutorConcurrency is how many tool calls run at once; 1 (the default) is
	// a single-threaded tool server, as many are. Calls beyond it queue.
	ExecutorConcurrency int `yaml:"executor_concurrency"`
	// ToolTime is each tool's work time on the executor (real work included).
	ToolTime ToolTimes `yaml:"tool_time"`
	// SandboxRoot is the directory the file tools are confined to; empty: a
	// temporary directory removed by Close.
	SandboxRoot string `yaml:"sandbox_root"`
	// SessionTimeout closes idle MCP sessions (0: never).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// MaxFileBytes bounds read_file and write_file contents.
	MaxFileBytes int `yaml:"max_file_bytes"`
}

// ToolTimes is the modelled work time of each tool.
type ToolTimes struct {
	ReadFile  time.Duration `yaml:"read_file"`
	WriteFile time.Duration `yaml:"write_file"`
	ListDir   time.Duration `yaml:"list_dir"`
	GitStatus time.Duration `yaml:"git_status"`
	GitLog    time.Duration `yaml:"git_log"`
	FetchURL  time.Duration `yaml:"fetch_url"`
}

// Sentinel errors.
var (
	ErrConfig = errors.New("sim: invalid config")
)

// DefaultConfig makes these bottlenecks appear at the built-in profile's user counts:
// GPU memory pressure and CUDA OOM on the gateway from about 50 users, with
// its 20 batch slots full at 100 users (later requests wait for one: their first token
// comes later) and each decode step 8 % slower per sequence in the batch
// (time per output token grows with the streams decoded at once), vector
// pool exhaustion (504) and database "too many connections" on RAG at 25–50
// users with searches slowing as the collection grows, and serialized MCP
// tool execution.
func DefaultConfig() Config {
	return Config{
		TimeScale: 1,
		Gateway: GatewayConfig{
			BatchSlots:       20, // room for 50 users' chats, not for 100 users': those wait for a slot
			PrefillPerToken:  time.Millisecond,
			DecodePerToken:   8 * time.Millisecond,
			BatchSlowdown:    0.08, // a full batch of 20 decodes each sequence 2.5× slower than one alone
			GPUMemoryMiB:     6144,
			ReservedMiB:      1152,
			KVMiBPerToken:    0.5,
			UtilFullBatch:    4,
			DefaultMaxTokens: 256,
			MaxModelLen:      4096,
			Models: []ModelConfig{
				{Name: "chat-7b", WeightsMiB: 2048, Load: "startup", LoadTime: 8 * time.Second},
				{Name: "code-7b", WeightsMiB: 2048, Load: "startup", LoadTime: 8 * time.Second},
			},
			Aliases: map[string]string{"qwen2.5-14b-instruct": "chat-7b"},
		},
		RAG: RAGConfig{
			VectorPool:      VectorPoolConfig{Size: 7, WaitTimeout: time.Second},
			DB:              DBConfig{PoolSize: 5, MaxOverflow: 20, MaxConnections: 20, PoolTimeout: 30 * time.Second, ConnectTime: 30 * time.Millisecond, QueryTime: 15 * time.Millisecond},
			SearchBase:      20 * time.Millisecond,
			SearchPerVector: time.Millisecond,
			UpsertPerVector: 2 * time.Millisecond,
			EmbedPerChunk:   25 * time.Millisecond,
			Dimensions:      256,
			ChunkWords:      60,
			SeedVectors:     600,
			// 5 hits × 100 tokens: 100 ms on the GPU, 2 s on the CPU
			// (a CPU reading 500 tokens of context takes seconds).
			Context: ContextConfig{TokensPerHit: 100, GPUPerToken: 200 * time.Microsecond, CPUPerToken: 4 * time.Millisecond, CPUFallbackAt: 0.95},
		},
		MCP: MCPConfig{
			ExecutorConcurrency: 1,
			ToolTime: ToolTimes{
				ReadFile:  500 * time.Millisecond,
				WriteFile: 800 * time.Millisecond,
				ListDir:   300 * time.Millisecond,
				GitStatus: 1200 * time.Millisecond,
				GitLog:    1200 * time.Millisecond,
				FetchURL:  1500 * time.Millisecond,
			},
			SessionTimeout: 10 * time.Minute,
			MaxFileBytes:   1 << 20,
		},
	}
}

// HealthyConfig sets every mechanism generously: an 80 GiB GPU with room for
// every request, a vector pool and database pool far above the built-in
// profile's user counts, searches that do not slow with size, and a parallel tool executor.
// No bottleneck appears at the built-in profile's user counts.
func HealthyConfig() Config {
	c := DefaultConfig()
	c.Gateway.BatchSlots = 256
	c.Gateway.BatchSlowdown = 0
	c.Gateway.GPUMemoryMiB = 81920
	c.Gateway.UtilFullBatch = 256
	c.RAG.VectorPool = VectorPoolConfig{Size: 200, WaitTimeout: 30 * time.Second}
	c.RAG.DB = DBConfig{PoolSize: 100, MaxOverflow: 100, MaxConnections: 500, PoolTimeout: 30 * time.Second, ConnectTime: 30 * time.Millisecond, QueryTime: 15 * time.Millisecond}
	c.RAG.SearchPerVector = 0
	c.RAG.SearchBase = 40 * time.Millisecond
	c.RAG.Context.CPUPerToken = c.RAG.Context.GPUPerToken // context stays on the GPU
	c.MCP.ExecutorConcurrency = 256
	return c
}

// LoadConfig reads a YAML config over DefaultConfig: keys left out keep
// their defaults. An unknown key or a bad value is an error naming the file
// and line.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig on bytes; name is used in error messages.
func ParseConfig(name string, data []byte) (Config, error) {
	return parseOver(DefaultConfig(), name, data)
}

// parseOver reads YAML over base.
func parseOver(base Config, name string, data []byte) (Config, error) {
	cfg := base
	if err := yamlx.Decode(name, data, &cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if field, msg := cfg.check(); field != "" {
		err := yamlx.Parse(name, data).Errorf(fieldPath(field), "%s: %s", field, msg)
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return cfg, nil
}

// Validate reports the first bad value of a config built in code.
func (c Config) Validate() error {
	if field, msg := c.check(); field != "" {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, msg)
	}
	return nil
}

// fieldPath splits a check's field name ("gateway.models[0].load") into
// the keys and indexes of its YAML path.
func fieldPath(field string) []any {
	var out []any
	for _, part := range strings.Split(field, ".") {
		key, rest, _ := strings.Cut(part, "[")
		out = append(out, key)
		for rest != "" {
			num, after, _ := strings.Cut(rest, "]")
			if i, err := strconv.Atoi(num); err == nil {
				out = append(out, i)
			}
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return out
}

// check returns the YAML path of the first bad value and why.
func (c Config) check() (field, msg string) {
	pos := func(name string, v float64) (string, string) {
		if v <= 0 {
			return name, fmt.Sprintf("must be > 0, got %v", v)
		}
		return "", ""
	}
	nonneg := func(name string, d time.Duration) (string, string) {
		if d < 0 {
			return name, fmt.Sprintf("must be >= 0, got %v", d)
		}
		return "", ""
	}
	type rule struct{ f, m string }
	var first rule
	try := func(f, m string) {
		if first.f == "" && f != "" {
			first = rule{f, m}
		}
	}
	g, r, m := c.Gateway, c.RAG, c.MCP
	try(pos("time_scale", c.TimeScale))
	try(pos("gateway.batch_slots", float64(g.BatchSlots)))
	try(nonneg("gateway.prefill_per_token", g.PrefillPerToken))
	try(nonneg("gateway.decode_per_token", g.DecodePerToken))
	if g.BatchSlowdown < 0 {
		try("gateway.batch_slowdown", "must be >= 0")
	}
	try(pos("gateway.gpu_memory_mib", g.GPUMemoryMiB))
	if g.ReservedMiB < 0 || g.ReservedMiB >= g.GPUMemoryMiB {
		try("gateway.reserved_mib", "must be >= 0 and below gpu_memory_mib")
	}
	if g.KVMiBPerToken < 0 {
		try("gateway.kv_mib_per_token", "must be >= 0")
	}
	try(pos("gateway.util_full_batch", float64(g.UtilFullBatch)))
	try(pos("gateway.default_max_tokens", float64(g.DefaultMaxTokens)))
	try(pos("gateway.max_model_len", float64(g.MaxModelLen)))
	if len(g.Models) == 0 {
		try("gateway.models", "at least one model is needed")
	}
	seen := map[string]bool{}
	for i, md := range g.Models {
		at := fmt.Sprintf("gateway.models[%d]", i)
		switch {
		case md.Name == "":
			try(at+".name", "must not be empty")
		case seen[md.Name]:
			try(at+".name", fmt.Sprintf("duplicate model %q", md.Name))
		case md.Load != "startup" && md.Load != "on_demand":
			try(at+".load", fmt.Sprintf("must be startup or on_demand, got %q", md.Load))
		case md.WeightsMiB < 0:
			try(at+".weights_mib", "must be >= 0")
		}
		try(nonneg(at+".load_time", md.LoadTime))
		try(nonneg(at+".unload_idle", md.UnloadIdle))
		seen[md.Name] = true
	}
	for alias, target := range g.Aliases {
		if !seen[target] {
			try("gateway.aliases."+alias, fmt.Sprintf("names model %q, which is not in gateway.models", target))
		}
	}
	try(pos("rag.vector_pool.size", float64(r.VectorPool.Size)))
	try(pos("rag.vector_pool.wait_timeout", float64(r.VectorPool.WaitTimeout)))
	try(pos("rag.db.pool_size", float64(r.DB.PoolSize)))
	if r.DB.MaxOverflow < 0 {
		try("rag.db.max_overflow", "must be >= 0")
	}
	try(pos("rag.db.max_connections", float64(r.DB.MaxConnections)))
	try(pos("rag.db.pool_timeout", float64(r.DB.PoolTimeout)))
	try(nonneg("rag.db.connect_time", r.DB.ConnectTime))
	if r.Context.TokensPerHit < 0 {
		try("rag.context.tokens_per_hit", "must be >= 0")
	}
	try(nonneg("rag.context.gpu_per_token", r.Context.GPUPerToken))
	try(nonneg("rag.context.cpu_per_token", r.Context.CPUPerToken))
	try(pos("rag.context.cpu_fallback_at", r.Context.CPUFallbackAt))
	try(nonneg("rag.db.query_time", r.DB.QueryTime))
	try(nonneg("rag.search_base", r.SearchBase))
	try(nonneg("rag.search_per_vector", r.SearchPerVector))
	try(nonneg("rag.upsert_per_vector", r.UpsertPerVector))
	try(nonneg("rag.embed_per_chunk", r.EmbedPerChunk))
	try(pos("rag.dimensions", float64(r.Dimensions)))
	try(pos("rag.chunk_words", float64(r.ChunkWords)))
	if r.SeedVectors < 0 {
		try("rag.seed_vectors", "must be >= 0")
	}
	try(pos("mcp.executor_concurrency", float64(m.ExecutorConcurrency)))
	for name, d := range map[string]time.Duration{
		"read_file": m.ToolTime.ReadFile, "write_file": m.ToolTime.WriteFile, "list_dir": m.ToolTime.ListDir,
		"git_status": m.ToolTime.GitStatus, "git_log": m.ToolTime.GitLog, "fetch_url": m.ToolTime.FetchURL,
	} {
		try(nonneg("mcp.tool_time."+name, d))
	}
	try(nonneg("mcp.session_timeout", m.SessionTimeout))
	try(pos("mcp.max_file_bytes", float64(m.MaxFileBytes)))
	return first.f, first.m
}

// scaled multiplies a service time by the time scale.
func (c Config) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.TimeScale)
}
