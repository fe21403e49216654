package replay

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/internal/syncbuf"
	"github.com/loadtape/loadtape/sim"
)

// The official OpenAI client streams through the recording proxy with and
// without include_usage; replayed against the sim, analyze counts the
// first kind from usage and the second by chunks, saying so, and a
// chunk count is the client's own count of content chunks plus the
// closing finish chunk.
func TestTokenCountingOpenAIClient(t *testing.T) {
	// Not parallel: load on a shared 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := sim.HealthyConfig() // time scale 1: the sim sends one token per chunk
	suite, err := sim.Start(ctx, cfg, sim.Addrs{Gateway: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer suite.Close()
	gateway := suite.URLs()["gateway"]
	rec := startRecording(t, "gateway", gateway)
	type clientSaw struct {
		ContentChunks int64
		Usage         *struct {
			CompletionTokens int64 `json:"completion_tokens"`
		}
	}
	seen := map[string]clientSaw{}
	for _, mode := range []string{"usage", "nousage"} {
		v := seen[mode]
		if err := json.Unmarshal(runNode(t, "openai", "openai-tokens.mjs", rec.url+"/v1", mode), &v); err != nil {
			t.Fatal(err)
		}
		seen[mode] = v
	}
	recorded := rec.stop()
	if u := seen["usage"].Usage; u == nil || u.CompletionTokens != seen["usage"].ContentChunks || seen["nousage"].Usage != nil {
		t.Fatalf("client saw %+v: want usage only with include_usage, one token per content chunk", seen)
	}
	tokens := seen["usage"].Usage.CompletionTokens

	prof := mustProfile(t, `
scenarios:
  gateway:
    mode: closed
    mix: {chat.completions: 1}
    stages: [{users: 2, duration: 3s}]
    think: {constant: 20ms}
`)
	runDir := t.TempDir()
	var progress syncbuf.Buffer
	_, rows := runAndRead(t, ctx, Options{Exchanges: recorded, Profile: prof, Targets: map[string]string{"gateway": gateway},
		Headers: http.Header{"Authorization": {"Bearer sk-test-openai-key"}}, Out: runDir, Seed: 1, Progress: &progress})
	var usageRows, chunkRows int64
	for _, r := range rows {
		switch {
		case r.ErrorKind != "" || r.Operation != "chat.completions":
		case r.CompletionTokens == tokens:
			usageRows++
		case r.CompletionTokens == 0 && r.TTFTNS > 0:
			chunkRows++
		default:
			t.Errorf("row with %d completion tokens, want %d or none", r.CompletionTokens, tokens)
		}
	}
	if usageRows == 0 || chunkRows == 0 {
		t.Fatalf("replayed %d streams with usage and %d without, want both", usageRows, chunkRows)
	}
	// The live view's last line of the stage: its output tokens per second.
	var live float64
	for _, l := range strings.Split(progress.String(), "\n") {
		if _, rest, ok := strings.Cut(l, " tok/s "); ok {
			live, _ = strconv.ParseFloat(strings.Fields(rest)[0], 64)
		}
	}
	if want := float64(usageRows*tokens+chunkRows*(tokens+1)) / 3; math.Abs(live-want) > 1 {
		t.Errorf("live view: %v tok/s, want %.0f (every stream's tokens over the 3 s stage):\n%s", live, want, progress.String())
	}
	s, err := analyze.Analyze(analyze.Options{Runs: []string{runDir}, WarmUp: &analyze.WarmUp{}})
	if err != nil {
		t.Fatal(err)
	}
	var got *analyze.TokenStats
	for _, st := range s.Stages {
		if o := st.Operations["chat.completions"]; o != nil {
			got = o.Tokens
		}
	}
	if got == nil {
		t.Fatal("no token figures for chat.completions")
	}
	// Every success inside the window (no warm-up trimmed) counts once.
	if got.Counting != analyze.CountMixed || got.Requests != usageRows+chunkRows || got.ChunkCounted != chunkRows {
		t.Errorf("counting %q, %d requests of which %d by chunks; want mixed, %d and %d", got.Counting, got.Requests, got.ChunkCounted, usageRows+chunkRows, chunkRows)
	}
	if want := usageRows*tokens + chunkRows*(tokens+1); got.OutputTokens != want {
		t.Errorf("output tokens %d, want %d × %d from usage + %d × %d chunks (content and the finish chunk)", got.OutputTokens, usageRows, tokens, chunkRows, tokens+1)
	}
}
