// Package sim is the simulated AI suite that the demo and the tests load:
// an OpenAI-compatible gateway with a modelled GPU (batch slots, prefill and
// decode cost, KV-cache memory against a capacity, CUDA out-of-memory
// errors, DCGM and vLLM metrics), a RAG service (hashing embedder, in-memory
// brute-force vector store, vector-store and database pools with Qdrant's
// and PostgreSQL's errors) and an MCP tool server on the official Go SDK
// (sandboxed file tools, real git, fetch_url of its own pages, a bounded
// tool executor). Every mechanism is a knob of Config; DefaultConfig shows
// the bottlenecks of a typical AI stack at the built-in profile's user counts and HealthyConfig none.
// Client is a scripted user population that drives the three services.
//
// sim is a target: it imports none of loadtape's other packages.
package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Addrs are the listen addresses; "127.0.0.1:0" picks a free port and an
// empty address leaves that service out.
type Addrs struct {
	Gateway, RAG, MCP string
}

// DefaultAddrs are the default ports.
var DefaultAddrs = Addrs{Gateway: "127.0.0.1:8000", RAG: "127.0.0.1:8002", MCP: "127.0.0.1:8020"}

// Suite is the running set of services.
type Suite struct {
	cfg     Config
	urls    map[string]string
	servers []*http.Server
	cancel  context.CancelFunc
	cleanup func()
	wg      sync.WaitGroup
	once    sync.Once
	err     error

	gateway *gateway
	rag     *rag
	mcp     *mcpService
}

// Start validates cfg, listens on addrs and serves until ctx ends or Close.
func Start(ctx context.Context, cfg Config, addrs Addrs) (*Suite, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Suite{cfg: cfg, urls: map[string]string{}, cancel: cancel, cleanup: func() {}}
	type svc struct {
		name, addr string
		make       func(net.Listener) (http.Handler, error)
	}
	services := []svc{
		{"gateway", addrs.Gateway, func(net.Listener) (http.Handler, error) {
			s.gateway = newGateway(cfg)
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.gateway.unloader(ctx) }() // ends with ctx
			return s.gateway.handler(), nil
		}},
		{"rag", addrs.RAG, func(net.Listener) (http.Handler, error) {
			s.rag = newRAG(cfg)
			if s.gateway != nil { // started first: a small stack shares one GPU
				s.rag.gpuShare = s.gateway.gpu.memoryShare
			}
			return s.rag.handler(), nil
		}},
		{"mcp", addrs.MCP, func(ln net.Listener) (http.Handler, error) {
			dir, cleanup, err := newWorkspace(cfg.MCP.SandboxRoot)
			if err != nil {
				return nil, err
			}
			s.cleanup = cleanup
			real, err := filepath.EvalSymlinks(dir)
			if err != nil {
				return nil, err
			}
			root, err := os.OpenRoot(real)
			if err != nil {
				return nil, err
			}
			box := &sandbox{dir: real, root: root, refusals: map[string]int64{}}
			prev := s.cleanup
			s.cleanup = func() { _ = root.Close(); prev() }
			s.mcp = newMCP(cfg, box)
			s.mcp.self.Store(ln.Addr().String())
			return s.mcp.handler(), nil
		}},
	}
	for _, sv := range services {
		if sv.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", sv.addr)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("sim: %s: %w", sv.name, err)
		}
		h, err := sv.make(ln)
		if err != nil {
			_ = ln.Close()
			_ = s.Close()
			return nil, fmt.Errorf("sim: %s: %w", sv.name, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		s.urls[sv.name] = "http://" + ln.Addr().String()
		s.wg.Add(1)
		go func() { // ends when the server is closed
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(os.Stderr, "sim: %s: %v\n", sv.name, err)
			}
		}()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); <-ctx.Done(); s.shutdown() }() // ends with ctx or Close
	return s, nil
}

// URLs maps "gateway", "rag", "mcp" to base URLs such as
// "http://127.0.0.1:8000". The MCP endpoint is URLs()["mcp"]+MCPPath.
func (s *Suite) URLs() map[string]string {
	out := make(map[string]string, len(s.urls))
	for k, v := range s.urls {
		out[k] = v
	}
	return out
}

// Close stops the services, giving requests in flight a second to finish,
// and removes the temporary workspace. Safe to call twice.
func (s *Suite) Close() error {
	s.cancel()
	s.shutdown()
	s.wg.Wait()
	return s.err
}

func (s *Suite) shutdown() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var errs []error
		for _, srv := range s.servers {
			if err := srv.Shutdown(ctx); err != nil {
				// Streams still open (SSE, MCP GET streams) after the grace period.
				errs = append(errs, srv.Close())
			}
		}
		s.cleanup()
		s.err = errors.Join(errs...)
	})
}

// MCPStats returns the MCP service's counters (sandbox refusals by reason,
// tool calls, executor occupancy); zero when the service is not running.
func (s *Suite) MCPStats() MCPStats {
	if s.mcp == nil {
		return MCPStats{}
	}
	return s.mcp.stats()
}
