package proxy

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// memSink collects rows in memory in place of the Parquet writer.
type memSink struct {
	mu   sync.Mutex
	rows []captures.Exchange
	meta map[string]string
}

func (s *memSink) Write(rows ...captures.Exchange) error {
	s.mu.Lock()
	s.rows = append(s.rows, rows...)
	s.mu.Unlock()
	return nil
}

func (s *memSink) SetMetadata(k, v string) {
	s.mu.Lock()
	if s.meta == nil {
		s.meta = map[string]string{}
	}
	s.meta[k] = v
	s.mu.Unlock()
}

func (s *memSink) Close() error { return nil }

func (s *memSink) all() []captures.Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]captures.Exchange(nil), s.rows...)
	sort.Slice(out, func(i, j int) bool { return out[i].StartNS < out[j].StartNS })
	return out
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// recorder starts a Recorder with one route "svc" to upstream and an
// in-memory sink (unless opts.Out is set). Stop it with stop, which returns
// the rows; cleanup stops it too.
func recorder(t testing.TB, upstream string, opts Options) (r *Recorder, base string, stop func() []captures.Exchange) {
	t.Helper()
	var sink *memSink
	if opts.Out == "" {
		sink = &memSink{}
		opts.sink = sink
	}
	if opts.Routes == nil && upstream != "" {
		opts.Routes = []Route{{Name: "svc", Listen: "127.0.0.1:0", Upstream: mustURL(t, upstream)}}
	}
	if opts.LiveEvery == 0 {
		opts.LiveEvery = -1
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var rows []captures.Exchange
	stop = func() []captures.Exchange {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := r.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if sink != nil {
				rows = sink.all()
			}
		})
		return rows
	}
	t.Cleanup(func() { stop() })
	if len(opts.Routes) > 0 {
		base = "http://" + r.Addrs()[opts.Routes[0].Name]
	}
	return r, base, stop
}

// client is an HTTP client that does not touch encodings, so the test sees
// the bytes on the wire.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func header(hs []captures.Header, name string) string {
	for _, h := range hs {
		if http.CanonicalHeaderKey(h.Name) == http.CanonicalHeaderKey(name) {
			return h.Value
		}
	}
	return ""
}
