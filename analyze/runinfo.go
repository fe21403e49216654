package analyze

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RunInfo is the part of run.json that analyze reads. The replayer writes
// run.json; analyze keeps its own minimal view of it so that it never
// imports replay.
type RunInfo struct {
	ID          string            `json:"id"`
	Started     string            `json:"started"`
	Ended       string            `json:"ended"`
	Interrupted bool              `json:"interrupted"`
	TimeScale   float64           `json:"time_scale"`
	Shard       string            `json:"shard"`
	Targets     map[string]string `json:"targets"` // service → base URL
	Profile     ProfileInfo       `json:"profile"`
	Stages      []StageInfo       `json:"stages"`
	Monitor     []MonitorInfo     `json:"monitor"`
}

// ProfileInfo is the part of the profile analyze needs.
type ProfileInfo struct {
	Scenarios  map[string]ScenarioInfo `json:"scenarios"`
	Targets    []TargetSpec            `json:"targets"`
	Acceptance float64                 `json:"acceptance"`
}

// ScenarioInfo is one scenario of the profile.
type ScenarioInfo struct {
	Service string          `json:"service"`
	Mode    string          `json:"mode"`
	Think   json.RawMessage `json:"think,omitempty"`
	// Workers is open mode's limit on requests being sent at once.
	Workers int `json:"workers,omitempty"`
}

// StageInfo is one stage of the run's timeline.
type StageInfo struct {
	Scenario string  `json:"scenario"`
	Stage    int     `json:"stage"`
	Name     string  `json:"name"`
	Users    int     `json:"users"`
	Rate     float64 `json:"rate"`
	Start    string  `json:"start"`
	End      string  `json:"end"`
}

// MonitorInfo is one resource source the run sampled.
type MonitorInfo struct {
	Source  string `json:"source"`
	URL     string `json:"url"`
	Service string `json:"service"`
}

// ReadRunInfo reads dir/run.json.
func ReadRunInfo(dir string) (*RunInfo, error) {
	path := filepath.Join(dir, "run.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, badInputf("%s: %v (a run directory holds run.json beside its results)", path, err)
	}
	var ri RunInfo
	if err := json.Unmarshal(b, &ri); err != nil {
		return nil, badInputf("%s: %v", path, jsonErr(b, err))
	}
	if ri.ID == "" {
		return nil, badInputf("%s: missing \"id\"", path)
	}
	for i, s := range ri.Stages {
		if s.Scenario == "" || s.Stage <= 0 {
			return nil, badInputf("%s: stages[%d]: want scenario and a 1-based stage", path, i)
		}
		if _, err := parseTime(s.Start); err != nil {
			return nil, badInputf("%s: stages[%d].start: %v", path, i, err)
		}
		if s.End != "" {
			if _, err := parseTime(s.End); err != nil {
				return nil, badInputf("%s: stages[%d].end: %v", path, i, err)
			}
		}
	}
	return &ri, nil
}

// jsonErr adds the line to a JSON syntax error.
func jsonErr(b []byte, err error) error {
	if se, ok := err.(*json.SyntaxError); ok {
		line := 1 + strings.Count(string(b[:min(int(se.Offset), len(b))]), "\n")
		return fmt.Errorf("line %d: %v", line, err)
	}
	return err
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time, got %q", s)
	}
	return t, nil
}

// scale is the run's time scale, 1 when unset.
func (ri *RunInfo) scale() float64 {
	if ri.TimeScale <= 0 {
		return 1
	}
	return ri.TimeScale
}

// thinkMean is the mean think time of a scenario in seconds after time
// scaling, or -1 when it is unknown (as recorded, or not given).
func (ri *RunInfo) thinkMean(scenario string) float64 {
	sc, ok := ri.Profile.Scenarios[scenario]
	if !ok || len(sc.Think) == 0 || string(sc.Think) == "null" {
		return -1
	}
	m, ok := thinkSeconds(sc.Think)
	if !ok {
		return -1
	}
	return m * ri.scale()
}

// thinkSeconds understands {uniform: [a, b]}, {exponential: m},
// {constant: d} and a bare duration; durations are strings ("2s") or
// numbers (seconds, or nanoseconds when ≥ 1e6, which is how Go marshals a
// time.Duration).
func thinkSeconds(raw json.RawMessage) (float64, bool) {
	if d, ok := durationSeconds(raw); ok {
		return d, true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return 0, false
	}
	if len(m) == 0 {
		return 0, true // no think: users send back to back
	}
	for k, v := range m {
		switch strings.ToLower(k) {
		case "uniform":
			var ab []json.RawMessage
			if json.Unmarshal(v, &ab) != nil || len(ab) != 2 {
				return 0, false
			}
			a, ok1 := durationSeconds(ab[0])
			b, ok2 := durationSeconds(ab[1])
			if ok1 && ok2 {
				return (a + b) / 2, true
			}
		case "exponential", "constant", "fixed", "mean":
			return durationSeconds(v)
		case "min", "max":
			a, ok1 := durationSeconds(m["min"])
			b, ok2 := durationSeconds(m["max"])
			if ok1 && ok2 {
				return (a + b) / 2, true
			}
		}
	}
	return 0, false
}

func durationSeconds(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, false
		}
		return d.Seconds(), true
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		if f >= 1e6 {
			return f / 1e9, true
		}
		return f, true
	}
	return 0, false
}

// mergeRunInfo joins the run.json of several shards of one run.
func mergeRunInfo(dirs []string, infos []*RunInfo) (*RunInfo, error) {
	out := *infos[0]
	out.Stages = append([]StageInfo(nil), infos[0].Stages...)
	for i, ri := range infos[1:] {
		if ri.ID != out.ID {
			return nil, badInputf("%s: run id %q differs from %q in %s: analyze takes the shards of one run", filepath.Join(dirs[i+1], "run.json"), ri.ID, out.ID, filepath.Join(dirs[0], "run.json"))
		}
		for _, s := range ri.Stages {
			j := out.stageIndex(s.Scenario, s.Stage)
			if j < 0 {
				out.Stages = append(out.Stages, s)
				continue
			}
			o := &out.Stages[j]
			if s.Start < o.Start { // RFC 3339 in UTC sorts as text; mixed zones are rare enough
				o.Start = s.Start
			}
			if s.End > o.End {
				o.End = s.End
			}
			// Whether a shard's run.json holds its share of the users or the
			// stage's total is the replayer's choice; the larger is right
			// for the latter and a lower bound for the former.
			o.Users = max(o.Users, s.Users)
		}
		out.Interrupted = out.Interrupted || ri.Interrupted
		if ri.Ended > out.Ended {
			out.Ended = ri.Ended
		}
		if ri.Started < out.Started {
			out.Started = ri.Started
		}
		out.Monitor = append(out.Monitor, ri.Monitor...)
	}
	return &out, nil
}

func (ri *RunInfo) stageIndex(scenario string, stage int) int {
	for i, s := range ri.Stages {
		if s.Scenario == scenario && s.Stage == stage {
			return i
		}
	}
	return -1
}

// hostPort normalises a URL's host and port for matching a scrape URL with
// a service's base URL ("localhost" and 127.0.0.1 are one host).
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	switch host {
	case "localhost", "::1", "0.0.0.0":
		host = "127.0.0.1"
	}
	return host + ":" + port
}

// parseFloat is strconv.ParseFloat without the error's noise.
func parseFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return f, err == nil
}
