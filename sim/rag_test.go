package sim

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRAGIndexThenQuery(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	url := s.URLs()["rag"]
	doc := "Tensor cores multiply half precision matrices; cuBLAS picks them for GEMM when shapes align to multiples of eight."
	status, body := postJSON(t, url+"/index", map[string]any{"collection": "gpu", "documents": []any{map[string]any{"id": "tc", "text": doc}}})
	if status != 200 {
		t.Fatalf("index: %d %s", status, body)
	}
	if m := decode(t, body); m["chunks"].(float64) != 1 || m["collection_vectors"].(float64) != 1 {
		t.Errorf("index answer %v", m)
	}
	postJSON(t, url+"/index", map[string]any{"collection": "gpu", "documents": []any{map[string]any{"text": "Bread rises because yeast ferments sugar into gas."}}})
	status, body = postJSON(t, url+"/query", map[string]any{"query": "which GEMM shapes use tensor cores?", "collection": "gpu", "top_k": 5})
	if status != 200 {
		t.Fatalf("query: %d %s", status, body)
	}
	var got struct {
		Results []hit `json:"results"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 2 || got.Results[0].DocID != "tc" || got.Results[0].Score <= got.Results[1].Score {
		t.Errorf("results %+v, want the tensor-core chunk first of 2", got.Results)
	}
	status, body = postJSON(t, url+"/query", map[string]any{"query": "How do I optimize Python code for GPU computing?", "collection": "default", "top_k": 5})
	if status != 200 || strings.Count(string(body), `"doc_id"`) != 5 {
		t.Errorf("default collection query: %d %s", status, body)
	}
}

func TestRAGMalformedRequests(t *testing.T) {
	t.Parallel()
	s := startSuite(t, fastConfig())
	url := s.URLs()["rag"]
	cases := []struct {
		name, path string
		body       any
		status     int
		typ        string
	}{
		{"bad JSON", "/query", `{"query": `, 422, "json_invalid"},
		{"array", "/query", `[]`, 422, "json_invalid"},
		{"no query", "/query", map[string]any{"collection": "default"}, 422, "missing"},
		{"empty query", "/query", map[string]any{"query": "  "}, 422, "string_too_short"},
		{"top_k 0", "/query", map[string]any{"query": "x", "top_k": 0}, 422, "less_than_equal"},
		{"top_k string", "/query", `{"query": "x", "top_k": "five"}`, 422, "json_invalid"},
		{"no documents", "/index", map[string]any{"documents": []any{}}, 422, "too_short"},
		{"empty text", "/index", map[string]any{"documents": []any{map[string]any{"text": ""}}}, 422, "string_too_short"},
	}
	for _, c := range cases {
		status, body := postJSON(t, url+c.path, c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, status, c.status, body)
			continue
		}
		var e struct {
			Detail []struct {
				Type string `json:"type"`
				Loc  []any  `json:"loc"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(body, &e); err != nil || len(e.Detail) != 1 || e.Detail[0].Type != c.typ || e.Detail[0].Loc[0] != "body" {
			t.Errorf("%s: body %s, want FastAPI's detail list with type %s", c.name, body, c.typ)
		}
	}
	if status, body := getBody(t, url+"/query"); status != 405 || !strings.Contains(string(body), "detail") {
		t.Errorf("GET /query: %d %s", status, body)
	}
	if status, _ := getBody(t, url+"/health"); status != 200 {
		t.Errorf("health: %d", status)
	}
}

// TestRAGVectorPoolExhaustion: a pool of 2 with a 100 ms wait timeout and
// 300 ms searches answers 8 concurrent queries with 2 successes and 6 504s
// carrying Qdrant's timeout text.
func TestRAGVectorPoolExhaustion(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.RAG.VectorPool = VectorPoolConfig{Size: 2, WaitTimeout: 100 * time.Millisecond}
	cfg.RAG.SearchBase = 300 * time.Millisecond
	cfg.RAG.SearchPerVector = 0
	cfg.RAG.EmbedPerChunk = 0
	cfg.RAG.DB = DBConfig{PoolSize: 20, MaxConnections: 20, PoolTimeout: time.Second}
	s := startSuite(t, cfg)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := postJSON(t, s.URLs()["rag"]+"/query", map[string]any{"query": "pool", "top_k": 1})
			mu.Lock()
			defer mu.Unlock()
			codes[status]++
			if status == 504 {
				d, _ := decode(t, body)["detail"].(string)
				if !strings.Contains(d, `{"status":{"error":"Timeout error:`) {
					t.Errorf("504 detail %q lacks Qdrant's timeout text", d)
				}
			}
		}()
	}
	wg.Wait()
	if codes[200] != 2 || codes[504] != 6 {
		t.Errorf("status counts %v, want 2×200 and 6×504", codes)
	}
	_, m := getBody(t, s.URLs()["rag"]+"/metrics")
	if !strings.Contains(string(m), "rag_vector_timeouts_total 6") {
		t.Errorf("metrics:\n%s", m)
	}
}

