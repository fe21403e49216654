package replay

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/loadtape/loadtape/captures"
)

// plan is a run that passed every input check and has not sent anything.
type plan struct {
	opts      Options
	profile   *Profile
	pool      *Pool
	scenarios []string
	targets   map[string]*target
	shard     shardSpec
	scale     float64
	peakConns int // connections the users can hold at once, all scenarios together
}

// prepare checks everything that can be checked before a request is sent;
// every failure is an *InputError. It writes nothing.
func prepare(opts Options) (*plan, error) {
	p := &plan{opts: opts}
	var err error
	if p.profile = opts.Profile; p.profile == nil {
		if opts.ProfilePath == "" {
			return nil, badInput(errors.New("replay: no profile (want --profile FILE)"))
		}
		if p.profile, err = LoadProfile(opts.ProfilePath); err != nil {
			return nil, err
		}
	}
	if p.shard, err = parseShard(opts.Shard); err != nil {
		return nil, err
	}
	if p.scale = opts.TimeScale; p.scale == 0 {
		p.scale = 1
	}
	if p.scale < 0 {
		return nil, badInput(fmt.Errorf("--time-scale %v: want > 0", opts.TimeScale))
	}
	if opts.MaxRun < 0 {
		return nil, badInput(fmt.Errorf("--max-run %v: want a duration > 0, or 0 for no limit", opts.MaxRun))
	}
	if err := checkOut(opts.Out, opts.Force); err != nil {
		return nil, err
	}
	if err := p.selectScenarios(); err != nil {
		return nil, err
	}
	if err := p.checkSearchShards(); err != nil {
		return nil, err
	}
	p.targets = map[string]*target{}
	for _, name := range p.scenarios {
		svc := p.profile.Scenarios[name].Service
		raw, ok := opts.Targets[svc]
		if !ok {
			return nil, badInput(fmt.Errorf("%w: scenario %q sends to service %q; add --target %s=URL (replay never sends to a recorded host)", ErrNoTarget, name, svc, svc))
		}
		t, err := parseTarget(svc, raw)
		if err != nil {
			return nil, err
		}
		p.targets[svc] = t
	}
	for svc, raw := range opts.Targets {
		if _, err := parseTarget(svc, raw); err != nil {
			return nil, err
		}
	}
	xs := opts.Exchanges
	if xs == nil {
		if len(opts.Captures) == 0 {
			return nil, badInput(errors.New("replay: no capture (want --captures PATH)"))
		}
		if xs, err = readCaptures(opts.Captures, p.services()); err != nil {
			return nil, err
		}
	}
	if len(xs) == 0 {
		return nil, badInput(fmt.Errorf("%w: %s", ErrEmptyCapture, strings.Join(opts.Captures, ", ")))
	}
	creds := credentials{headers: opts.Headers, secrets: opts.Secrets, allowMissing: opts.AllowMissingCredentials}
	if xs, err = creds.apply(xs, p.services(), opts.Exchanges == nil); err != nil {
		return nil, err
	}
	p.pool = NewPool(xs)
	for _, name := range p.scenarios {
		if err := p.pool.check(name, p.profile.Scenarios[name]); err != nil {
			return nil, badInput(err)
		}
	}
	if err := p.profile.CheckTargetOperations(p.pool.Operations); err != nil {
		return nil, err
	}
	machine := opts.machine
	if machine == nil {
		c := hostCapacity()
		machine = &c
	}
	if err := p.checkCapacity(*machine); err != nil {
		return nil, err
	}
	return p, nil
}

// selectScenarios resolves --scenario (repeatable, comma lists) against the
// profile; none means all of them.
func (p *plan) selectScenarios() error {
	for _, s := range p.opts.Scenarios {
		for _, name := range strings.Split(s, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			if p.profile.Scenarios[name] == nil {
				return badInput(fmt.Errorf("--scenario %q: not in the profile (it has: %s)", name, strings.Join(p.profile.ScenarioNames(), ", ")))
			}
			if !slices.Contains(p.scenarios, name) {
				p.scenarios = append(p.scenarios, name)
			}
		}
	}
	if len(p.scenarios) == 0 {
		p.scenarios = p.profile.ScenarioNames()
	}
	slices.Sort(p.scenarios)
	return nil
}

func (p *plan) services() map[string]bool {
	m := map[string]bool{}
	for _, name := range p.scenarios {
		m[p.profile.Scenarios[name].Service] = true
	}
	return m
}

// readCaptures loads the exchanges of the services the run needs.
func readCaptures(paths []string, want map[string]bool) ([]captures.Exchange, error) {
	// Response bodies, headers and chunk timings are most of a capture's
	// bytes and replay needs none of them: leave them on disk.
	var cols []string
	for _, c := range captures.Columns(captures.KindExchanges) {
		if c != "resp_body" && c != "resp_headers" && c != "chunk_offsets_ns" {
			cols = append(cols, c)
		}
	}
	r, err := captures.NewReader[captures.Exchange](paths, captures.ReaderOptions{BatchSize: 4096, Columns: cols})
	if err != nil {
		return nil, badInput(err)
	}
	defer r.Close()
	var xs []captures.Exchange
	seen := map[string]bool{}
	for r.Next() {
		for _, x := range r.Batch() {
			seen[x.Service] = true
			if want[x.Service] {
				xs = append(xs, x)
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, badInput(err)
	}
	if len(xs) == 0 && len(seen) > 0 {
		// Say what the capture does hold, to catch a service name mix-up.
		return nil, badInput(fmt.Errorf("replay: the capture has no exchanges of %s (it has: %s)",
			strings.Join(sortedKeys(want), ", "), strings.Join(sortedKeys(seen), ", ")))
	}
	return xs, nil
}
