package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Client is a scripted population of users for recording realistic traffic.
// User i works on one service, the i-th of the targets present in the order
// gateway, rag, mcp, and loops: one operation, then a think pause.
//
//   - gateway: chat completion 70 % (half streamed with include_usage; models
//     chat-7b, code-7b and the qwen2.5-14b-instruct alias clients commonly ask for), model
//     listing 20 %, health 10 %.
//   - rag: query 70 %, index 30 % (a new 80–200-word document).
//   - mcp: a session (initialize, tools/list), then read_file 20 %,
//     write_file 15 %, list_dir 5 %, git_status 20 %, git_log 20 %, fetch_url
//     20 %; ProbeShare of the calls try a sandbox escape instead; a new session
//     every 10–20 calls.
type Client struct {
	// Targets maps "gateway", "rag", "mcp" to base URLs (Suite.URLs, or the
	// recording proxy's routes). The MCP endpoint is the base URL + MCPPath
	// unless the URL already has a path.
	Targets map[string]string
	// Users is the number of concurrent users (default 3).
	Users int
	// Seed makes the scripts repeatable.
	Seed int64
	// Think is the mean pause between a user's operations; each pause is
	// uniform in [Think/2, 3·Think/2]. Zero: no pause.
	Think time.Duration
	// Ramp spreads the users' starts evenly over this long (0: all at once).
	Ramp time.Duration
	// ProbeShare is the share of MCP calls that try a sandbox escape
	// (default 0.05; negative: none).
	ProbeShare float64
	// HTTPClient is used for every request; nil: a client with no proxy and
	// enough idle connections for all users.
	HTTPClient *http.Client
}

// ClientStats counts what the users did, per operation name (the capture
// format's operation names, plus mcp.sandbox_probe).
type ClientStats struct {
	Requests   int64
	Errors     int64
	Operations map[string]OpStats
}

// OpStats is one operation's count, failures and latency.
type OpStats struct {
	Count, Errors int64
	Total, Max    time.Duration
}

// Mean latency.
func (o OpStats) Mean() time.Duration {
	if o.Count == 0 {
		return 0
	}
	return o.Total / time.Duration(o.Count)
}

// ErrNoTargets is returned by Run when Targets names no known service.
var ErrNoTargets = errors.New("sim: client has no gateway, rag or mcp target")

// Run drives the users until ctx ends or d has passed, whichever comes
// first, and returns what they did. Requests cut off by the end are not counted.
func (c *Client) Run(ctx context.Context, d time.Duration) (ClientStats, error) {
	var services []string
	for _, name := range []string{"gateway", "rag", "mcp"} {
		if c.Targets[name] != "" {
			services = append(services, name)
		}
	}
	if len(services) == 0 {
		return ClientStats{}, ErrNoTargets
	}
	users := c.Users
	if users <= 0 {
		users = 3
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: users + 4, IdleConnTimeout: 30 * time.Second}}
		defer hc.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	total := ClientStats{Operations: map[string]OpStats{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range users {
		u := &user{c: c, hc: hc, id: i, rng: rand.New(rand.NewPCG(uint64(c.Seed), uint64(i))), ops: map[string]OpStats{}}
		var delay time.Duration
		if c.Ramp > 0 {
			delay = c.Ramp * time.Duration(i) / time.Duration(users)
		}
		wg.Add(1)
		go func() { // ends when ctx does
			defer wg.Done()
			if sleepCtx(ctx, delay) {
				u.run(ctx, services[i%len(services)])
			}
			mu.Lock()
			defer mu.Unlock()
			for op, s := range u.ops {
				t := total.Operations[op]
				t.Count += s.Count
				t.Errors += s.Errors
				t.Total += s.Total
				t.Max = max(t.Max, s.Max)
				total.Operations[op] = t
				total.Requests += s.Count
				total.Errors += s.Errors
			}
		}()
	}
	wg.Wait()
	return total, nil
}

type user struct {
	c   *Client
	hc  *http.Client
	id  int
	rng *rand.Rand
	ops map[string]OpStats
}

// record counts one operation unless the run's end cut it off.
func (u *user) record(ctx context.Context, op string, start time.Time, failed bool) {
	if ctx.Err() != nil {
		return
	}
	el := time.Since(start)
	s := u.ops[op]
	s.Count++
	if failed {
		s.Errors++
	}
	s.Total += el
	s.Max = max(s.Max, el)
	u.ops[op] = s
}

func (u *user) think(ctx context.Context) bool {
	t := u.c.Think
	if t <= 0 {
		return ctx.Err() == nil
	}
	return sleepCtx(ctx, t/2+time.Duration(u.rng.Int64N(int64(t)+1)))
}

func (u *user) run(ctx context.Context, service string) {
	switch service {
	case "gateway":
		for ctx.Err() == nil {
			u.gatewayOnce(ctx)
			u.think(ctx)
		}
	case "rag":
		for ctx.Err() == nil {
			u.ragOnce(ctx)
			u.think(ctx)
		}
	case "mcp":
		for ctx.Err() == nil {
			u.mcpSession(ctx)
		}
	}
}

var prompts = []string{
	"Explain Python decorators",
	"How do I optimize Python code for GPU computing?",
	"Write a function that reverses a linked list in Go.",
	"What is the difference between a process and a thread?",
	"Summarise the trade-offs of batching requests on a GPU.",
	"Why does my database connection pool run out under load?",
}

func (u *user) gatewayOnce(ctx context.Context) {
	base := strings.TrimRight(u.c.Targets["gateway"], "/")
	r := u.rng.IntN(100)
	switch {
	case r < 70:
		models := []string{"chat-7b", "chat-7b", "chat-7b", "code-7b", "qwen2.5-14b-instruct"}
		stream := u.rng.IntN(2) == 0
		req := map[string]any{
			"model":       models[u.rng.IntN(len(models))],
			"messages":    []any{map[string]any{"role": "user", "content": prompts[u.rng.IntN(len(prompts))]}},
			"max_tokens":  150,
			"temperature": 0.7,
		}
		if stream {
			req["stream"] = true
			req["stream_options"] = map[string]any{"include_usage": true}
		}
		start := time.Now()
		resp, err := u.post(ctx, base+"/v1/chat/completions", req)
		failed := err != nil
		if err == nil {
			failed = resp.StatusCode != http.StatusOK
			if stream && !failed {
				failed = sseFailed(resp.Body)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
		}
		u.record(ctx, "chat.completions", start, failed)
	case r < 90:
		u.get(ctx, "models.list", base+"/v1/models")
	default:
		u.get(ctx, "health", base+"/health")
	}
}

// sseFailed reads an OpenAI stream to its end; true when it carried an
// error event or never reached [DONE].
func sseFailed(body io.Reader) bool {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			return false
		}
		if strings.HasPrefix(line, `data: {"error"`) {
			_, _ = io.Copy(io.Discard, body)
			return true
		}
	}
	return true
}

