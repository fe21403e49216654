package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestEventStreamHeadersAtOnce: an event stream's response headers reach
// the client before its first event. An MCP server's standalone GET stream
// sends its headers and then nothing until it has something to say; a
// client that waits for the headers (Go's http.Client, the replayer) must
// not wait for an event that may never come.
func TestEventStreamHeadersAtOnce(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // idle until the test has its answer
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	_, base, stop := recorder(t, up.URL, Options{})
	defer stop()
	defer close(release) // runs before stop: the stream ends, the proxy drains

	got := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/mcp")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response headers through the proxy within 5s of an idle event stream's start")
	}
}
