package proxy

import (
	"mime"
	"testing"
)

// TestMediaTypeAsMime: the kept results are mime.ParseMediaType's, asked
// twice (parsed, then kept), malformed values included.
func TestMediaTypeAsMime(t *testing.T) {
	for _, v := range []string{"", "application/json", "Application/JSON; charset=utf-8", "text/event-stream;charset=UTF-8",
		"multipart/form-data; boundary=x", "json", "a/b; x=1; x=2", "text/plain; ;", "a/b/c", " text/html "} {
		want, _, _ := mime.ParseMediaType(v)
		for range 2 {
			if got := mediaType(v); got != want {
				t.Errorf("mediaType(%q) = %q, want %q", v, got, want)
			}
		}
	}
}
