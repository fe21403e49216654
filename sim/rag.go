package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rag is the RAG service: /index, /query, /health, /metrics, /stats. Each
// request holds a database connection for its whole life (as a FastAPI
// handler with a session dependency does) and a vector-store connection for
// its vector operation, so a saturated vector pool also piles up database
// connections.
type rag struct {
	cfg     Config
	store   *store
	vectors *vectorPool
	db      *dbPool

	queries, indexes, vectorTimeouts, dbErrors atomic.Int64
	searchNanos, searches                      atomic.Int64
	ids                                        atomic.Int64
	cpuContexts                                atomic.Int64

	// gpuShare is the memory share of the GPU the context is read on (the
	// gateway's, in a suite); nil: a GPU that is never short.
	gpuShare func() float64
}

func newRAG(cfg Config) *rag {
	r := &rag{cfg: cfg, store: newStore(),
		vectors: &vectorPool{slots: make(chan struct{}, cfg.RAG.VectorPool.Size)},
		db:      &dbPool{cfg: cfg.RAG.DB, scale: cfg.TimeScale, slots: make(chan struct{}, cfg.RAG.DB.PoolSize+cfg.RAG.DB.MaxOverflow)},
	}
	var seed []point
	for i := 0; i < cfg.RAG.SeedVectors; i++ {
		text := chunkText(seedDocument(i, cfg.RAG.ChunkWords), cfg.RAG.ChunkWords)[0]
		seed = append(seed, point{id: fmt.Sprintf("seed-%d", i), doc: fmt.Sprintf("seed-doc-%d", i/4), text: text, vector: embed(text, cfg.RAG.Dimensions)})
	}
	r.store.upsert("default", seed)
	return r
}

func (r *rag) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/query", r.query)
	mux.HandleFunc("/index", r.index)
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "service": "rag", "collections": r.store.sizes()})
	})
	mux.HandleFunc("/metrics", r.metrics)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, r.stats()) })
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
	})
	return mux
}

// vectorPool is the vector-store client pool.
type vectorPool struct {
	slots   chan struct{}
	waiting atomic.Int64
}

var errVectorTimeout = errors.New("vector pool wait timeout")

func (p *vectorPool) acquire(ctx context.Context, timeout time.Duration) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errVectorTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *vectorPool) release() { <-p.slots }

// dbPool is a SQLAlchemy QueuePool in front of a PostgreSQL server with a
// connection limit: PoolSize connections stay open, up to MaxOverflow more
// are opened on demand and closed on release, and the server refuses any
// connection beyond MaxConnections.
type dbPool struct {
	cfg   DBConfig
	scale float64
	slots chan struct{} // PoolSize+MaxOverflow checkouts

	mu               sync.Mutex
	open, idle, used int
	refused          int64
	timeouts         int64
}

type dbError struct{ msg string }

func (e *dbError) Error() string { return e.msg }

func (p *dbPool) acquire(ctx context.Context) error {
	wait := time.Duration(float64(p.cfg.PoolTimeout) * p.scale)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
	case <-t.C:
		p.mu.Lock()
		p.timeouts++
		p.mu.Unlock()
		return &dbError{fmt.Sprintf("(sqlalchemy.exc.TimeoutError) QueuePool limit of size %d overflow %d reached, connection timed out, timeout %.2f",
			p.cfg.PoolSize, p.cfg.MaxOverflow, wait.Seconds())}
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	if p.idle > 0 {
		p.idle--
		p.used++
		p.mu.Unlock()
		return nil
	}
	if p.open >= p.cfg.MaxConnections {
		p.refused++
		p.mu.Unlock()
		<-p.slots
		return &dbError{`(psycopg2.OperationalError) connection to server at "postgres" (172.18.0.4), port 5432 failed: FATAL:  sorry, too many clients already` +
			fmt.Sprintf(" (too many connections: max_connections=%d)", p.cfg.MaxConnections)}
	}
	p.open++
	p.used++
	p.mu.Unlock()
	sleepCtx(ctx, time.Duration(float64(p.cfg.ConnectTime)*p.scale))
	return nil
}

func (p *dbPool) release() {
	p.mu.Lock()
	p.used--
	if p.open > p.cfg.PoolSize {
		p.open-- // overflow connections are closed on return
	} else {
		p.idle++
	}
	p.mu.Unlock()
	<-p.slots
}

// fastAPIError writes FastAPI's {"detail": ...} error.
func fastAPIError(w http.ResponseWriter, status int, detail any) {
	writeJSON(w, status, map[string]any{"detail": detail})
}

// validation writes FastAPI's 422 body for one bad field.
func validation(w http.ResponseWriter, typ, field, msg string, input any) {
	fastAPIError(w, http.StatusUnprocessableEntity, []any{map[string]any{"type": typ, "loc": []string{"body", field}, "msg": msg, "input": input}})
}

func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	if req.Method != http.MethodPost {
		fastAPIError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return false
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		fastAPIError(w, http.StatusBadRequest, "There was an error parsing the body")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		fastAPIError(w, http.StatusUnprocessableEntity, []any{map[string]any{"type": "json_invalid", "loc": []any{"body", 0},
			"msg": "JSON decode error", "input": map[string]any{}, "ctx": map[string]any{"error": err.Error()}}})
		return false
	}
	return true
}

