package analyzetest

import (
	"math/rand/v2"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// Stream makes a model's requests token streams, as an LLM server in
// continuous batching serves them: a request waits for one of the
// model's Servers (its batch slots), spends Prefill before its first
// token, then sends Tokens tokens one per chunk, each taking TokenTime of
// the batch it runs in (the requests in service when it was admitted).
type Stream struct {
	Tokens    int
	Prefill   time.Duration
	TokenTime func(batch int) time.Duration
	// FirstDelay, when set, adds to the prefill of every request of a
	// stage of that many users, as a busy host delays the first token.
	FirstDelay func(users int) time.Duration
}

// start admits req into the batch at t and returns its time in service.
func (s *Stream) start(r *rand.Rand, req *request, t int64, batch, users int) int64 {
	req.admitted = t
	req.prefill = int64(s.Prefill)
	if s.FirstDelay != nil {
		req.prefill += int64(s.FirstDelay(users))
	}
	req.tokNS = int64(float64(s.TokenTime(batch)) * (0.95 + 0.1*r.Float64()))
	return req.prefill + int64(s.Tokens-1)*req.tokNS
}

// fill names the row's operation chat.completions and makes a successful
// row a stream: TTFT after the wait and the prefill, one chunk per token,
// a usage event and [DONE] with the last.
func (s *Stream) fill(row *captures.Result, req *request) {
	row.Operation = "chat.completions"
	if row.ErrorKind != "" || req.admitted == 0 {
		return
	}
	ttft := req.admitted - req.start + req.prefill
	row.TTFTNS, row.TTFBNS = ttft, ttft
	row.ChunkOffsetsNS = make([]int64, 0, s.Tokens+2)
	for k := range s.Tokens {
		row.ChunkOffsetsNS = append(row.ChunkOffsetsNS, ttft+int64(k)*req.tokNS)
	}
	last := row.ChunkOffsetsNS[len(row.ChunkOffsetsNS)-1]
	row.ChunkOffsetsNS = append(row.ChunkOffsetsNS, last, last)
	row.DurationNS = last
	row.PromptTokens, row.CompletionTokens = 120, int64(s.Tokens)
}

// LLM models: token streams whose first token or whose pace gives way.
var (
	// BatchSlots is a server with eight batch slots: past them a request
	// waits for a slot, so its first token comes later and later with
	// users, while each token, once admitted, comes at the same pace.
	BatchSlots = Model{Name: "llm", Users: []int{1, 4, 8, 16, 32, 64}, Servers: 8, Think: 100 * time.Millisecond,
		Stream: &Stream{Tokens: 40, Prefill: 30 * time.Millisecond, TokenTime: func(int) time.Duration { return 10 * time.Millisecond }}}
	// DecodeSlowdown has room for every request, but each step of the
	// batch slows by 5 % per stream in it (memory bandwidth).
	DecodeSlowdown = Model{Name: "llm", Users: []int{1, 4, 8, 16, 32}, Servers: 1000, Think: 100 * time.Millisecond,
		Stream: &Stream{Tokens: 40, Prefill: 30 * time.Millisecond, TokenTime: func(b int) time.Duration {
			return time.Duration(float64(8*time.Millisecond) * (1 + 0.05*float64(b-1)))
		}}}
	// HealthyStream streams at one pace whatever the load.
	HealthyStream = Model{Name: "llm", Users: []int{1, 4, 8, 16, 32}, Servers: 1000, Think: 100 * time.Millisecond,
		Stream: &Stream{Tokens: 40, Prefill: 30 * time.Millisecond, TokenTime: func(int) time.Duration { return 10 * time.Millisecond }}}
)
