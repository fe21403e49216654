package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCPPath is the Streamable HTTP endpoint of the MCP service.
const MCPPath = "/mcp"

// ProtocolVersion is the MCP protocol version sim.Client asks for; the
// server also accepts 2025-03-26 and the SDK's other versions.
const ProtocolVersion = "2025-06-18"

// mcpService is the MCP tool server: the official SDK's Streamable HTTP
// handler (with sessions) at /mcp, tools that run on a bounded executor,
// pages for fetch_url under /pages/, and /health, /metrics, /stats.
type mcpService struct {
	cfg    Config
	box    *sandbox
	server *mcp.Server
	exec   chan struct{}
	self   atomic.Value // string: host:port this service listens on
	client *http.Client

	waiting      atomic.Int64
	mu           sync.Mutex
	calls        map[string]int64
	errors       map[string]int64
	fetchRefused int64
}

func newMCP(cfg Config, box *sandbox) *mcpService {
	s := &mcpService{cfg: cfg, box: box, exec: make(chan struct{}, cfg.MCP.ExecutorConcurrency),
		calls: map[string]int64{}, errors: map[string]int64{},
		// Never through an environment proxy: fetch_url only talks to this service.
		client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
	}
	s.server = mcp.NewServer(&mcp.Implementation{Name: "loadtape-sim-mcp", Title: "loadtape simulated MCP tool server", Version: "1.0.0"},
		&mcp.ServerOptions{Instructions: "File tools are confined to the workspace root; paths are relative. fetch_url serves pages from http://sim.local/pages/."})
	t := cfg.MCP.ToolTime
	mcp.AddTool(s.server, &mcp.Tool{Name: "read_file", Description: "Read a text file of the workspace."},
		tool(s, "read_file", t.ReadFile, func(ctx context.Context, in pathArgs) (string, error) {
			return box.readFile(in.path(), cfg.MCP.MaxFileBytes)
		}))
	mcp.AddTool(s.server, &mcp.Tool{Name: "write_file", Description: "Write a text file of the workspace, creating directories."},
		tool(s, "write_file", t.WriteFile, func(ctx context.Context, in writeArgs) (string, error) {
			n, err := box.writeFile(in.path(), in.Content, cfg.MCP.MaxFileBytes)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("wrote %d bytes to %s", n, in.path()), nil
		}))
	mcp.AddTool(s.server, &mcp.Tool{Name: "list_dir", Description: "List a directory of the workspace (dirs end in /, symlinks in @)."},
		tool(s, "list_dir", t.ListDir, func(ctx context.Context, in pathArgs) (string, error) {
			names, err := box.listDir(in.path())
			return strings.Join(names, "\n"), err
		}))
	mcp.AddTool(s.server, &mcp.Tool{Name: "git_status", Description: "git status of the workspace repository."},
		tool(s, "git_status", t.GitStatus, func(ctx context.Context, _ struct{}) (string, error) {
			return s.git(ctx, "status", "--porcelain=v1", "--branch")
		}))
	mcp.AddTool(s.server, &mcp.Tool{Name: "git_log", Description: "Recent commits of the workspace repository."},
		tool(s, "git_log", t.GitLog, func(ctx context.Context, in gitLogArgs) (string, error) {
			n := in.MaxCount
			if n <= 0 || n > 100 {
				n = 10
			}
			return s.git(ctx, "log", fmt.Sprintf("-n%d", n), "--date=iso-strict", "--pretty=format:%h %ad %an: %s")
		}))
	mcp.AddTool(s.server, &mcp.Tool{Name: "fetch_url", Description: "Fetch a page served by this tool server (http://sim.local/pages/...); other hosts are refused."},
		tool(s, "fetch_url", t.FetchURL, func(ctx context.Context, in fetchArgs) (string, error) {
			return s.fetch(ctx, in.URL)
		}))
	return s
}

type pathArgs struct {
	Path     string `json:"path,omitempty" jsonschema:"path relative to the workspace root"`
	FilePath string `json:"file_path,omitempty" jsonschema:"the same as path (a spelling some clients use)"`
}

func (a pathArgs) path() string {
	if a.Path != "" {
		return a.Path
	}
	return a.FilePath
}

type writeArgs struct {
	Path     string `json:"path,omitempty" jsonschema:"path relative to the workspace root"`
	FilePath string `json:"file_path,omitempty" jsonschema:"the same as path"`
	Content  string `json:"content" jsonschema:"text to write"`
}

func (a writeArgs) path() string { return pathArgs{a.Path, a.FilePath}.path() }

type gitLogArgs struct {
	MaxCount int `json:"max_count,omitempty" jsonschema:"number of commits (default 10, at most 100)"`
}

type fetchArgs struct {
	URL string `json:"url" jsonschema:"http URL of a page of this server, e.g. http://sim.local/pages/python-decorators"`
}

// tool wraps a tool's work: the call waits for an executor slot, does its
// real work, then holds the slot until the modelled work time has passed.
// An error becomes a result with isError true (the SDK's convention).
func tool[In any](s *mcpService, name string, work time.Duration, fn func(context.Context, In) (string, error)) mcp.ToolHandlerFor[In, any] {
	return func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		s.waiting.Add(1)
		select {
		case s.exec <- struct{}{}:
			s.waiting.Add(-1)
		case <-ctx.Done():
			s.waiting.Add(-1)
			return nil, nil, ctx.Err()
		}
		start := time.Now()
		text, err := fn(ctx, in)
		sleepCtx(ctx, s.cfg.scaled(work)-time.Since(start))
		<-s.exec
		s.mu.Lock()
		s.calls[name]++
		if err != nil {
			s.errors[name]++
		}
		s.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	}
}

