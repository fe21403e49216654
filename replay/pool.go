package replay

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// Pool holds the captured exchanges replay draws from, per service: by
// operation for closed and open mode, by session for sessions mode. Order is
// deterministic (start time, then id) so that a seed always picks the same
// exchanges.
type Pool struct {
	services  map[string]*servicePool
	truncated map[string]int // "service\x00operation" → exchanges left out for a truncated request body
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
}

// NewPool indexes exchanges. It keeps pointers into xs.
func NewPool(xs []captures.Exchange) *Pool {
	p := &Pool{services: map[string]*servicePool{}, truncated: map[string]int{}}
	bySession := map[string]map[string][]*entry{} // service → session → entries
	for i := range xs {
		x := &xs[i]
		if isRefusedProbe(x) {
			continue
		}
		// A request body cut at the recorder's --max-body would only be
		// refused by the target as malformed: it is not load worth sending.
		if x.ReqTruncated {
			p.truncated[x.Service+"\x00"+x.Operation]++
			continue
		}
		sp := p.services[x.Service]
		if sp == nil {
			sp = &servicePool{ops: map[string][]*entry{}}
			p.services[x.Service] = sp
			bySession[x.Service] = map[string][]*entry{}
		}
		e := &entry{ex: x}
		sp.ops[x.Operation] = append(sp.ops[x.Operation], e)
		sp.count++
		bySession[x.Service][x.Session] = append(bySession[x.Service][x.Session], e)
		if x.Path == "/health" && sp.health == "" {
			sp.health = "/health"
		}
		if x.RPCMethod == "initialize" && (sp.mcpInit == nil || less(x, sp.mcpInit)) {
			sp.mcpInit = x
		}
	}
	for svc, sp := range p.services {
		for _, es := range sp.ops {
			sort.Slice(es, func(i, j int) bool { return less(es[i].ex, es[j].ex) })
		}
		var gaps []time.Duration
		for _, es := range bySession[svc] {
			sort.Slice(es, func(i, j int) bool {
				if es[i].ex.Seq != es[j].ex.Seq {
					return es[i].ex.Seq < es[j].ex.Seq
				}
				return less(es[i].ex, es[j].ex)
			})
			for k := 0; k+1 < len(es); k++ {
				end := es[k].ex.StartNS + es[k].ex.DurationNS
				g := time.Duration(es[k+1].ex.StartNS - end)
				if g < 0 {
					g = 0
				}
				es[k].thinkAfter = g
				gaps = append(gaps, g)
			}
			sp.sessions = append(sp.sessions, es)
		}
		// The last exchange of a session has no recorded pause after it: give
		// it the median pause of the service so as_recorded stays realistic.
		med := median(gaps)
		for _, es := range sp.sessions {
			es[len(es)-1].thinkAfter = med
		}
		sort.Slice(sp.sessions, func(i, j int) bool { return less(sp.sessions[i][0].ex, sp.sessions[j][0].ex) })
		sp.probe = findProbeTemplate(sp)
	}
	return p
}

// isRefusedProbe recognises an MCP message a client sent before any session
// existed and the server refused with a 4xx (an SDK's server/discover
// version probe, say). It carried no load worth replaying and would only
// fail again, so pools leave it out.
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
	sp := p.services[s.Service]
	if sp == nil || sp.count == 0 {
		return fmt.Errorf("scenario %q: the capture has no exchanges of service %q (it has: %s)",
			name, s.Service, strings.Join(p.Services(), ", "))
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
			if n := p.truncated[s.Service+"\x00"+op]; n > 0 {
				return fmt.Errorf("scenario %q: every captured %q exchange (%d) has a truncated request body; record again with a larger --max-body", name, op, n)
			}
			return fmt.Errorf("scenario %q: mix operation %q is not in the capture of service %q (it has: %s)",
				name, op, s.Service, strings.Join(p.Operations(s.Service), ", "))
		}
	}
	return nil
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
