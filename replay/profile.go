package replay

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/loadtape/loadtape/internal/yamlx"
	"github.com/loadtape/loadtape/runspec"
)

// Modes of a scenario.
const (
	ModeClosed   = "closed"   // virtual users: pick an operation by weight, send, think, repeat
	ModeSessions = "sessions" // virtual users replay whole captured sessions in order
	ModeOpen     = "open"     // arrivals at a rate, independent of responses
)

// SandboxProbe is the synthetic operation that sends path-traversal attempts
// through a captured MCP file tool; any that succeeds is a sandbox_violation.
const SandboxProbe = "mcp.sandbox_probe"

// DefaultMaxInFlight caps open-mode requests in flight when a scenario does
// not set max_in_flight.
const DefaultMaxInFlight = 1000

// Profile is a parsed profile file (docs/profile.md). Targets are
// checked here, before any request is sent, and evaluated by analyze from
// the copy in run.json.
type Profile struct {
	Scenarios  map[string]*Scenario `yaml:"scenarios" json:"scenarios"`
	Classify   []ClassifyRule       `yaml:"classify" json:"classify,omitempty"`
	Targets    []runspec.Target     `yaml:"targets" json:"targets,omitempty"`
	Acceptance float64              `yaml:"acceptance" json:"acceptance,omitempty"`

	// name is the file the profile came from, for error messages; src its
	// bytes, to find the line of a semantic error.
	name string
	src  []byte
	doc  *yamlx.Doc
}

// Scenario is one load shape aimed at one service.
type Scenario struct {
	Service     string             `yaml:"service" json:"service"`
	Mode        string             `yaml:"mode" json:"mode"`
	Stages      []Stage            `yaml:"stages" json:"stages"`
	SpawnRate   float64            `yaml:"spawn_rate" json:"spawn_rate,omitempty"` // users started per second; 0 = all at once
	Think       Think              `yaml:"think" json:"think"`
	Mix         map[string]float64 `yaml:"mix" json:"mix,omitempty"`
	Arrivals    string             `yaml:"arrivals" json:"arrivals,omitempty"` // open mode: poisson (default), constant or as_recorded
	Speed       float64            `yaml:"speed" json:"speed,omitempty"`       // arrivals as_recorded: 2 = twice as fast as recorded; default 1
	MaxInFlight int                `yaml:"max_in_flight" json:"max_in_flight,omitempty"`
	Workers     int                `yaml:"workers" json:"workers,omitempty"` // open mode: most requests sent at once; default DefaultOpenWorkers
	Checks      []Check            `yaml:"checks" json:"checks,omitempty"`
	Health      string             `yaml:"health" json:"health,omitempty"` // health path; default /health when the capture has it
	// IncludeFailed keeps the exchanges that failed when recorded in the
	// scenario's pool; they are then expected to fail the same way.
	IncludeFailed bool `yaml:"include_failed" json:"include_failed,omitempty"`
	// Goodput: the bounds (ttft, tpot, e2e) a request must all meet to
	// count as good; analyze reports good requests/s and the good share.
	Goodput *runspec.Goodput `yaml:"goodput" json:"goodput,omitempty"`
	// Search raises users stage by stage to find the most that meet one
	// target (search.go).
	Search *Search `yaml:"search" json:"search,omitempty"`
}

// Stage is one step of a scenario: users (closed, sessions) or an arrival
// rate (open) held for a duration.
type Stage struct {
	Users    int      `yaml:"users" json:"users,omitempty"`
	Rate     float64  `yaml:"rate" json:"rate,omitempty"`
	Duration Duration `yaml:"duration" json:"duration"`
	Name     string   `yaml:"name" json:"name,omitempty"`
}

// Think is the pause a virtual user takes after each request.
type Think = runspec.Think

// Check is an assertion on responses of one operation (all when Operation is
// empty). A response that fails any set field is an `assertion` error.
type Check struct {
	Operation string       `yaml:"operation" json:"operation,omitempty"`
	Status    int          `yaml:"status" json:"status,omitempty"`
	Header    *HeaderMatch `yaml:"header" json:"header,omitempty"`
	JSON      *JSONMatch   `yaml:"json" json:"json,omitempty"`
	Body      string       `yaml:"body" json:"body,omitempty"` // regular expression the body must match

	bodyRE *regexp.Regexp
}

