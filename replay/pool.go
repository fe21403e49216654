package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Pool holds the captured exchanges replay draws from, per service: by
// operation for closed and open mode, by session for sessions mode. Order is
// deterministic (start time, then id) so that a seed always picks the same
// exchanges.
//
// Exchanges that failed when recorded (an HTTP error, an upstream failure,
// a client that gave up) are left out of the default pools: replaying them
// would only count the recording's failures against the live service. A
// scenario with include_failed draws from pools that keep them, and they
// are then expected to fail the same way.
type Pool struct {
	services   map[string]*servicePool // without the exchanges that failed when recorded
	withFailed map[string]*servicePool // with them; the same pool where none failed
	leftOut    map[string]map[leftOutKey]int
}

type servicePool struct {
	ops      map[string][]*entry
	sessions [][]*entry
	count    int
	health   string // "/health" when the capture has such an exchange
	mcpInit  *captures.Exchange
	probe    *probeTemplate
}

// entry is one exchange with the pause the capture shows after it (to the
// next exchange of its session), used by think {as_recorded: true}.
type entry struct {
	ex         *captures.Exchange
	thinkAfter time.Duration
	stream     bool // an MCP client's standalone GET stream
}

// Reasons an exchange is left out of a pool.
const (
	reasonUpstream  = "upstream error"
	reasonAborted   = "client aborted"
	reasonTruncated = "truncated request body"
	reasonProbe     = "refused before any session" // an SDK's pre-initialize probe
)

type leftOutKey struct{ op, reason string }

// LeftOut counts captured exchanges a scenario's pool left out, and why.
type LeftOut = runspec.LeftOut

// NewPool indexes exchanges. It keeps pointers into xs.
func NewPool(xs []captures.Exchange) *Pool {
	p := &Pool{services: map[string]*servicePool{}, withFailed: map[string]*servicePool{}, leftOut: map[string]map[leftOutKey]int{}}
	mcpPaths := map[string]map[string]bool{} // service → paths MCP messages were posted to
	for i := range xs {
		if x := &xs[i]; x.RPCMethod != "" {
			if mcpPaths[x.Service] == nil {
				mcpPaths[x.Service] = map[string]bool{}
			}
			mcpPaths[x.Service][x.Path] = true
		}
	}
	ok := map[string][]*entry{}  // service → entries that did not fail when recorded
	all := map[string][]*entry{} // service → every entry worth sending
	failed := map[string]bool{}
	for i := range xs {
		x := &xs[i]
		e := &entry{ex: x, stream: isMCPStream(x, mcpPaths[x.Service])}
		if _, seen := ok[x.Service]; !seen {
			ok[x.Service], all[x.Service] = nil, nil
		}
		reason := failedWhenRecorded(e)
		switch {
		// A request body cut at the recorder's --max-body would only be
		// refused by the target as malformed: it is not load worth sending.
		case x.ReqTruncated:
			p.leave(x, reasonTruncated)
			continue
		case isRefusedProbe(x):
			p.leave(x, reasonProbe)
			continue
		case reason != "":
			p.leave(x, reason)
			all[x.Service] = append(all[x.Service], e)
			failed[x.Service] = true
			continue
		}
		ok[x.Service] = append(ok[x.Service], e)
		all[x.Service] = append(all[x.Service], e)
	}
	for svc, es := range ok {
		p.services[svc] = newServicePool(es)
		p.withFailed[svc] = p.services[svc]
		if failed[svc] {
			// Entries carry the pause to the next exchange of their
			// session, which differs between the two pools: copy them.
			cp := make([]*entry, len(all[svc]))
			for i, e := range all[svc] {
				c := *e
				cp[i] = &c
			}
			p.withFailed[svc] = newServicePool(cp)
		}
	}
	return p
}

func (p *Pool) leave(x *captures.Exchange, reason string) {
	m := p.leftOut[x.Service]
	if m == nil {
		m = map[leftOutKey]int{}
		p.leftOut[x.Service] = m
	}
	m[leftOutKey{x.Operation, reason}]++
}

// service is the pool a scenario draws from.
func (p *Pool) service(name string, includeFailed bool) *servicePool {
	if includeFailed {
		return p.withFailed[name]
	}
	return p.services[name]
}