// TestRAGDatabaseTooManyConnections: the pool may open 10 connections but the
// server allows 3, so 6 concurrent slow requests get 3 "too many connections".
func TestRAGDatabaseTooManyConnections(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.RAG.DB = DBConfig{PoolSize: 2, MaxOverflow: 8, MaxConnections: 3, PoolTimeout: time.Second, QueryTime: 300 * time.Millisecond}
	cfg.RAG.SearchPerVector = 0
	s := startSuite(t, cfg)
	var mu sync.Mutex
	var ok, refused int
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := postJSON(t, s.URLs()["rag"]+"/query", map[string]any{"query": "db", "top_k": 1})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == 200:
				ok++
			case status == 500 && strings.Contains(string(body), "too many connections") && strings.Contains(string(body), "sorry, too many clients already"):
				refused++
			default:
				t.Errorf("status %d: %s", status, body)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || refused != 3 {
		t.Errorf("%d ok and %d refused, want 3 and 3", ok, refused)
	}
	// Overflow connections are closed on return: the pool keeps PoolSize open.
	_, body := getBody(t, s.URLs()["rag"]+"/stats")
	if st := decode(t, body); st["db_open"].(float64) != 2 || st["db_refused"].(float64) != 3 {
		t.Errorf("stats %s", body)
	}
}

// TestRAGDatabasePoolTimeout: with no overflow, waiting past pool_timeout
// gives SQLAlchemy's QueuePool error.
func TestRAGDatabasePoolTimeout(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.RAG.DB = DBConfig{PoolSize: 1, MaxOverflow: 0, MaxConnections: 10, PoolTimeout: 50 * time.Millisecond, QueryTime: 300 * time.Millisecond}
	s := startSuite(t, cfg)
	var wg sync.WaitGroup
	bodies := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, b := postJSON(t, s.URLs()["rag"]+"/query", map[string]any{"query": "db"})
			bodies[i] = string(b)
		}()
	}
	wg.Wait()
	joined := strings.Join(bodies, "\n")
	if !strings.Contains(joined, "QueuePool limit of size 1 overflow 0 reached") {
		t.Errorf("no QueuePool timeout in %s", joined)
	}
}

// TestRAGSearchCostGrowsWithCollection: brute force, so 1000 vectors at the
// default per-vector cost take more than 500 ms (unscaled) and 10× the
// vectors take several times longer.
func TestRAGSearchCostGrowsWithCollection(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.TimeScale = 0.1
	cfg.RAG.SeedVectors = 0
	cfg.RAG.EmbedPerChunk = 0
	cfg.RAG.UpsertPerVector = 0
	cfg.RAG.DB.QueryTime = 0
	cfg.RAG.Context.TokensPerHit = 0 // the search's cost alone
	s := startSuite(t, cfg)
	url := s.URLs()["rag"]
	fill := func(collection string, n int) {
		docs := make([]any, n)
		for i := range docs {
			docs[i] = map[string]any{"text": fmt.Sprintf("document %d about vectors", i)}
		}
		if status, body := postJSON(t, url+"/index", map[string]any{"collection": collection, "documents": docs}); status != 200 {
			t.Fatalf("index: %d %s", status, body)
		}
	}
	// The fastest of three: a busy machine only ever adds time.
	took := func(collection string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			if status, body := postJSON(t, url+"/query", map[string]any{"query": "vectors", "collection": collection}); status != 200 {
				t.Fatalf("query: %d %s", status, body)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	fill("small", 100)
	fill("large", 1000)
	small, large := took("small"), took("large")
	if large < 50*time.Millisecond { // 500 ms unscaled at time scale 0.1
		t.Errorf("1000-vector search took %v, want > 50 ms (500 ms unscaled)", large)
	}
	if large < 3*small {
		t.Errorf("search took %v at 100 vectors and %v at 1000: no growth with collection size", small, large)
	}
}

// Bottleneck "LLM context processing latency": with the shared GPU's memory
// short, the retrieved chunks are read on the CPU, 25× slower by default.
func TestRAGContextOnCPUUnderGPUMemoryPressure(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.TimeScale = 0.05
	s := startSuite(t, cfg)
	url := s.URLs()["rag"]
	query := func() (device string, tokens float64, took time.Duration) {
		t.Helper()
		start := time.Now()
		status, body := postJSON(t, url+"/query", map[string]any{"query": "How do I optimize Python code for GPU computing?", "top_k": 5})
		took = time.Since(start)
		if status != 200 {
			t.Fatalf("query: %d %s", status, body)
		}
		m := decode(t, body)
		return m["context_device"].(string), m["context_tokens"].(float64), took
	}
	dev, tokens, _ := query()
	if dev != "gpu" || tokens != 500 {
		t.Errorf("GPU free: context on %q, %v tokens; want gpu, 500", dev, tokens)
	}
	// Fill the gateway's GPU to 96 %: KV cache of requests in flight.
	g := s.gateway.gpu
	used, free := g.memory()
	if err := g.alloc(0.96*(used+free) - used); err != nil {
		t.Fatal(err)
	}
	dev, _, took := query()
	want := cfg.scaled(500 * cfg.RAG.Context.CPUPerToken) // 2.5 s × 0.05
	if dev != "cpu" || took < want {
		t.Errorf("GPU memory at 96 %%: context on %q in %v; want cpu, at least %v", dev, took, want)
	}
	if got := s.rag.stats().CPUContexts; got != 1 {
		t.Errorf("cpu_contexts %d, want 1", got)
	}
}