// HeaderMatch matches a response header's value against a regular expression.
type HeaderMatch struct {
	Name    string `yaml:"name" json:"name"`
	Matches string `yaml:"matches" json:"matches"`

	re *regexp.Regexp
}

// JSONMatch compares the value at a dotted path of the JSON body (for an MCP
// response, of its JSON-RPC message) with Equals, or only tests presence.
type JSONMatch struct {
	Path   string `yaml:"path" json:"path"`
	Equals any    `yaml:"equals" json:"equals,omitempty"`
	Exists *bool  `yaml:"exists" json:"exists,omitempty"`
}

// ClassifyRule gives failed responses that match it an error kind of its own
// (db_connection for "too many connections", say). Every set matcher must
// match; Body is a case-insensitive regular expression.
type ClassifyRule struct {
	Status int          `yaml:"status" json:"status,omitempty"`
	Header *HeaderMatch `yaml:"header" json:"header,omitempty"`
	Body   string       `yaml:"body" json:"body,omitempty"`
	Kind   string       `yaml:"kind" json:"kind"`

	bodyRE *regexp.Regexp
}

// Duration is a time.Duration written as "5m" in YAML and JSON.
type Duration = runspec.Duration

// LoadProfile reads and validates a profile file.
func LoadProfile(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, badInput(fmt.Errorf("profile: %w", err))
	}
	return ParseProfile(b, path)
}

// ParseProfile parses and validates profile YAML; name labels error messages.
// Unknown fields are refused with their line.
func ParseProfile(data []byte, name string) (*Profile, error) {
	p := &Profile{}
	if err := yamlx.Decode(name, data, p); err != nil {
		return nil, badInput(err)
	}
	p.name, p.src = name, data // after decoding: an empty document zeroes *p
	if err := p.validate(); err != nil {
		return nil, badInput(err)
	}
	return p, nil
}

// errAt is an error at the line and column of a YAML path (mapping keys
// and sequence indexes); a profile built in code has no source and gets
// the bare message.
func (p *Profile) errAt(path []any, format string, args ...any) error {
	if len(p.src) == 0 {
		return fmt.Errorf("%s: %s", p.name, fmt.Sprintf(format, args...))
	}
	if p.doc == nil {
		p.doc = yamlx.Parse(p.name, p.src)
	}
	return p.doc.Errorf(path, format, args...)
}