// failedWhenRecorded says why an exchange failed when it was recorded, ""
// when it did not. An MCP client's standalone GET stream is the exception
// twice over: the client ends it by going away, and a server without one
// answers 405, which the client takes as "no stream here". An MCP request
// whose answer had arrived before its client went away is complete too: the
// official TypeScript client closes its transport as soon as it holds the
// answer, often before the server has ended that response's SSE stream.
func failedWhenRecorded(e *entry) string {
	x := e.ex
	switch {
	case e.stream && (x.Status == http.StatusMethodNotAllowed || x.Status/100 == 2):
		return ""
	case x.Status >= 400:
		return "HTTP " + strconv.Itoa(int(x.Status))
	case x.Status == 0 || x.Error != "":
		return reasonUpstream
	case x.ClientAborted && !answered(x):
		return reasonAborted
	}
	return ""
}

// answered says whether a recorded MCP request's response body holds the
// JSON-RPC message answering it, as a JSON body or as an SSE event.
func answered(x *captures.Exchange) bool {
	if x.RPCID == "" || x.Status/100 != 2 || len(x.RespBody) == 0 {
		return false
	}
	if b := bytes.TrimSpace(x.RespBody); b[0] == '{' || b[0] == '[' {
		return matchRPC(b, x.RPCID) != nil
	}
	var out response
	p := &sseParser{rpcID: x.RPCID, r: &captures.Result{}, out: &out}
	p.feed(x.RespBody, 0)
	p.flush(0)
	return out.rpc != nil
}

// isMCPStream recognises the standalone GET stream an MCP client opens on
// the endpoint it posts its messages to, for the server's own messages.
func isMCPStream(x *captures.Exchange, mcpPaths map[string]bool) bool {
	if x.Method != http.MethodGet || !mcpPaths[x.Path] {
		return false
	}
	for _, h := range x.ReqHeaders {
		if strings.EqualFold(h.Name, "Accept") && strings.Contains(h.Value, "text/event-stream") {
			return true
		}
	}
	return false
}

// newServicePool indexes one service's entries by operation and by session.
func newServicePool(es []*entry) *servicePool {
	sp := &servicePool{ops: map[string][]*entry{}}
	bySession := map[string][]*entry{}
	for _, e := range es {
		x := e.ex
		sp.ops[x.Operation] = append(sp.ops[x.Operation], e)
		sp.count++
		bySession[x.Session] = append(bySession[x.Session], e)
		if x.Path == "/health" && sp.health == "" {
			sp.health = "/health"
		}
		// The live handshake copies a recorded initialize that worked: one
		// that failed (kept by include_failed) would open no session.
		if x.RPCMethod == "initialize" && x.Status/100 == 2 && (sp.mcpInit == nil || less(x, sp.mcpInit)) {
			sp.mcpInit = x
		}
	}
	for _, es := range sp.ops {
		sort.Slice(es, func(i, j int) bool { return less(es[i].ex, es[j].ex) })
	}
	var gaps []time.Duration
	for _, es := range bySession {
		sort.Slice(es, func(i, j int) bool {
			if es[i].ex.Seq != es[j].ex.Seq {
				return es[i].ex.Seq < es[j].ex.Seq
			}
			return less(es[i].ex, es[j].ex)
		})
		for _, part := range splitSessions(es) {
			for k := 0; k+1 < len(part); k++ {
				end := part[k].ex.StartNS + part[k].ex.DurationNS
				g := time.Duration(part[k+1].ex.StartNS - end)
				if g < 0 {
					g = 0
				}
				part[k].thinkAfter = g
				gaps = append(gaps, g)
			}
			sp.sessions = append(sp.sessions, part)
		}
	}
	// The last exchange of a session has no recorded pause after it: give
	// it the median pause of the service so as_recorded stays realistic.
	med := median(gaps)
	for _, es := range sp.sessions {
		es[len(es)-1].thinkAfter = med
	}
	sort.Slice(sp.sessions, func(i, j int) bool { return less(sp.sessions[i][0].ex, sp.sessions[j][0].ex) })
	sp.probe = findProbeTemplate(sp)
	return sp
}

