package replay

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/loadtape/loadtape/monitor"
	"github.com/loadtape/loadtape/runspec"
	"github.com/shirou/gopsutil/v4/mem"
)

// writeRunJSON writes run.json (runspec.Run, described in
// runspec/RUNFILE.md): what the analyser reads beside the result and
// sample files.
func writeRunJSON(p *plan, rp *runState, info *RunInfo, sources []monitor.SourceInfo) error {
	rj := runspec.Run{
		ID: info.ID, Started: info.Started.UTC().Format(time.RFC3339), Ended: info.Ended.UTC().Format(time.RFC3339),
		Interrupted: info.Interrupted, EndedBy: info.EndedBy, EndReason: info.EndReason, TimeScale: p.scale, Seed: p.opts.Seed,
		Shard:    fmt.Sprintf("%d/%d", p.shard.i, p.shard.n),
		Versions: versions(p.opts.Version), Host: hostInfo(),
		Targets: map[string]string{}, Profile: p.profile.record(), Scenarios: p.scenarios,
		Stages: []runspec.Stage{}, Monitor: []runspec.Monitor{}, Requests: info.Requests, Errors: info.Errors,
		LeftOut: p.pool.LeftOutFor(p.profile, p.scenarios),
		Start:   startRecord(p.opts.StartAt, info.Started),
		Search:  info.Search,
	}
	for svc, t := range p.targets {
		rj.Targets[svc] = t.base.String()
	}
	for _, s := range info.Stages {
		rj.Stages = append(rj.Stages, runspec.Stage{Scenario: s.Scenario, Stage: s.Stage, Name: s.Name, Users: s.Users, Rate: s.Rate,
			Start: s.Start.UTC().Format(time.RFC3339Nano), End: s.End.UTC().Format(time.RFC3339Nano)})
	}
	for _, src := range sources {
		m := runspec.Monitor{Source: src.Source, URL: src.URL}
		if src.HostPort != "" {
			for svc, t := range p.targets {
				if runspec.HostPortOf(t.base) == src.HostPort {
					m.Service = svc
				}
			}
		}
		rj.Monitor = append(rj.Monitor, m)
	}
	return rj.Write(info.Dir)
}

// record is the profile as run.json holds it: every field, defaults
// filled in; checks and classify rules as their JSON.
func (p *Profile) record() runspec.Profile {
	out := runspec.Profile{Scenarios: map[string]runspec.Scenario{}, Targets: p.Targets, Acceptance: p.Acceptance}
	if len(p.Classify) > 0 {
		out.Classify = rawJSON(p.Classify)
	}
	for name, s := range p.Scenarios {
		think := s.Think
		rs := runspec.Scenario{Service: s.Service, Mode: s.Mode, SpawnRate: s.SpawnRate, Think: &think, Mix: s.Mix,
			Arrivals: s.Arrivals, Speed: s.Speed, MaxInFlight: s.MaxInFlight, Workers: s.Workers, Health: s.Health, IncludeFailed: s.IncludeFailed,
			Goodput: s.Goodput,
			Stages:  make([]runspec.ProfileStage, len(s.Stages))}
		for i, st := range s.Stages {
			rs.Stages[i] = runspec.ProfileStage{Users: st.Users, Rate: st.Rate, Duration: st.Duration, Name: st.Name}
		}
		if len(s.Checks) > 0 {
			rs.Checks = rawJSON(s.Checks)
		}
		out.Scenarios[name] = rs
	}
	return out
}

func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

func versions(loadtape string) map[string]string {
	if loadtape == "" {
		loadtape = "dev"
	}
	v := map[string]string{"loadtape": loadtape, "go": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/apache/arrow-go/v18" {
				v["arrow-go"] = d.Version
			}
		}
	}
	return v
}

func hostInfo() map[string]any {
	h := map[string]any{"os": runtime.GOOS, "arch": runtime.GOARCH, "cpus": runtime.NumCPU()}
	if name, err := osHostname(); err == nil {
		h["hostname"] = name
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		h["mem_total_bytes"] = vm.Total
	}
	return h
}