// ScenarioNames returns the scenario names in a stable (sorted) order.
func (p *Profile) ScenarioNames() []string {
	names := make([]string, 0, len(p.Scenarios))
	for n := range p.Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *Profile) validate() error {
	if len(p.Scenarios) == 0 {
		return fmt.Errorf("%s: no scenarios (want a `scenarios:` mapping with at least one scenario)", p.name)
	}
	for _, name := range p.ScenarioNames() {
		s := p.Scenarios[name]
		at := func(k ...any) []any { return append([]any{"scenarios", name}, k...) }
		if s == nil {
			return p.errAt(at(), "scenario %q is empty", name)
		}
		if s.Service == "" {
			s.Service = name
		}
		if s.Mode == "" {
			s.Mode = ModeClosed
		}
		switch s.Mode {
		case ModeClosed, ModeSessions, ModeOpen:
		default:
			return p.errAt(at("mode"), "scenario %q: mode %q, want closed, sessions or open", name, s.Mode)
		}
		if len(s.Stages) == 0 {
			return p.errAt(at(), "scenario %q: no stages", name)
		}
		for i, st := range s.Stages {
			sa := at("stages", i)
			if st.Duration <= 0 {
				return p.errAt(sa, "scenario %q stage %d: duration must be > 0", name, i+1)
			}
			if s.Mode == ModeOpen && s.Arrivals == ArrivalsAsRecorded {
				if st.Rate != 0 || st.Users != 0 {
					return p.errAt(sa, "scenario %q stage %d: arrivals as_recorded take their times from the capture: want a duration and no rate or users", name, i+1)
				}
			} else if s.Mode == ModeOpen {
				if st.Rate <= 0 || st.Users != 0 {
					return p.errAt(sa, "scenario %q stage %d: open mode wants rate > 0 (arrivals per second) and no users", name, i+1)
				}
			} else if st.Users < 0 || st.Rate != 0 {
				return p.errAt(sa, "scenario %q stage %d: %s mode wants users >= 0 and no rate", name, i+1, s.Mode)
			}
		}
		if s.SpawnRate < 0 {
			return p.errAt(at("spawn_rate"), "scenario %q: spawn_rate must be >= 0", name)
		}
		if err := s.Think.Validate(); err != nil {
			return p.errAt(at("think"), "scenario %q: think: %v", name, err)
		}
		if s.Mode != ModeSessions && s.Arrivals != ArrivalsAsRecorded && len(s.Mix) == 0 {
			return p.errAt(at(), "scenario %q: %s mode needs a mix of operation weights", name, s.Mode)
		}
		for _, op := range sortedKeys(s.Mix) {
			if w := s.Mix[op]; !(w > 0) {
				return p.errAt(at("mix", op), "scenario %q: mix weight of %q is %v, want > 0", name, op, w)
			}
		}
		switch s.Arrivals {
		case "":
			s.Arrivals = "poisson"
		case "poisson", "constant":
		case ArrivalsAsRecorded:
			if s.Mode != ModeOpen {
				return p.errAt(at("arrivals"), "scenario %q: arrivals as_recorded is for open mode", name)
			}
		default:
			return p.errAt(at("arrivals"), "scenario %q: arrivals %q, want poisson, constant or as_recorded", name, s.Arrivals)
		}
		if s.Speed < 0 || (s.Speed != 0 && s.Arrivals != ArrivalsAsRecorded) {
			return p.errAt(at("speed"), "scenario %q: speed %v, want > 0 with arrivals as_recorded (2 = twice as fast)", name, s.Speed)
		}
		if s.Arrivals == ArrivalsAsRecorded && s.Speed == 0 {
			s.Speed = 1
		}
		if s.Goodput != nil {
			if err := s.Goodput.Validate(); err != nil {
				return p.errAt(at("goodput"), "scenario %q: %v", name, err)
			}
		}
		if s.Workers < 0 {
			return p.errAt(at("workers"), "scenario %q: workers must be >= 0", name)
		}
		if s.MaxInFlight < 0 {
			return p.errAt(at("max_in_flight"), "scenario %q: max_in_flight must be >= 0", name)
		}
		if s.Mode == ModeOpen && s.MaxInFlight == 0 {
			s.MaxInFlight = DefaultMaxInFlight
		}
		if s.Mode == ModeOpen {
			// Written out, so that run.json tells analyze how many
			// requests could be sent at once (its send-lag diagnosis).
			s.Workers = s.workerLimit()
		}
		if s.Health != "" && !strings.HasPrefix(s.Health, "/") {
			return p.errAt(at("health"), "scenario %q: health %q, want a path starting with /", name, s.Health)
		}
		for i := range s.Checks {
			if err := s.Checks[i].compile(); err != nil {
				return p.errAt(at("checks", i), "scenario %q check %d: %v", name, i+1, err)
			}
		}
	}
	for i := range p.Classify {
		if err := p.Classify[i].compile(); err != nil {
			return p.errAt([]any{"classify", i}, "classify rule %d: %v", i+1, err)
		}
	}
	if err := runspec.ValidAcceptance(p.Acceptance); err != nil {
		return p.errAt([]any{"acceptance"}, "%v", err)
	}
	if err := p.checkTargets(); err != nil {
		return err
	}
	return p.checkSearch()
}