// splitSessions cuts a recorded session before each MCP initialize when the
// server issued no session id: the recorder then keys the session by the
// client's credentials or address, so several client runs against a
// stateless server arrive as one session. A session id on any request
// means the server kept one session, which stays whole.
func splitSessions(es []*entry) [][]*entry {
	for _, e := range es {
		for _, h := range e.ex.ReqHeaders {
			if strings.EqualFold(h.Name, "Mcp-Session-Id") {
				return [][]*entry{es}
			}
		}
	}
	var out [][]*entry
	start, inits := 0, 0
	for k, e := range es {
		if e.ex.RPCMethod != "initialize" {
			continue
		}
		if inits > 0 {
			out = append(out, es[start:k])
			start = k
		}
		inits++
	}
	return append(out, es[start:])
}

// isRefusedProbe recognises an MCP message a client sent before any session
// existed and the server refused with a 4xx (an SDK's server/discover
// version probe, say). It carried no load worth replaying and would only
// fail again, so pools leave it out, include_failed or not: replayed inside
// a live session it would not even be refused.
func isRefusedProbe(x *captures.Exchange) bool {
	if x.RPCMethod == "" || x.RPCMethod == "initialize" || x.Status < 400 || x.Status >= 500 {
		return false
	}
	for _, h := range x.ReqHeaders {
		if strings.EqualFold(h.Name, "Mcp-Session-Id") {
			return false
		}
	}
	return true
}

