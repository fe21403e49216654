package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/syncbuf"
)

func TestServeRejectsBadInput(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "sim.yaml")
	os.WriteFile(bad, []byte("mcp:\n  executor_concurrency: 0\n"), 0o644)
	for _, opts := range []ServeOptions{
		{Addrs: anyPorts, ConfigPath: bad},
		{Addrs: anyPorts, ConfigPath: filepath.Join(t.TempDir(), "missing.yaml")},
		{Addrs: anyPorts, TimeScale: -1},
	} {
		err := Serve(context.Background(), opts, &bytes.Buffer{})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", opts, err)
		}
	}
	if err := Serve(context.Background(), ServeOptions{Addrs: anyPorts, ConfigPath: bad}, &bytes.Buffer{}); !strings.Contains(err.Error(), "sim.yaml:2:3: mcp.executor_concurrency") {
		t.Errorf("error %q does not name the line and key", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = Serve(context.Background(), ServeOptions{Addrs: Addrs{Gateway: busy.Addr().String()}}, &bytes.Buffer{})
	if err == nil || errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("port in use: %v, want a runtime error naming the address", err)
	}
}

func TestServePrintsURLsAndStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ServeOptions{Addrs: anyPorts, Healthy: true, TimeScale: 0.5}, &out) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	text := out.String()
	for _, want := range []string{"config healthy, time scale 0.5", "gateway  http://127.0.0.1:", "rag      http://127.0.0.1:", "/mcp"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop after its context ended")
	}
}

// With JSON the first line is the URL map, and every URL answers.
func TestServeJSONURLs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ServeOptions{Addrs: anyPorts, Healthy: true, JSON: true}, w) }()
	var urls map[string]string
	if err := json.NewDecoder(r).Decode(&urls); err != nil {
		t.Fatal(err)
	}
	if len(urls) != 3 {
		t.Fatalf("urls %v, want gateway, rag and mcp", urls)
	}
	for name, u := range urls {
		resp, err := http.Get(strings.TrimRight(u, "/") + "/health")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /health: %s", name, resp.Status)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
