package sim

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSearch is the real CPU cost of one brute-force search, which the
// modelled cost (search_per_vector) must dominate.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("vectors=%d", n), func(b *testing.B) {
			s := newStore()
			pts := make([]point, n)
			for i := range pts {
				text := fmt.Sprintf("chunk %d about gpu vectors and python %d", i, i*7)
				pts[i] = point{id: fmt.Sprint(i), text: text, vector: embed(text, 256)}
			}
			s.upsert("c", pts)
			q := embed("python gpu", 256)
			b.ResetTimer()
			for b.Loop() {
				s.search("c", q, 5)
			}
		})
	}
}

// BenchmarkChatCompletion is the sim's own cost per streamed 150-token
// chat completion with service times scaled to nothing: the ceiling of
// requests per second one core can serve.
func BenchmarkChatCompletion(b *testing.B) {
	cfg := DefaultConfig()
	cfg.TimeScale = 1e-9
	cfg.Gateway.GPUMemoryMiB = 1 << 20
	h := newGateway(cfg).handler()
	body := []byte(`{"model":"chat-7b","messages":[{"role":"user","content":"Explain Python decorators"}],"max_tokens":150,"stream":true,"stream_options":{"include_usage":true}}`)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body)))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