func less(a, b *captures.Exchange) bool {
	if a.StartNS != b.StartNS {
		return a.StartNS < b.StartNS
	}
	return a.ID < b.ID
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Services returns the services the capture holds, sorted.
func (p *Pool) Services() []string { return sortedKeys(p.services) }

// Operations returns a service's operations, sorted.
func (p *Pool) Operations(service string) []string {
	if sp := p.services[service]; sp != nil {
		return sortedKeys(sp.ops)
	}
	return nil
}

// check reports, as bad input, what a scenario needs that the capture lacks.
func (p *Pool) check(name string, s *Scenario) error {
	sp := p.service(s.Service, s.IncludeFailed)
	if sp == nil {
		return fmt.Errorf("scenario %q: the capture has no exchanges of service %q (it has: %s)",
			name, s.Service, strings.Join(p.Services(), ", "))
	}
	if sp.count == 0 {
		return fmt.Errorf("scenario %q: no exchange of service %q is left to replay: %s", name, s.Service, p.leftOutText(s.Service, ""))
	}
	for _, op := range sortedKeys(s.Mix) {
		if op == SandboxProbe {
			if sp.probe == nil {
				return fmt.Errorf("scenario %q: %s needs a captured MCP tools/call with a path argument (a read_file call, say); service %q has: %s",
					name, SandboxProbe, s.Service, strings.Join(p.Operations(s.Service), ", "))
			}
			continue
		}
		if len(sp.ops[op]) == 0 {
			if why := p.leftOutText(s.Service, op); why != "" {
				hint := "set include_failed: true to replay failed ones as expected failures"
				if strings.Contains(why, reasonTruncated) {
					hint = "record again with a larger --max-body"
				}
				return fmt.Errorf("scenario %q: every captured %q exchange is left out (%s); %s", name, op, why, hint)
			}
			return fmt.Errorf("scenario %q: mix operation %q is not in the capture of service %q (it has: %s)",
				name, op, s.Service, strings.Join(p.Operations(s.Service), ", "))
		}
	}
	return nil
}

// LeftOut lists what the pools of service left out, most first, then by
// operation and reason.
func (p *Pool) LeftOut(service string) []LeftOut {
	var out []LeftOut
	for k, n := range p.leftOut[service] {
		out = append(out, LeftOut{Service: service, Operation: k.op, Reason: k.reason, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Operation != b.Operation {
			return a.Operation < b.Operation
		}
		return a.Reason < b.Reason
	})
	return out
}

// leftOutText says what was left out of one service (of one operation when
// op is set): "3 × HTTP 404 chat.completions, 1 × upstream error rag.query".
func (p *Pool) leftOutText(service, op string) string {
	var parts []string
	for _, l := range p.LeftOut(service) {
		if op == "" || l.Operation == op {
			parts = append(parts, fmt.Sprintf("%d × %s %s", l.Count, l.Reason, l.Operation))
		}
	}
	return strings.Join(parts, ", ")
}

// LeftOutFor is what each scenario of a run left out of its pool: the
// exchanges of its service that failed when recorded (unless it keeps them
// with include_failed) and those never replayed (truncated request bodies,
// refused probes).
func (p *Pool) LeftOutFor(prof *Profile, scenarios []string) []LeftOut {
	var out []LeftOut
	for _, name := range scenarios {
		sc := prof.Scenarios[name]
		for _, l := range p.LeftOut(sc.Service) {
			if sc.IncludeFailed && l.Reason != reasonTruncated && l.Reason != reasonProbe {
				continue
			}
			l.Scenario = name
			out = append(out, l)
		}
	}
	return out
}

// FailedLines are the lines replay prints at its start about the exchanges
// that failed when recorded and were left out, one per scenario that left
// some out: "scenario gateway: left out 4 exchanges that failed when
// recorded: 3 × HTTP 404 chat.completions, 1 × upstream error models.list".
func FailedLines(ls []LeftOut) []string {
	var lines []string
	for i := 0; i < len(ls); {
		j, n := i, 0
		var parts []string
		for ; j < len(ls) && ls[j].Scenario == ls[i].Scenario; j++ {
			if l := ls[j]; l.Reason != reasonTruncated && l.Reason != reasonProbe {
				n += l.Count
				parts = append(parts, fmt.Sprintf("%d × %s %s", l.Count, l.Reason, l.Operation))
			}
		}
		if n > 0 {
			noun := "exchanges"
			if n == 1 {
				noun = "exchange"
			}
			lines = append(lines, fmt.Sprintf("scenario %s: left out %d %s that failed when recorded: %s (include_failed: true keeps them, expected to fail the same way)",
				ls[i].Scenario, n, noun, strings.Join(parts, ", ")))
		}
		i = j
	}
	return lines
}

// probeTemplate is a captured tools/call whose argument ArgKey names a file;
// the sandbox probe sends it with traversal paths in that argument.
type probeTemplate struct {
	ex     *captures.Exchange
	tool   string
	argKey string
	params map[string]json.RawMessage
	args   map[string]json.RawMessage
}

// findProbeTemplate prefers a read_file call, then any tools/call with an
// argument whose name says it is a path or file.
func findProbeTemplate(sp *servicePool) *probeTemplate {
	var best *probeTemplate
	for _, op := range sortedKeys(sp.ops) {
		if !strings.HasPrefix(op, "mcp.tools.call/") {
			continue
		}
		for _, e := range sp.ops[op] {
			t := parseProbe(e.ex)
			if t == nil {
				continue
			}
			if strings.Contains(t.tool, "read") {
				return t
			}
			if best == nil {
				best = t
			}
			break
		}
	}
	return best
}

func parseProbe(x *captures.Exchange) *probeTemplate {
	var msg struct {
		Params map[string]json.RawMessage `json:"params"`
	}
	if json.Unmarshal(x.ReqBody, &msg) != nil || msg.Params == nil {
		return nil
	}
	var name string
	var args map[string]json.RawMessage
	if json.Unmarshal(msg.Params["name"], &name) != nil || json.Unmarshal(msg.Params["arguments"], &args) != nil {
		return nil
	}
	for _, k := range sortedKeys(args) {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "path") || strings.Contains(lk, "file") {
			var s string
			if json.Unmarshal(args[k], &s) == nil {
				return &probeTemplate{ex: x, tool: name, argKey: k, params: msg.Params, args: args}
			}
		}
	}
	return nil
}

// traversalPaths are the sandbox probe's attempts: relative escapes, absolute
// paths, encoded and doubled separators, home and proc secrets.
var traversalPaths = []string{
	"../../../../../../etc/passwd",
	"/etc/passwd",
	"..%2f..%2f..%2f..%2fetc%2fpasswd",
	"....//....//....//etc/passwd",
	"/proc/self/environ",
	"~/.ssh/id_rsa",
	"..\\..\\..\\..\\windows\\win.ini",
	"/etc/shadow",
	"./../../../../root/.bash_history",
	"%2e%2e/%2e%2e/%2e%2e/etc/hosts",
}

// body builds the probe's JSON-RPC request with the i-th traversal path.
func (t *probeTemplate) body(i int) []byte {
	args := make(map[string]json.RawMessage, len(t.args))
	for k, v := range t.args {
		args[k] = v
	}
	args[t.argKey], _ = json.Marshal(traversalPaths[i%len(traversalPaths)])
	params := make(map[string]json.RawMessage, len(t.params))
	for k, v := range t.params {
		params[k] = v
	}
	params["arguments"], _ = json.Marshal(args)
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": params})
	return b
}
