package proxy

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzMayHoldTokenBytes: the anchored prefilter of bodies agrees with the
// byte-by-byte one on any input, and says yes wherever findTokens finds
// something, truncated or not: a no from it skips the search.
func FuzzMayHoldTokenBytes(f *testing.F) {
	for _, p := range tokenPrefixes() {
		f.Add([]byte(`{"k":"` + p + `abcdefghijklmnopqrstuvwxyz0123456789"}`))
		f.Add([]byte(p))
	}
	f.Add([]byte(`{"usage":{"prompt_tokens":1},"model":"gpt-4o-mini","id":"chatcmpl-1"}`))
	f.Add([]byte("x_sk-Bearer earer EARE I_J-"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := mayHoldTokenBytes(b), mayHoldToken(b)
		if got != want {
			t.Fatalf("mayHoldTokenBytes(%q) = %v, mayHoldToken %v", b, got, want)
		}
		for _, trunc := range []bool{false, true} {
			if len(findTokens(b, trunc, nil)) > 0 && !got {
				t.Fatalf("findTokens(%q, %v) finds a token the prefilter missed", b, trunc)
			}
		}
	})
}

// TestMayHoldTokenBytesSpliced: every prefix spliced at random places of
// prose and JSON, next to anchor bytes that start nothing, is seen.
func TestMayHoldTokenBytesSpliced(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	filler := `{"id":"chatcmpl-9","choices":[{"finish_reason":"stop","message":{"content":"I think - yes_no JSON"}}]} `
	for range 2000 {
		base := strings.Repeat(filler, 1+rng.IntN(4))
		if !mayHoldTokenBytes([]byte(base)) == mayHoldToken(base) {
			t.Fatalf("the prefilters disagree on %q", base)
		}
		p := tokenPrefixes()[rng.IntN(len(tokenPrefixes()))]
		at := rng.IntN(len(base) + 1)
		s := base[:at] + p + base[at:]
		if !mayHoldTokenBytes([]byte(s)) {
			t.Fatalf("prefix %q at %d not seen in %q", p, at, s)
		}
	}
}

// TestBearerAtTheEnd: a header value or body that ends with the word
// "Bearer" is recorded (the search for the credentials after it read past
// the end, a panic on the writer goroutine that took the recorder down).
func TestBearerAtTheEnd(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "token type: Bearer")
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	req, _ := http.NewRequest("POST", base+"/v1/auth", strings.NewReader("scheme=0 Bearer"))
	req.Header.Set("X-Scheme", "the scheme is Bearer")
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); string(body) != "token type: Bearer" {
		t.Errorf("body %q", body)
	}
	rows := stop()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	if string(rows[0].RespBody) != "token type: Bearer" || header(rows[0].ReqHeaders, "X-Scheme") != "the scheme is Bearer" {
		t.Errorf("row %q / %q, want the texts as sent", rows[0].RespBody, header(rows[0].ReqHeaders, "X-Scheme"))
	}
}
