package analyze

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze/analyzetest"
)

// The LLM findings on token-stream models: eight batch slots queue,
// a batch whose steps slow with its size slows decoding, a server with
// room and a steady pace raises neither, and a low GPU utilisation beside
// them is said to be low, never called saturation.
func TestLLMFindings(t *testing.T) {
	t.Parallel()
	lowGPU := analyzetest.BatchSlots
	lowGPU.GPU = func(r *rand.Rand, _, _ int) float64 { return 28 + 2*r.Float64() }
	both := analyzetest.BatchSlots // slots and a per-token cost that grows with the batch
	both.Stream = &analyzetest.Stream{Tokens: 40, Prefill: 30 * time.Millisecond, TokenTime: func(b int) time.Duration {
		return time.Duration(float64(8*time.Millisecond) * (1 + 0.1*float64(b-1)))
	}}
	// 20 ms to the first token at one user, 1 ms more per user: 2.6× at
	// 32 users, but 7 % of a 440 ms request.
	jitter := analyzetest.HealthyStream
	jitter.Stream = &analyzetest.Stream{Tokens: 40, Prefill: 20 * time.Millisecond, TokenTime: func(int) time.Duration { return 10 * time.Millisecond },
		FirstDelay: func(users int) time.Duration { return time.Duration(users) * time.Millisecond }}
	for _, tc := range []struct {
		name string
		m    model
		want []string // the LLM kinds among the findings
	}{
		{"batch slots: TTFT grows, TPOT flat", analyzetest.BatchSlots, []string{"queueing/llm"}},
		{"batch slots with the GPU at 30 %", lowGPU, []string{"queueing/llm"}},
		{"a batch whose steps slow as it grows", analyzetest.DecodeSlowdown, []string{"decode_slowdown/llm"}},
		{"slots and a per-token cost growing with the batch", both, []string{"decode_slowdown/llm", "queueing/llm"}},
		{"a steady stream with room for every request", analyzetest.HealthyStream, nil},
		{"a first token a few ms later under load (host scheduling), not a queue", jitter, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := analyseModel(t, tc.m, nil)
			var got []string
			for _, k := range kinds(s.Findings) {
				if strings.HasPrefix(k, "queueing/") || strings.HasPrefix(k, "decode_slowdown/") {
					got = append(got, k)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("LLM findings %v, want %v\n%s", got, tc.want, describe(s))
			}
			for _, f := range s.Findings {
				if f.Kind == KindGPUSaturation {
					t.Errorf("GPU saturation claimed: %s", f.Summary)
				}
				if f.Kind != KindQueueing && f.Kind != KindDecodeSlowdown {
					continue
				}
				if f.Operation != "chat.completions" || f.Action == "" {
					t.Errorf("%s: operation %q, action %q", f.Kind, f.Operation, f.Action)
				}
				if tc.m.GPU != nil && !strings.Contains(f.Summary, "GPU is not saturated") {
					t.Errorf("%s does not say the GPU at 30 %% is not saturated: %s", f.Kind, f.Summary)
				}
				if tc.m.GPU == nil && strings.Contains(f.Summary, "GPU") {
					t.Errorf("%s names a GPU nobody sampled: %s", f.Kind, f.Summary)
				}
				switch ev := f.Evidence.(type) {
				case *QueueingEvidence:
					// Eight slots: waiting starts past 8 users, and about
					// eight requests are in service at the most users.
					if ev.WaitingFromUsers < 8 || ev.WaitingFromUsers > 16 || ev.SlotsEstimate < 5 || ev.SlotsEstimate > 10 {
						t.Errorf("queueing from %d users with %.1f slots, want from 8–16 users with about 8: %s", ev.WaitingFromUsers, ev.SlotsEstimate, f.Summary)
					}
				case *DecodeEvidence:
					if ev.SlopeMSPerStream <= 0 {
						t.Errorf("decode slope %v, want > 0", ev.SlopeMSPerStream)
					}
				}
			}
		})
	}
}
