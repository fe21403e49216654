package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/internal/nodefixture"
)

// choicesClient streams a completion with n = 2 through the official
// openai npm client and prints, per choice index, the text and the tool
// call arguments it assembled. Usage: node -e SCRIPT BASE_URL chat|completions
const choicesClient = `
import OpenAI from "openai";
const [baseURL, api] = process.argv.slice(1);
const client = new OpenAI({ baseURL, apiKey: "sk-test-choices-key", maxRetries: 0, timeout: 20000 });
const text = {}, args = {};
if (api === "chat") {
  const stream = await client.chat.completions.create({
    model: "m", n: 2, stream: true, stream_options: { include_usage: true },
    messages: [{ role: "user", content: "two answers" }],
  });
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text[c.index] = (text[c.index] ?? "") + (c.delta?.content ?? "");
      for (const tc of c.delta?.tool_calls ?? []) {
        args[c.index] = (args[c.index] ?? "") + (tc.function?.arguments ?? "");
      }
    }
  }
} else {
  const stream = await client.completions.create({ model: "m", n: 2, stream: true, prompt: "two answers" });
  for await (const chunk of stream) {
    for (const c of chunk.choices) text[c.index] = (text[c.index] ?? "") + c.text;
  }
}
console.log(JSON.stringify({ text, args }));
`

// Secrets the two choices write out, each split between two of its
// events with an event of the other choice between them; the halves alone
// have no token shape.
const (
	choiceKey0  = "sk-proj-Choice0123456789abcdefXYZ"
	choiceKey1  = "ghp_Choice1abcdefghijklmnopqrstuvwxyz0123"
	choiceArg0  = "S3CR3T-choice-arg-zero-4a1f"
	choiceArg1  = "S3CR3T-choice-arg-one-9c2d"
	choiceSplit = 5
)

// choiceEvents are the SSE events of a stream with two choices whose
// deltas interleave: choice 0, choice 1, choice 0, choice 1, ... For the
// chat API each choice also streams one tool call whose arguments hold a
// credential-named field, split in two.
func choiceEvents(api string) []string {
	text := [2][2]string{
		{"my key " + choiceKey0[:choiceSplit], choiceKey0[choiceSplit:] + " ok"},
		{"other " + choiceKey1[:choiceSplit], choiceKey1[choiceSplit:] + " fine"},
	}
	args := [2][2]string{
		{`{"api_key":"` + choiceArg0[:choiceSplit], choiceArg0[choiceSplit:] + `","q":"zero"}`},
		{`{"password":"` + choiceArg1[:choiceSplit], choiceArg1[choiceSplit:] + `","q":"one"}`},
	}
	js := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var ev []string
	for half := range 2 {
		for c := range 2 {
			if api == "chat" {
				ev = append(ev, fmt.Sprintf(`{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":%d,"delta":{"content":%s},"finish_reason":null}]}`, c, js(text[c][half])))
			} else {
				ev = append(ev, fmt.Sprintf(`{"id":"x","object":"text_completion","created":1,"model":"m","choices":[{"text":%s,"index":%d,"logprobs":null,"finish_reason":null}]}`, js(text[c][half]), c))
			}
		}
	}
	if api == "chat" {
		for half := range 2 {
			for c := range 2 {
				fn := fmt.Sprintf(`{"arguments":%s}`, js(args[c][half]))
				if half == 0 {
					fn = fmt.Sprintf(`{"name":"lookup","arguments":%s}`, js(args[c][half]))
				}
				ev = append(ev, fmt.Sprintf(`{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":%d,"delta":{"tool_calls":[{"index":0,"id":"call_%d","type":"function","function":%s}]},"finish_reason":null}]}`, c, c, fn))
			}
		}
		ev = append(ev, `{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19}}`)
	}
	return append(ev, "[DONE]")
}

// choiceTexts assembles a stored stream per choice index, as the client
// does.
func choiceTexts(t *testing.T, body []byte) (text, args map[int]string) {
	t.Helper()
	text, args = map[int]string{}, map[int]string{}
	for _, line := range strings.Split(string(body), "\n") {
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Index int
				Text  string
				Delta struct {
					Content   string
					ToolCalls []struct {
						Function struct{ Arguments string }
					} `json:"tool_calls"`
				}
			}
		}
		if err := json.Unmarshal([]byte(d), &ev); err != nil {
			t.Fatalf("stored event %q no longer parses: %v", d, err)
		}
		for _, c := range ev.Choices {
			text[c.Index] += c.Text + c.Delta.Content
			for _, tc := range c.Delta.ToolCalls {
				args[c.Index] += tc.Function.Arguments
			}
		}
	}
	return text, args
}