func (r *rag) failure(w http.ResponseWriter, err error) {
	var de *dbError
	switch {
	case errors.As(err, &de):
		r.dbErrors.Add(1)
		fastAPIError(w, http.StatusInternalServerError, "Database error: "+de.msg)
	case errors.Is(err, errVectorTimeout):
		r.vectorTimeouts.Add(1)
		wait := r.cfg.scaled(r.cfg.RAG.VectorPool.WaitTimeout).Seconds()
		raw := fmt.Sprintf(`{"status":{"error":"Timeout error: no vector-store connection within %.3fs (pool of %d exhausted)"},"time":%.3f}`,
			wait, r.cfg.RAG.VectorPool.Size, wait)
		fastAPIError(w, http.StatusGatewayTimeout, "Vector search failed: Unexpected Response: 408 (Request Timeout)\nRaw response content:\n"+raw)
	default:
		fastAPIError(w, http.StatusServiceUnavailable, err.Error())
	}
}

type queryRequest struct {
	Query      *string `json:"query"`
	Collection string  `json:"collection"`
	TopK       *int    `json:"top_k"`
}

func (r *rag) query(w http.ResponseWriter, req *http.Request) {
	var q queryRequest
	if !decodeBody(w, req, &q) {
		return
	}
	if q.Query == nil {
		validation(w, "missing", "query", "Field required", nil)
		return
	}
	if strings.TrimSpace(*q.Query) == "" {
		validation(w, "string_too_short", "query", "String should have at least 1 character", *q.Query)
		return
	}
	k := 5
	if q.TopK != nil {
		k = *q.TopK
	}
	if k < 1 || k > 100 {
		validation(w, "less_than_equal", "top_k", "Input should be between 1 and 100", k)
		return
	}
	if q.Collection == "" {
		q.Collection = "default"
	}
	ctx := req.Context()
	r.queries.Add(1)
	start := time.Now()
	if err := r.db.acquire(ctx); err != nil {
		r.failure(w, err)
		return
	}
	held := true
	releaseDB := func() {
		if held {
			held = false
			r.db.release()
		}
	}
	defer releaseDB()
	sleepCtx(ctx, r.cfg.scaled(r.cfg.RAG.DB.QueryTime))
	sleepCtx(ctx, r.cfg.scaled(r.cfg.RAG.EmbedPerChunk))
	vec := embed(*q.Query, r.cfg.RAG.Dimensions)
	if err := r.vectors.acquire(ctx, r.cfg.scaled(r.cfg.RAG.VectorPool.WaitTimeout)); err != nil {
		r.failure(w, err)
		return
	}
	searchStart := time.Now()
	hits, scanned := r.store.search(q.Collection, vec, k)
	cost := r.cfg.scaled(r.cfg.RAG.SearchBase + time.Duration(scanned)*r.cfg.RAG.SearchPerVector)
	sleepCtx(ctx, cost-time.Since(searchStart))
	r.vectors.release()
	r.searches.Add(1)
	r.searchNanos.Add(int64(time.Since(searchStart)))
	if hits == nil {
		hits = []hit{}
	}
	releaseDB() // retrieval is done; the model reads the chunks without the database
	tokens, device := r.readContext(ctx, len(hits))
	writeJSON(w, http.StatusOK, map[string]any{
		"query": *q.Query, "collection": q.Collection, "results": hits,
		"searched_vectors": scanned, "context_tokens": tokens, "context_device": device,
		"took_ms": float64(time.Since(start).Microseconds()) / 1000,
	})
}

// readContext is the model reading the retrieved chunks: on the GPU, or on
// the CPU when the GPU's memory is short. The request's database
// connection is back in the pool by then.
func (r *rag) readContext(ctx context.Context, hits int) (tokens int, device string) {
	c := r.cfg.RAG.Context
	tokens, device, per := hits*c.TokensPerHit, "gpu", c.GPUPerToken
	if r.gpuShare != nil && r.gpuShare() >= c.CPUFallbackAt {
		device, per = "cpu", c.CPUPerToken
		r.cpuContexts.Add(1)
	}
	sleepCtx(ctx, r.cfg.scaled(time.Duration(tokens)*per))
	return tokens, device
}

type indexRequest struct {
	Collection string `json:"collection"`
	Documents  []struct {
		ID       string         `json:"id"`
		Text     string         `json:"text"`
		Metadata map[string]any `json:"metadata"`
	} `json:"documents"`
}

