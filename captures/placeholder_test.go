package captures

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestPlaceholderKeyed(t *testing.T) {
	t.Parallel()
	k1, k2 := []byte("key one"), []byte("key two")
	a, b := Placeholder(k1, "sk-secret"), Placeholder(k1, "sk-secret")
	if a != b {
		t.Fatalf("same key and secret: got %q and %q, want equal", a, b)
	}
	if c := Placeholder(k2, "sk-secret"); c == a {
		t.Fatalf("another key gave the same placeholder %q", c)
	}
	if c := Placeholder(k1, "sk-other"); c == a {
		t.Fatalf("another secret gave the same placeholder %q", c)
	}
	if !strings.HasPrefix(a, PlaceholderPrefix) || len(a) != len(PlaceholderPrefix)+PlaceholderHexLen {
		t.Fatalf("got %q, want %s and %d hex digits", a, PlaceholderPrefix, PlaceholderHexLen)
	}
}

func TestContainsPlaceholder(t *testing.T) {
	t.Parallel()
	p := Placeholder([]byte("k"), "secret")
	js, _ := json.Marshal(map[string]string{"k": p})
	cases := []struct {
		s    string
		want bool
		why  string
	}{
		{p, true, "raw"},
		{"Bearer " + p, true, "inside a header value"},
		{"redacted:297b7bf9", true, "an 8-digit placeholder of older captures"},
		{"api_key=" + url.QueryEscape(p), true, "query-escaped (%3A)"},
		{"api_key=redacted%3a297b7bf9", true, "lower-case escape"},
		{"api_key=redacted%253A297b7bf9", true, "escaped twice"},
		{`{"k":"redacted\u003a297b7bf9"}`, true, "JSON \\u escape"},
		{`{"k":"\u0072edacted:297b7bf9"}`, true, "JSON escape of a letter"},
		{string(js), true, "json.Marshal output"},
		{"REDACTED:297B7BF9", true, "upper case"},
		{"the text was redacted: see page 3", false, "prose, no hex digits"},
		{"redacted:12ab", false, "too few hex digits"},
		{"redacted%3", false, "cut escape"},
		{`100% sure \u00e9 \`, false, "stray escapes"},
		{"", false, "empty"},
	}
	for _, c := range cases {
		if got := ContainsPlaceholder(c.s); got != c.want {
			t.Errorf("%s: ContainsPlaceholder(%q) = %v, want %v", c.why, c.s, got, c.want)
		}
	}
}

func FuzzContainsPlaceholder(f *testing.F) {
	f.Add("redacted%3A297b7bf9")
	f.Add(`\u0072edacted:1234abcd`)
	f.Fuzz(func(t *testing.T, s string) {
		got := ContainsPlaceholder(s)
		// Escaping a string that holds a placeholder must never hide it.
		if got && !ContainsPlaceholder(url.QueryEscape(s)) {
			t.Fatalf("query-escaping %q hid its placeholder", s)
		}
	})
}
