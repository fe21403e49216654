package replay

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/loadtape/loadtape/monitor"
	"github.com/shirou/gopsutil/v4/mem"
)

// runJSON is run.json: what the analyser reads beside the result and sample
// files. Keep the keys: analyze depends on them.
type runJSON struct {
	ID          string            `json:"id"`
	Started     string            `json:"started"` // RFC3339
	Ended       string            `json:"ended"`
	Interrupted bool              `json:"interrupted"`
	TimeScale   float64           `json:"time_scale"`
	Seed        int64             `json:"seed"`
	Shard       string            `json:"shard"` // "I/N"
	Versions    map[string]string `json:"versions"`
	Host        map[string]any    `json:"host"`
	Targets     map[string]string `json:"targets"`
	Profile     json.RawMessage   `json:"profile"`
	Scenarios   []string          `json:"scenarios"` // the ones this run ran
	Stages      []stageJSON       `json:"stages"`
	Monitor     []monitorJSON     `json:"monitor"`
	Requests    int64             `json:"requests"`
	Errors      int64             `json:"errors"`
}

type stageJSON struct {
	Scenario string  `json:"scenario"`
	Stage    int     `json:"stage"`
	Name     string  `json:"name"`
	Users    int     `json:"users"`
	Rate     float64 `json:"rate"`
	Start    string  `json:"start"` // RFC3339Nano
	End      string  `json:"end"`
}

type monitorJSON struct {
	Source  string `json:"source"`
	URL     string `json:"url,omitempty"`
	Service string `json:"service,omitempty"` // the service whose target shares the scrape's host:port
}

func writeRunJSON(p *plan, rp *runState, info *RunInfo, sources []monitor.SourceInfo) error {
	rj := runJSON{
		ID: info.ID, Started: info.Started.UTC().Format(time.RFC3339), Ended: info.Ended.UTC().Format(time.RFC3339),
		Interrupted: info.Interrupted, TimeScale: p.scale, Seed: p.opts.Seed,
		Shard:    fmt.Sprintf("%d/%d", p.shard.i, p.shard.n),
		Versions: versions(p.opts.Version), Host: hostInfo(),
		Targets: map[string]string{}, Profile: p.profile.jsonValue(), Scenarios: p.scenarios,
		Stages: []stageJSON{}, Monitor: []monitorJSON{}, Requests: info.Requests, Errors: info.Errors,
	}
	for svc, t := range p.targets {
		rj.Targets[svc] = t.base.String()
	}
	for _, s := range info.Stages {
		rj.Stages = append(rj.Stages, stageJSON{Scenario: s.Scenario, Stage: s.Stage, Name: s.Name, Users: s.Users, Rate: s.Rate,
			Start: s.Start.UTC().Format(time.RFC3339Nano), End: s.End.UTC().Format(time.RFC3339Nano)})
	}
	for _, src := range sources {
		m := monitorJSON{Source: src.Source, URL: src.URL}
		if src.HostPort != "" {
			for svc, t := range p.targets {
				if hostPort(t) == src.HostPort {
					m.Service = svc
				}
			}
		}
		rj.Monitor = append(rj.Monitor, m)
	}
	b, err := json.MarshalIndent(rj, "", "  ")
	if err != nil {
		return fmt.Errorf("run.json: %w", err)
	}
	path := filepath.Join(info.Dir, "run.json")
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("run.json: %w", err)
	}
	return os.Rename(path+".tmp", path)
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
