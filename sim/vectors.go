package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"sync"
	"unicode"
)

// embed is a deterministic hashing embedder: each lower-cased word adds ±1
// to one of dim buckets (sign and bucket from its hash), then the vector is
// L2-normalised, so texts sharing words score high under cosine similarity.
func embed(text string, dim int) []float32 {
	v := make([]float32, dim)
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		h := fnv.New64a()
		_, _ = h.Write([]byte(w))
		x := h.Sum64()
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		v[x%uint64(dim)] += sign
	}
	var n float64
	for _, f := range v {
		n += float64(f) * float64(f)
	}
	if n > 0 {
		inv := float32(1 / math.Sqrt(n))
		for i := range v {
			v[i] *= inv
		}
	}
	return v
}

// chunkText splits a document into chunks of at most words words.
func chunkText(text string, words int) []string {
	f := strings.Fields(text)
	var out []string
	for i := 0; i < len(f); i += words {
		out = append(out, strings.Join(f[i:min(i+words, len(f))], " "))
	}
	return out
}

// point is one stored chunk.
type point struct {
	id     string
	doc    string
	text   string
	vector []float32
}

// store is the in-memory vector store: collections of points searched by
// brute force, so search cost is proportional to collection size.
type store struct {
	mu          sync.RWMutex
	collections map[string][]point
}

func newStore() *store { return &store{collections: map[string][]point{}} }

func (s *store) upsert(collection string, pts []point) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.collections[collection] = append(s.collections[collection], pts...)
	return len(s.collections[collection])
}

func (s *store) size(collection string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.collections[collection])
}

func (s *store) sizes() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]int{}
	for c, p := range s.collections {
		out[c] = len(p)
	}
	return out
}

type hit struct {
	ID    string  `json:"id"`
	DocID string  `json:"doc_id"`
	Text  string  `json:"text"`
	Score float64 `json:"score"`
}

// search scores every point of the collection against q (cosine: both are
// unit vectors) and returns the best k, and how many points it scanned.
func (s *store) search(collection string, q []float32, k int) ([]hit, int) {
	s.mu.RLock()
	pts := s.collections[collection]
	s.mu.RUnlock()
	// pts is append-only: the slice header read under the lock stays valid.
	hits := make([]hit, 0, len(pts))
	for _, p := range pts {
		var dot float32
		for i := range q {
			dot += q[i] * p.vector[i]
		}
		hits = append(hits, hit{ID: p.id, DocID: p.doc, Text: p.text, Score: float64(dot)})
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].Score > hits[j].Score })
	return hits[:min(k, len(hits))], len(pts)
}

var seedTopics = []string{
	"Python decorators wrap a function to add behaviour such as logging caching or timing without changing its code",
	"GPU computing in Python uses CuPy Numba or PyTorch to move arrays to device memory and launch kernels in parallel",
	"Vector databases such as Qdrant store embeddings and answer nearest neighbour queries with cosine similarity",
	"Connection pools keep a fixed number of open database connections and make callers wait when all are busy",
	"Profiling Python code with cProfile and line profilers shows where time goes before any optimisation",
	"Batching requests on a GPU raises throughput but each request waits longer for its tokens",
	"PostgreSQL limits the number of client connections with max_connections and refuses new ones beyond it",
	"Retrieval augmented generation retrieves relevant chunks and passes them to a language model as context",
}

// seedDocument returns the i-th deterministic document of the seed corpus.
func seedDocument(i, words int) string {
	var b strings.Builder
	for b.Len() < words*7 {
		fmt.Fprintf(&b, "%s (note %d). ", seedTopics[(i+b.Len())%len(seedTopics)], i)
	}
	return b.String()
}
