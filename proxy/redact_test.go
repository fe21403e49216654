package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/captures"
)

// TestRedactBody: table of bodies and what must and must not change.
func TestRedactBody(t *testing.T) {
	t.Parallel()
	rd := newRedactor(false, nil)
	p := rd.placeholder
	js := http.Header{"Content-Type": {"application/json"}}
	sse := http.Header{"Content-Type": {"text/event-stream"}}
	cases := []struct {
		why        string
		in         string
		h          http.Header
		truncated  bool
		want       string // "" with same: unchanged
		mustNotSee []string
	}{
		{"usage counts and page tokens are not credentials", `{"max_tokens":5,"usage":{"prompt_tokens":1},"next_page_token":"p","token_type":"bearer"}`, js, false, "", nil},
		{"a named field at depth", `{"a":[{"b":{"Client-Secret":"xyz"}}]}`, js, false, `{"a":[{"b":{"Client-Secret":"` + p("xyz") + `"}}]}`, nil},
		{"every scalar under a credential object", `{"credentials":{"user":"u","pin":1234,"ok":true}}`, js, false, `{"credentials":{"user":"` + p("u") + `","pin":"` + p("1234") + `","ok":true}}`, nil},
		{"escaped secret decoded before keying", `{"password":"a\"b"}`, js, false, `{"password":"` + p(`a"b`) + `"}`, nil},
		{"JSON inside a string", `{"arguments":"{\"api_key\":\"k1\",\"q\":\"x<y\"}"}`, js, false, `{"arguments":"{\"api_key\":\"` + p("k1") + `\",\"q\":\"x<y\"}"}`, nil},
		{"a body cut inside the secret", `{"x":1,"api_key":"abcdefgh`, js, true, "", []string{"abcdefgh"}},
		{"no content type, still JSON", `{"token":"t0k"}`, nil, false, `{"token":"` + p("t0k") + `"}`, nil},
		{"form", `a=1&client_secret=s%20s&b=2`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, false, "a=1&client_secret=" + strings.ReplaceAll(p("s s"), ":", "%3A") + "&b=2", nil},
		{"SSE data lines", "event: x\ndata: {\"token\":\"t\"}\n\ndata: [DONE]\n\n", http.Header{"Content-Type": {"text/event-stream"}}, false,
			"event: x\ndata: {\"token\":\"" + p("t") + "\"}\n\ndata: [DONE]\n\n", nil},
		{"token shapes in text", "k=sk-abcdefghijklmnopqrstuvwxyz and AKIAABCDEFGHIJKLMNOP.", http.Header{"Content-Type": {"text/plain"}}, false,
			"k=" + p("sk-abcdefghijklmnopqrstuvwxyz") + " and " + p("AKIAABCDEFGHIJKLMNOP") + ".", nil},
		{"words that merely start alike", "task-abcdefghijklmnopqrstuvwxyz risk-free AKIA short, the bearer instruments", http.Header{"Content-Type": {"text/plain"}}, false, "", nil},
		{"a bearer token in text", "curl -H 'Authorization: Bearer abc.def-123456'", nil, false, "curl -H 'Authorization: Bearer " + p("abc.def-123456") + "'", nil},
		{"a token cut by the body cap", "key sk-abcdef", nil, true, "key " + p("sk-abcdef"), nil},
		{"not JSON at all", "\x00\x01binary{", nil, false, "", nil},
		{"a key spread over two events, one of them escaped", "data: {\"d\":\"k \\u0073k-abcdefghij\"}\n\ndata: {\"d\":\"klmnopqrst ok\"}\n\n", sse, false,
			"data: {\"d\":\"k " + p("sk-abcdefghijklmnopqrst") + "\"}\n\ndata: {\"d\":\" ok\"}\n\n", nil},
		{"a named field of tool-call arguments spread over three events", "data: {\"a\":\"{\\\"api_\"}\n\ndata: {\"a\":\"key\\\":\\\"hunter\"}\n\ndata: {\"a\":\"2\\\",\\\"n\\\":1}\"}\n\n", sse, false,
			"data: {\"a\":\"{\\\"api_\"}\n\ndata: {\"a\":\"key\\\":\\\"" + p("hunter2") + "\\\"\"}\n\ndata: {\"a\":\",\\\"n\\\":1}\"}\n\n", nil},
		{"text data spread over two events", "data: key sk-abcdefghij\n\ndata: klmnopqrst ok\n\n", sse, false,
			"data: key " + p("sk-abcdefghijklmnopqrst") + "\n\ndata:  ok\n\n", nil},
		{"equal strings at different paths are not joined", "data: {\"a\":\"sk-abcdefghij\",\"b\":\"klmnopqrst\"}\n\n", sse, false, "", nil},
	}
	for _, c := range cases {
		h := c.h
		if h == nil {
			h = http.Header{}
		}
		got := string(rd.body([]byte(c.in), h, c.truncated))
		want := c.want
		if want == "" && c.mustNotSee == nil {
			want = c.in
		}
		if want != "" && got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.why, got, want)
		}
		for _, s := range c.mustNotSee {
			if strings.Contains(got, s) {
				t.Errorf("%s: %q still in %s", c.why, s, got)
			}
		}
	}
}

