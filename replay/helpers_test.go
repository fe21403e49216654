package replay

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// upstream is a fast local OpenAI-like service that counts what it got and
// the most requests it had in flight at once.
type upstream struct {
	*httptest.Server
	hits     atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
	delay    time.Duration
	lastAuth atomic.Value
}

func newUpstream(t testing.TB, delay time.Duration) *upstream {
	u := &upstream{delay: delay}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	n := u.inflight.Add(1)
	defer u.inflight.Add(-1)
	for {
		p := u.peak.Load()
		if n <= p || u.peak.CompareAndSwap(p, n) {
			break
		}
	}
	u.hits.Add(1)
	u.lastAuth.Store(r.Header.Get("Authorization"))
	body, _ := io.ReadAll(r.Body)
	if u.delay > 0 && r.URL.Path != "/health" {
		select {
		case <-time.After(u.delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case r.URL.Path == "/v1/chat/completions" && strings.Contains(string(body), `"stream":true`):
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n")
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	case r.URL.Path == "/v1/chat/completions":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"content":"Hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`)
	case r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"id":"m"}]}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	}
}

// gatewayCapture builds exchanges of a gateway: sessions of chat,
// models and health calls, every fourth chat streamed.
func gatewayCapture(sessions, perSession int) []captures.Exchange {
	var xs []captures.Exchange
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for s := 0; s < sessions; s++ {
		for q := 0; q < perSession; q++ {
			x := captures.Exchange{
				ID: fmt.Sprintf("s%d-%d", s, q), Service: "gateway", Session: fmt.Sprintf("s%d", s), Seq: int64(q),
				StartNS: t0 + int64(s)*int64(time.Minute) + int64(q)*int64(3*time.Second), DurationNS: int64(time.Second),
				Scheme: "http", Host: "recorded.invalid:9", Status: 200,
				ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"}},
			}
			switch q % 3 {
			case 0:
				x.Operation, x.Method, x.Path = "chat.completions", "POST", "/v1/chat/completions"
				stream := "false"
				if (s+q)%4 == 0 {
					stream = "true"
				}
				x.ReqBody = []byte(`{"model":"m","stream":` + stream + `,"messages":[{"role":"user","content":"hi"}]}`)
			case 1:
				x.Operation, x.Method, x.Path = "models.list", "GET", "/v1/models"
			case 2:
				x.Operation, x.Method, x.Path = "health", "GET", "/health"
			}
			xs = append(xs, x)
		}
	}
	return xs
}

// memWriter collects result rows in memory.
type memWriter struct{ rows []captures.Result }

func (m *memWriter) Write(rows ...captures.Result) error {
	m.rows = append(m.rows, rows...)
	return nil
}
func (m *memWriter) Close() error { return nil }

// runAndRead runs with opts and reads the result files back.
func runAndRead(t testing.TB, ctx context.Context, opts Options) (*RunInfo, []captures.Result) {
	t.Helper()
	info, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return info, readResults(t, opts.Out)
}

func readResults(t testing.TB, dir string) []captures.Result {
	t.Helper()
	r, err := captures.NewReader[captures.Result]([]string{dir}, captures.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []captures.Result
	for r.Next() {
		out = append(out, r.Batch()...)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartNS < out[j].StartNS })
	return out
}

func mustProfile(t testing.TB, y string) *Profile {
	t.Helper()
	p, err := ParseProfile([]byte(y), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shareTolerance is how far, in points, a replayed share of n requests may
// stand from the wantPct it was drawn with: 3 standard errors of a
// binomial share, and at least floor. With a few hundred requests a fixed
// bound of a few points is under 2 standard errors and fails one run in
// ten on chance alone.
func shareTolerance(wantPct float64, n int, floor float64) float64 {
	p := wantPct / 100
	return max(floor, 300*math.Sqrt(p*(1-p)/float64(max(n, 1))))
}