func (s *mcpService) git(ctx context.Context, args ...string) (string, error) {
	cmd := gitCommand(s.box.dir, args...)
	out, err := cmd.Output()
	if err != nil {
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s failed (exit %d)", args[0], ee.ExitCode())
		}
		return "", fmt.Errorf("git %s: %v", args[0], err)
	}
	return string(out), nil
}

// fetch serves only this service's own pages, over a real loopback request.
func (s *mcpService) fetch(ctx context.Context, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("fetch_url: %q is not an http URL", raw)
	}
	self, _ := s.self.Load().(string)
	_, port, _ := net.SplitHostPort(self)
	switch u.Host {
	case "sim.local", self, "localhost:" + port, "127.0.0.1:" + port:
	default:
		s.mu.Lock()
		s.fetchRefused++
		s.mu.Unlock()
		return "", fmt.Errorf("fetch_url: host %q refused: this sandboxed tool only fetches pages of sim.local", u.Host)
	}
	if !strings.HasPrefix(u.Path, "/pages/") {
		return "", fmt.Errorf("fetch_url: %s: only /pages/ is served", u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+self+u.EscapedPath(), nil)
	if err != nil {
		return "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch_url: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.cfg.MCP.MaxFileBytes)))
	if err != nil {
		return "", fmt.Errorf("fetch_url: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch_url: %s answered %s", raw, resp.Status)
	}
	return string(body), nil
}

// pages are what fetch_url can fetch.
var pages = map[string]string{
	"python-decorators": "<html><head><title>Python decorators</title></head><body><h1>Python decorators</h1><p>A decorator wraps a function to extend its behaviour.</p></body></html>",
	"gpu-computing":     "<html><head><title>GPU computing</title></head><body><h1>GPU computing in Python</h1><p>Keep data on the device and batch the work.</p></body></html>",
	"qdrant":            "<html><head><title>Qdrant</title></head><body><h1>Vector search</h1><p>Collections of points searched by cosine similarity.</p></body></html>",
}

// PageNames lists the pages fetch_url serves, as http://sim.local/pages/NAME.
func PageNames() []string {
	out := make([]string, 0, len(pages))
	for n := range pages {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *mcpService) handler() http.Handler {
	mux := http.NewServeMux()
	stream := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.server },
		&mcp.StreamableHTTPOptions{SessionTimeout: s.cfg.scaled(s.cfg.MCP.SessionTimeout)})
	mux.Handle(MCPPath, stream)
	mux.HandleFunc("/pages/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := pages[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, p)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "service": "mcp"})
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.stats()) })
	mux.HandleFunc("/metrics", s.metrics)
	return mux
}

// MCPStats is the JSON of the MCP service's GET /stats.
type MCPStats struct {
	SandboxRefusals  int64            `json:"sandbox_refusals"`
	RefusalsByReason map[string]int64 `json:"refusals_by_reason"`
	FetchRefusals    int64            `json:"fetch_refusals"`
	ToolCalls        map[string]int64 `json:"tool_calls"`
	ToolErrors       map[string]int64 `json:"tool_errors"`
	ExecutorBusy     int              `json:"executor_busy"`
	ExecutorWaiting  int64            `json:"executor_waiting"`
	ExecutorLimit    int              `json:"executor_limit"`
}

func (s *mcpService) stats() MCPStats {
	st := MCPStats{ToolCalls: map[string]int64{}, ToolErrors: map[string]int64{},
		ExecutorBusy: len(s.exec), ExecutorWaiting: s.waiting.Load(), ExecutorLimit: cap(s.exec)}
	st.SandboxRefusals, st.RefusalsByReason = s.box.refusalCounts()
	s.mu.Lock()
	for k, v := range s.calls {
		st.ToolCalls[k] = v
	}
	for k, v := range s.errors {
		st.ToolErrors[k] = v
	}
	st.FetchRefusals = s.fetchRefused
	s.mu.Unlock()
	return st
}

func (s *mcpService) metrics(w http.ResponseWriter, _ *http.Request) {
	st := s.stats()
	m := newPromText()
	m.counter("mcp_sandbox_refusals_total", "Paths refused by the sandbox.", "", float64(st.SandboxRefusals))
	reasons := make([]string, 0, len(st.RefusalsByReason))
	for r := range st.RefusalsByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		m.counter("mcp_sandbox_refusals_by_reason_total", "Paths refused by the sandbox, by reason.", fmt.Sprintf("reason=%q", r), float64(st.RefusalsByReason[r]))
	}
	m.counter("mcp_fetch_refusals_total", "fetch_url calls refused for naming another host.", "", float64(st.FetchRefusals))
	tools := make([]string, 0, len(st.ToolCalls))
	for t := range st.ToolCalls {
		tools = append(tools, t)
	}
	sort.Strings(tools)
	for _, t := range tools {
		m.counter("mcp_tool_calls_total", "Tool calls finished.", fmt.Sprintf("tool=%q", t), float64(st.ToolCalls[t]))
	}
	for _, t := range tools {
		m.counter("mcp_tool_errors_total", "Tool calls that returned an error result.", fmt.Sprintf("tool=%q", t), float64(st.ToolErrors[t]))
	}
	m.gauge("mcp_executor_busy", "Tool calls running on the executor.", "", float64(st.ExecutorBusy))
	m.gauge("mcp_executor_waiting", "Tool calls waiting for the executor.", "", float64(st.ExecutorWaiting))
	m.gauge("mcp_executor_limit", "Executor concurrency limit.", "", float64(st.ExecutorLimit))
	m.write(w)
}
