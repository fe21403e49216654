// Package keeptarget is a test target that keeps every request it
// receives, whole: what replay tests check a replay sent (credentials,
// placeholders, bodies) against.
package keeptarget

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Target answers {"ok":true} after its delay and keeps each request as
// text: the request line, the headers and the body.
type Target struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

// Start serves a Target on 127.0.0.1 until the test ends. A request still
// waiting out its delay ends when its client goes away.
func Start(t testing.TB, delay time.Duration) *Target {
	tg := &Target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.RequestURI())
		_ = r.Header.Write(&b)
		b.Write(body)
		tg.mu.Lock()
		tg.reqs = append(tg.reqs, b.String())
		tg.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(tg.Close)
	return tg
}

// Received is every request so far, in the order they arrived.
func (tg *Target) Received() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.reqs...)
}