func TestSecretName(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"api_key", "apiKey", "X-Api-Key", "access_token", "client_secret", "OPENAI_API_KEY", "db.password", "X-Auth-Token", "token", "authorization",
		"X-Amz-Security-Token", "X-Amz-Credential", "Ocp-Apim-Subscription-Key", "X-Goog-Api-Key"} {
		if !secretName(n) {
			t.Errorf("%q not taken for a credential", n)
		}
	}
	for _, n := range []string{"max_tokens", "prompt_tokens", "next_page_token", "token_type", "model", "key", "Content-Type", "X-Ratelimit-Remaining-Tokens"} {
		if secretName(n) {
			t.Errorf("%q taken for a credential", n)
		}
	}
}

// FuzzRedactJSON: any input redacts without a panic, and a document with
// no credential-named field and no token shape comes back unchanged.
func FuzzRedactJSON(f *testing.F) {
	f.Add(`{"a":[1,2,{"b":"c"}],"api_key":"x"}`)
	f.Add(`{"x":"{\"token\":\"y\"}"`)
	f.Add(`[{"password":`)
	rd := newRedactor(false, nil)
	h := http.Header{"Content-Type": {"application/json"}}
	f.Fuzz(func(t *testing.T, s string) {
		out := rd.body([]byte(s), h, false)
		if !bytes.Equal(out, []byte(s)) && !captures.ContainsPlaceholder(string(out)) {
			t.Fatalf("changed %q into %q without a placeholder", s, out)
		}
	})
}

func BenchmarkRedact(b *testing.B) {
	rd := newRedactor(false, nil)
	chat := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"` + strings.Repeat("You are a helpful assistant. ", 30) + `"},{"role":"user","content":"hello"}],"max_tokens":256,"stream":true}`)
	var sse bytes.Buffer
	for sse.Len() < 1<<20 {
		sse.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"token "}}]}` + "\n\n")
	}
	for _, c := range []struct {
		name string
		body []byte
		ct   string
	}{{"chat-1KiB", chat, "application/json"}, {"sse-1MiB", sse.Bytes(), "text/event-stream"}} {
		h := http.Header{"Content-Type": {c.ct}}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				rd.body(c.body, h, false)
			}
		})
	}
}

func TestRedactURLHeaders(t *testing.T) {
	t.Parallel()
	rd := newRedactor(false, nil)
	got := rd.header(http.Header{"Location": {"https://app/cb?code=abc123&state=s#top"}, "X-Other": {"https://app/cb?code=abc123"}})
	want := "https://app/cb?code=" + strings.ReplaceAll(rd.placeholder("abc123"), ":", "%3A") + "&state=s#top"
	if header(got, "Location") != want || header(got, "X-Other") != "https://app/cb?code=abc123" {
		t.Errorf("got %v, want Location %s and X-Other as it was", got, want)
	}
}

// FuzzRedactStream: any stream body redacts without a panic (the joined
// text's edits map back into the body), and a changed body holds a
// placeholder.
func FuzzRedactStream(f *testing.F) {
	f.Add("data: {\"d\":\"k sk-abcdefghij\"}\n\ndata: {\"d\":\"klmnopqrst ok\"}\n\n")
	f.Add("data: {\"a\":\"{\\\"api_\"}\n\ndata: {\"a\":\"key\\\":\\\"x\\u00e9\"}\n\ndata: {\"a\":\"2\\\"}\"}\n\n")
	f.Add("data: sk-abc\ndata: \\u0073defghijklmnopqrstuvw\n\n")
	rd := newRedactor(false, nil)
	h := http.Header{"Content-Type": {"text/event-stream"}}
	f.Fuzz(func(t *testing.T, s string) {
		out := rd.body([]byte(s), h, false)
		if !bytes.Equal(out, []byte(s)) && !captures.ContainsPlaceholder(string(out)) {
			t.Fatalf("changed %q into %q without a placeholder", s, out)
		}
	})
}

// FuzzOpenAIFields: on every valid JSON document, reading model and usage
// without decoding the rest agrees with json.Unmarshal into openAIBody.
func FuzzOpenAIFields(f *testing.F) {
	f.Add(`{"model":"m","choices":[{"message":{"content":"a \"}\" b"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`)
	f.Add(`{"Model":"x","usage":null,"usage":{"input_tokens":3}}`)
	f.Add(`{"mod\u0065l":"esc","model":"m"}`)
	f.Add(`{"usage":{"prompt_tokens":"1"}}`)
	f.Add(`[{"model":"m"}]`)
	f.Add(` { } `)
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			return
		}
		var want openAIBody
		werr := json.Unmarshal([]byte(s), &want)
		got, ok := openAIFields([]byte(s))
		if ok != (werr == nil) {
			t.Fatalf("%q: ok %v, json.Unmarshal: %v", s, ok, werr)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v, want %+v", s, got, want)
		}
	})
}

// TestMayHoldToken: the one-pass prefilter says yes wherever findTokens
// could find something, at any position, and no for common header values.
func TestMayHoldToken(t *testing.T) {
	t.Parallel()
	for _, sh := range tokenShapes {
		for _, s := range []string{sh.prefix, "x" + sh.prefix, "a b " + sh.prefix + "tail"} {
			if !mayHoldToken(s) || !mayHoldTokenBytes([]byte(s)) {
				t.Errorf("mayHoldToken(%q) = false", s)
			}
		}
	}
	for _, s := range []string{"Bearer x", "x bearer", "BEARER"} {
		if !mayHoldToken(s) {
			t.Errorf("mayHoldToken(%q) = false", s)
		}
	}
	for _, s := range []string{"application/json", "Go-http-client/1.1", "Wed, 02 Dec 2026 01:50:00 GMT", "keep-alive", "1024", "sk", "ghp"} {
		if mayHoldToken(s) {
			t.Errorf("mayHoldToken(%q) = true", s)
		}
	}
}