func (u *user) post(ctx context.Context, url string, body any) (*http.Response, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return u.hc.Do(req)
}

func (u *user) get(ctx context.Context, op, url string) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	failed := true
	if err == nil {
		var resp *http.Response
		if resp, err = u.hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			failed = resp.StatusCode >= 400
		}
	}
	u.record(ctx, op, start, failed)
}

func (u *user) exchange(ctx context.Context, op, url string, body any) {
	start := time.Now()
	resp, err := u.post(ctx, url, body)
	failed := err != nil
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		failed = resp.StatusCode >= 400
	}
	u.record(ctx, op, start, failed)
}

func (u *user) ragOnce(ctx context.Context) {
	base := strings.TrimRight(u.c.Targets["rag"], "/")
	if u.rng.IntN(100) < 70 {
		u.exchange(ctx, "rag.query", base+"/query", map[string]any{
			"query": prompts[u.rng.IntN(len(prompts))], "collection": "default", "top_k": 5})
		return
	}
	words := 80 + u.rng.IntN(121)
	var doc strings.Builder
	for i := 0; i < words; i++ {
		if i > 0 {
			doc.WriteByte(' ')
		}
		doc.WriteString(vocabulary[u.rng.IntN(len(vocabulary))])
	}
	u.exchange(ctx, "rag.index", base+"/index", map[string]any{
		"collection": "default",
		"documents":  []any{map[string]any{"text": doc.String(), "metadata": map[string]any{"source": fmt.Sprintf("user-%d", u.id)}}},
	})
}

// mcpEndpoint adds MCPPath to a base URL without a path.
func mcpEndpoint(base string) string {
	if p, err := url.Parse(base); err == nil && (p.Path == "" || p.Path == "/") {
		return strings.TrimRight(base, "/") + MCPPath
	}
	return base
}

// probes are escape attempts a curious user (or a prompt-injected agent) makes.
var probes = []string{"../../etc/passwd", "/etc/passwd", "links/secret.txt", "%2e%2e/%2e%2e/etc/shadow", "services/../../outside-secret.txt"}

func (u *user) mcpSession(ctx context.Context) {
	client := mcp.NewClient(&mcp.Implementation{Name: "loadtape-sim-client", Version: "1.0.0"}, nil)
	start := time.Now()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpEndpoint(u.c.Targets["mcp"]), HTTPClient: u.hc, MaxRetries: -1, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: ProtocolVersion})
	u.record(ctx, "mcp.initialize", start, err != nil)
	if err != nil {
		u.think(ctx)
		return
	}
	defer cs.Close()
	start = time.Now()
	_, err = cs.ListTools(ctx, nil)
	u.record(ctx, "mcp.tools.list", start, err != nil)
	share := u.c.ProbeShare
	if share == 0 {
		share = 0.05
	}
	calls := 10 + u.rng.IntN(11)
	for i := 0; i < calls && ctx.Err() == nil; i++ {
		if !u.think(ctx) {
			return
		}
		if u.rng.Float64() < share {
			start := time.Now()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": probes[u.rng.IntN(len(probes))]}})
			// A probe succeeds when the sandbox refuses it.
			u.record(ctx, "mcp.sandbox_probe", start, err != nil || !res.IsError)
			continue
		}
		name, args := u.mcpCall()
		start := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		u.record(ctx, "mcp.tools.call/"+name, start, err != nil || res.IsError)
	}
}

func (u *user) mcpCall() (string, map[string]any) {
	files := []string{"README.md", "services/rag/app.py", "services/gateway/main.py", "docs/plan.md"}
	r := u.rng.IntN(100)
	switch {
	case r < 20:
		return "read_file", map[string]any{"path": files[u.rng.IntN(len(files))]}
	case r < 35:
		return "write_file", map[string]any{"path": fmt.Sprintf("notes/user-%d.md", u.id),
			"content": fmt.Sprintf("# notes of user %d\n\n%s\n", u.id, prompts[u.rng.IntN(len(prompts))])}
	case r < 40:
		return "list_dir", map[string]any{"path": "services"}
	case r < 60:
		return "git_status", map[string]any{}
	case r < 80:
		return "git_log", map[string]any{"max_count": 5}
	default:
		names := PageNames()
		return "fetch_url", map[string]any{"url": "http://sim.local/pages/" + names[u.rng.IntN(len(names))]}
	}
}
