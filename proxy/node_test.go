package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/nodefixture"
)

// TestOpenAIClientStream streams a chat completion from the npm openai
// client through the proxy to an upstream that sends SSE events at known
// times: the client gets every token, and every event's recorded offset is
// within 5 ms of when the upstream sent it.
func TestOpenAIClientStream(t *testing.T) {
	// Not parallel: the 5 ms bound is about the proxy, not about sharing
	// two cores with the 1,000-client test.
	dir, node := nodefixture.Dir(t, "openai")
	words := []string{"Decorators ", "wrap ", "a ", "function ", "to ", "extend ", "it."}
	const gap = 25 * time.Millisecond
	withinOnOneTry(t, 5*time.Millisecond, func() []time.Duration {
		var sent []int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-test-proxy-key" {
				http.Error(w, "unexpected "+r.URL.Path, 400)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			send := func(data string) {
				time.Sleep(gap)
				sent = append(sent, time.Now().UnixNano())
				fmt.Fprintf(w, "data: %s\n\n", data)
				w.(http.Flusher).Flush()
			}
			chunk := `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"qwen2.5-14b-instruct-served","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`
			send(fmt.Sprintf(chunk, `{"role":"assistant","content":""}`, "null"))
			for _, wd := range words {
				send(fmt.Sprintf(chunk, fmt.Sprintf(`{"content":%q}`, wd), "null"))
			}
			send(fmt.Sprintf(chunk, `{}`, `"stop"`))
			send(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"qwen2.5-14b-instruct-served","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`)
			send("[DONE]")
		}))
		defer up.Close()
		_, base, stop := recorder(t, up.URL, Options{})

		cmd := exec.Command(node, filepath.Join(dir, "proxy-openai-stream.mjs"), base+"/v1", "stream")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openai client: %v\n%s", err, out)
		}
		var got struct {
			Chunks  int
			Content string
			Usage   struct{ Prompt_tokens, Completion_tokens int64 }
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("client output %q: %v", out, err)
		}
		if got.Content != strings.Join(words, "") || got.Usage.Completion_tokens != 7 {
			t.Errorf("client got %+v", got)
		}
		rows := stop()
		if len(rows) != 1 {
			t.Fatalf("recorded %d exchanges, want 1", len(rows))
		}
		e := rows[0]
		if e.Operation != "chat.completions" || e.Model != "qwen2.5-14b-instruct" || e.PromptTokens != 12 || e.CompletionTokens != 7 || !e.Stream || e.Status != 200 {
			t.Errorf("recorded %s model %q tokens %d/%d stream %v status %d", e.Operation, e.Model, e.PromptTokens, e.CompletionTokens, e.Stream, e.Status)
		}
		if len(e.ChunkOffsetsNS) != len(sent) {
			t.Fatalf("recorded %d event offsets, upstream sent %d events", len(e.ChunkOffsetsNS), len(sent))
		}
		late := make([]time.Duration, len(sent))
		for i, off := range e.ChunkOffsetsNS {
			late[i] = time.Duration(e.StartNS + off - sent[i])
		}
		return late
	})
}

// withinOnOneTry runs a timing measurement up to three times and wants
// every delay of one try in [0, bound]. The bound is about the proxy, but a
// test process sharing two cores with other packages' tests (go test runs
// packages side by side) can be descheduled for longer than the bound at any
// moment; the functional checks inside attempt apply to every try.
func withinOnOneTry(t *testing.T, bound time.Duration, attempt func() []time.Duration) {
	t.Helper()
	var tries []string
	for try := 1; try <= 3; try++ {
		late := attempt()
		worst, at := time.Duration(0), -1
		for i, d := range late {
			if d < 0 || d > bound {
				if at < 0 || d > worst || d < 0 {
					worst, at = d, i
				}
			}
		}
		if at < 0 {
			if try > 1 {
				t.Logf("timing held on try %d after: %s", try, strings.Join(tries, "; "))
			}
			return
		}
		tries = append(tries, fmt.Sprintf("try %d: event %d recorded %v from its send time", try, at, worst))
	}
	t.Errorf("want every event recorded within %v of its send time in one of 3 tries: %s", bound, strings.Join(tries, "; "))
}

// TestOpenAIClientOnce: a non-streamed completion gives model and usage
// from the JSON body.
func TestOpenAIClientOnce(t *testing.T) {
	t.Parallel()
	dir, node := nodefixture.Dir(t, "openai")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c2","object":"chat.completion","created":1,"model":"served","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}`)
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	cmd := exec.Command(node, filepath.Join(dir, "proxy-openai-stream.mjs"), base+"/v1", "once")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"content":"hi"`) {
		t.Fatalf("openai client: %v\n%s", err, out)
	}
	rows := stop()
	if len(rows) != 1 || rows[0].PromptTokens != 4 || rows[0].CompletionTokens != 1 || rows[0].Stream || rows[0].Model != "qwen2.5-14b-instruct" {
		t.Fatalf("recorded %+v", rows)
	}
}