// checkTargets refuses, with its line, a target that analyze could not
// judge or would judge wrongly: targets are evaluated after the whole load
// ran, so a misspelt metric, a negative bound or `op: rag.index` (ignored,
// it would judge every operation) must stop the run before it starts.
func (p *Profile) checkTargets() error {
	kinds := map[string]bool{}
	for _, k := range runspec.BuiltinKinds {
		kinds[k] = true
	}
	for _, r := range p.Classify {
		kinds[r.Kind] = true
	}
	for i, t := range p.Targets {
		at := []any{"targets", i}
		if err := t.Validate(); err != nil {
			where := at
			switch {
			case errors.Is(err, runspec.ErrUnknownMetric):
				where = append(at, "metric")
			case errors.Is(err, runspec.ErrAbortMetric):
				where = append(at, "abort")
			case errors.Is(err, runspec.ErrBound) && t.Min != "":
				where = append(at, "min")
			case errors.Is(err, runspec.ErrBound):
				where = append(at, "max")
			}
			return p.errAt(where, "%v", err)
		}
		sc := p.Scenarios[t.Scenario]
		if sc == nil {
			return p.errAt(append(at, "scenario"), "target %d: scenario %q is not in the profile (want one of %s)", i+1, t.Scenario, strings.Join(p.ScenarioNames(), ", "))
		}
		if (t.Metric == "goodput" || t.Metric == "good_share") && sc.Goodput.Empty() {
			return p.errAt(append(at, "metric"), "target %d: %s needs goodput bounds in scenario %q (goodput: {ttft: 500ms, tpot: 50ms, e2e: 10s})", i+1, t.Metric, t.Scenario)
		}
		if t.ErrorKind != "" && !kinds[t.ErrorKind] {
			return p.errAt(append(at, "error_kind"), "target %d: error_kind %q is neither a kind replay assigns (%s) nor one a classify rule gives", i+1, t.ErrorKind, strings.Join(runspec.BuiltinKinds, ", "))
		}
		if op := t.Operation; op != "" && op != runspec.AllOps && sc.Mode != ModeSessions {
			if _, ok := sc.Mix[op]; !ok {
				return p.errAt(append(at, "operation"), "target %d: operation %q is not in scenario %q's mix (want all or one of %s)", i+1, op, t.Scenario, strings.Join(sortedKeys(sc.Mix), ", "))
			}
		}
	}
	return nil
}

// CheckTargetOperations refuses a target whose operation the capture does
// not hold for its scenario's service; ops lists a service's operations.
// A sessions-mode scenario sends what its sessions recorded, so only the
// capture can say which operations it has.
func (p *Profile) CheckTargetOperations(ops func(service string) []string) error {
	for i, t := range p.Targets {
		sc := p.Scenarios[t.Scenario]
		if sc == nil || t.Operation == "" || t.Operation == runspec.AllOps || sc.Mode != ModeSessions {
			continue
		}
		have := ops(sc.Service)
		if !slices.Contains(have, t.Operation) {
			return badInput(p.errAt([]any{"targets", i, "operation"}, "target %d: operation %q is not in the capture of service %q (want all or one of %s)", i+1, t.Operation, sc.Service, strings.Join(have, ", ")))
		}
	}
	return nil
}

func (c *Check) compile() error {
	if c.Status == 0 && c.Header == nil && c.JSON == nil && c.Body == "" {
		return errors.New("check has nothing to check (want status, header, json or body)")
	}
	if c.Body != "" {
		re, err := regexp.Compile(c.Body)
		if err != nil {
			return fmt.Errorf("body pattern: %v", err)
		}
		c.bodyRE = re
	}
	if c.Header != nil {
		if err := c.Header.compile(); err != nil {
			return err
		}
	}
	if c.JSON != nil && c.JSON.Path == "" {
		return errors.New("json check needs a path")
	}
	return nil
}

func (h *HeaderMatch) compile() error {
	if h.Name == "" {
		return errors.New("header match needs a name")
	}
	re, err := regexp.Compile(h.Matches)
	if err != nil {
		return fmt.Errorf("header pattern: %v", err)
	}
	h.re = re
	return nil
}

func (r *ClassifyRule) compile() error {
	if r.Kind == "" {
		return errors.New("rule needs a kind")
	}
	if r.Status == 0 && r.Header == nil && r.Body == "" {
		return errors.New("rule has no matcher (want status, header or body)")
	}
	if r.Body != "" {
		re, err := regexp.Compile("(?i)" + r.Body)
		if err != nil {
			return fmt.Errorf("body pattern: %v", err)
		}
		r.bodyRE = re
	}
	if r.Header != nil {
		return r.Header.compile()
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