// TestInterleavedChoices streams completions with n = 2 from the openai npm
// client, the chat API (text and a tool call per choice) and the legacy
// completions API, through the proxy to an upstream that interleaves the
// two choices' events. Each choice wrote out a secret split between two of
// its events with the other choice's event between them. The client gets
// each choice's text as sent; in the capture (our reader and DuckDB) each
// choice's assembled text has one placeholder where its secret was and the
// text around it, each choice's tool-call arguments are still JSON with the
// credential field a placeholder, and no secret is anywhere.
func TestInterleavedChoices(t *testing.T) {
	t.Parallel()
	dir, node := nodefixture.Dir(t, "openai")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		api := "completions"
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			api = "chat"
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range choiceEvents(api) {
			fmt.Fprintf(w, "data: %s\n\n", ev)
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	out := t.TempDir()
	_, base, stop := recorder(t, up.URL, Options{Out: out})

	wantText := map[string]string{"0": "my key " + choiceKey0 + " ok", "1": "other " + choiceKey1 + " fine"}
	for _, api := range []string{"chat", "completions"} {
		cmd := exec.Command(node, "--input-type=module", "-e", choicesClient, base+"/v1", api)
		cmd.Dir = dir
		raw, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openai client (%s): %v\n%s", api, err, raw)
		}
		var got struct{ Text, Args map[string]string }
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("client output %q: %v", raw, err)
		}
		for k, want := range wantText {
			if got.Text[k] != want {
				t.Errorf("%s: client assembled choice %s as %q, want %q", api, k, got.Text[k], want)
			}
		}
		if api == "chat" && (!strings.Contains(got.Args["0"], choiceArg0) || !strings.Contains(got.Args["1"], choiceArg1)) {
			t.Errorf("chat: client's tool arguments %q, want each choice's as sent", got.Args)
		}
	}
	stop()

	rows := capturetest.Read[captures.Exchange](t, out)
	if len(rows) != 2 {
		t.Fatalf("read back %d rows, want 2", len(rows))
	}
	secrets := []string{choiceKey0, choiceKey1, choiceArg0, choiceArg1}
	texts := duckDump(t, out)
	for _, e := range rows {
		texts = append(texts, rowText(t, e))
		text, args := choiceTexts(t, e.RespBody)
		checkAround(t, e.Path+" choice 0", text[0], "my key ", " ok")
		checkAround(t, e.Path+" choice 1", text[1], "other ", " fine")
		if e.Path != "/v1/chat/completions" {
			continue
		}
		if e.PromptTokens != 3 || e.CompletionTokens != 16 {
			t.Errorf("usage %d/%d, want 3/16", e.PromptTokens, e.CompletionTokens)
		}
		for c, field := range map[int]string{0: "api_key", 1: "password"} {
			var doc map[string]string
			if err := json.Unmarshal([]byte(args[c]), &doc); err != nil {
				t.Errorf("choice %d's stored tool arguments %q are no longer JSON: %v", c, args[c], err)
				continue
			}
			if v := doc[field]; !strings.HasPrefix(v, captures.PlaceholderPrefix) || !captures.ContainsPlaceholder(v) || doc["q"] == "" {
				t.Errorf("choice %d's stored tool arguments %q: want %s a placeholder, q kept", c, args[c], field)
			}
		}
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the secret %q is in the capture", s)
			}
		}
	}
}

// checkAround wants before + one placeholder + after.
func checkAround(t *testing.T, where, text, before, after string) {
	t.Helper()
	mid, ok := strings.CutPrefix(text, before)
	if ok {
		mid, ok = strings.CutSuffix(mid, after)
	}
	if !ok || !strings.HasPrefix(mid, captures.PlaceholderPrefix) || !captures.ContainsPlaceholder(mid) || strings.Count(mid, captures.PlaceholderPrefix) != 1 {
		t.Errorf("%s: stored text %q, want %q + one placeholder + %q", where, text, before, after)
	}
}

// TestEventPlace: events that say at their top level which block of the
// answer they continue (Anthropic's content_block_delta "index", the
// Responses API's "output_index"/"content_index") are joined per block, so
// a secret split between two events of one block with another block's
// event between them is found.
func TestEventPlace(t *testing.T) {
	t.Parallel()
	rd := newRedactor(false, nil)
	h := http.Header{"Content-Type": {"text/event-stream"}}
	a, b := "sk-ant-"+"Place0123456789abcdefXYZ", "sk-proj-Place9876543210zyxwvuABC"
	for name, ev := range map[string]func(i int, text string) string{
		"anthropic": func(i int, text string) string {
			return fmt.Sprintf(`event: content_block_delta
data: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%q}}`, i, text)
		},
		"responses": func(i int, text string) string {
			return fmt.Sprintf(`event: response.output_text.delta
data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":%d,"content_index":0,"delta":%q}`, i, text)
		},
	} {
		body := strings.Join([]string{ev(0, "key "+a[:choiceSplit]), ev(1, "other "+b[:choiceSplit]), ev(0, a[choiceSplit:]+" ok"), ev(1, b[choiceSplit:]+" fine")}, "\n\n") + "\n\n"
		got := string(rd.body([]byte(body), h, false))
		if strings.Contains(got, a[choiceSplit:]) || strings.Contains(got, b[choiceSplit:]) || strings.Count(got, captures.PlaceholderPrefix) != 2 {
			t.Errorf("%s: stored\n%s\nwant each block's secret replaced by one placeholder", name, got)
		}
	}
}