func (r *rag) index(w http.ResponseWriter, req *http.Request) {
	var in indexRequest
	if !decodeBody(w, req, &in) {
		return
	}
	if len(in.Documents) == 0 {
		validation(w, "too_short", "documents", "List should have at least 1 item after validation, not 0", []any{})
		return
	}
	for i, d := range in.Documents {
		if strings.TrimSpace(d.Text) == "" {
			fastAPIError(w, http.StatusUnprocessableEntity, []any{map[string]any{"type": "string_too_short",
				"loc": []any{"body", "documents", i, "text"}, "msg": "String should have at least 1 character", "input": d.Text}})
			return
		}
	}
	if in.Collection == "" {
		in.Collection = "default"
	}
	ctx := req.Context()
	r.indexes.Add(1)
	if err := r.db.acquire(ctx); err != nil {
		r.failure(w, err)
		return
	}
	defer r.db.release()
	var pts []point
	var ids []string
	for _, d := range in.Documents {
		if d.ID == "" {
			d.ID = fmt.Sprintf("doc-%d", r.ids.Add(1))
		}
		ids = append(ids, d.ID)
		for j, c := range chunkText(d.Text, r.cfg.RAG.ChunkWords) {
			pts = append(pts, point{id: fmt.Sprintf("%s#%d", d.ID, j), doc: d.ID, text: c, vector: embed(c, r.cfg.RAG.Dimensions)})
		}
	}
	sleepCtx(ctx, r.cfg.scaled(time.Duration(len(pts))*r.cfg.RAG.EmbedPerChunk))
	if err := r.vectors.acquire(ctx, r.cfg.scaled(r.cfg.RAG.VectorPool.WaitTimeout)); err != nil {
		r.failure(w, err)
		return
	}
	sleepCtx(ctx, r.cfg.scaled(time.Duration(len(pts))*r.cfg.RAG.UpsertPerVector))
	total := r.store.upsert(in.Collection, pts)
	r.vectors.release()
	sleepCtx(ctx, r.cfg.scaled(time.Duration(len(in.Documents))*r.cfg.RAG.DB.QueryTime))
	writeJSON(w, http.StatusOK, map[string]any{"status": "indexed", "collection": in.Collection, "document_ids": ids,
		"chunks": len(pts), "collection_vectors": total})
}

// ragStats is the JSON of GET /stats.
type ragStats struct {
	Queries         int64          `json:"queries"`
	Indexes         int64          `json:"indexes"`
	VectorTimeouts  int64          `json:"vector_timeouts"`
	DBErrors        int64          `json:"db_errors"`
	DBRefused       int64          `json:"db_refused"`
	DBPoolTimeouts  int64          `json:"db_pool_timeouts"`
	DBOpen          int            `json:"db_open"`
	DBInUse         int            `json:"db_in_use"`
	VectorInUse     int            `json:"vector_in_use"`
	VectorWaiting   int64          `json:"vector_waiting"`
	Collections     map[string]int `json:"collections"`
	MeanSearchMilli float64        `json:"mean_search_ms"`
	CPUContexts     int64          `json:"cpu_contexts"` // contexts read on the CPU under GPU memory pressure
}

func (r *rag) stats() ragStats {
	r.db.mu.Lock()
	s := ragStats{DBRefused: r.db.refused, DBPoolTimeouts: r.db.timeouts, DBOpen: r.db.open, DBInUse: r.db.used}
	r.db.mu.Unlock()
	s.Queries, s.Indexes = r.queries.Load(), r.indexes.Load()
	s.VectorTimeouts, s.DBErrors = r.vectorTimeouts.Load(), r.dbErrors.Load()
	s.CPUContexts = r.cpuContexts.Load()
	s.VectorInUse, s.VectorWaiting = len(r.vectors.slots), r.vectors.waiting.Load()
	s.Collections = r.store.sizes()
	if n := r.searches.Load(); n > 0 {
		s.MeanSearchMilli = float64(r.searchNanos.Load()) / float64(n) / 1e6
	}
	return s
}

func (r *rag) metrics(w http.ResponseWriter, _ *http.Request) {
	s := r.stats()
	m := newPromText()
	m.counter("rag_queries_total", "Queries received.", "", float64(s.Queries))
	m.counter("rag_index_requests_total", "Index requests received.", "", float64(s.Indexes))
	m.counter("rag_vector_timeouts_total", "Requests failed waiting for a vector-store connection (HTTP 504).", "", float64(s.VectorTimeouts))
	m.counter("rag_db_errors_total", "Requests failed on the database pool.", "", float64(s.DBErrors))
	m.counter("rag_context_cpu_total", "Contexts read on the CPU because the GPU's memory was short.", "", float64(s.CPUContexts))
	m.gauge("rag_vector_pool_in_use", "Vector-store connections in use.", "", float64(s.VectorInUse))
	m.gauge("rag_vector_pool_waiting", "Requests waiting for a vector-store connection.", "", float64(s.VectorWaiting))
	m.gauge("rag_vector_pool_size", "Vector-store pool size.", "", float64(r.cfg.RAG.VectorPool.Size))
	m.gauge("rag_db_connections_open", "Database connections open.", "", float64(s.DBOpen))
	m.gauge("rag_db_connections_in_use", "Database connections checked out.", "", float64(s.DBInUse))
	names := make([]string, 0, len(s.Collections))
	for c := range s.Collections {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		m.gauge("rag_collection_vectors", "Vectors stored per collection.", fmt.Sprintf("collection=%q", c), float64(s.Collections[c]))
	}
	m.gauge("rag_search_seconds_mean", "Mean vector search time.", "", s.MeanSearchMilli/1000)
	m.write(w)
}
