// Package runspec owns what loadtape's stages hand each other besides
// Parquet rows (those are captures'): the run file (run.json) that replay
// writes and analyze reads, the think-time and target specs of a profile,
// the error kinds a result row may carry with the classifier that assigns
// them, and the host:port form that ties a scrape URL to a service.
// RUNFILE.md describes the run file field by field.
package runspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// FileName is the run file's name inside a run directory.
const FileName = "run.json"

// ErrBadRunFile wraps every error of a run file that exists but cannot be
// used; the message names the file and, for syntax errors, the line.
var ErrBadRunFile = errors.New("runspec: bad run file")

// Run is run.json: what one replay ran, beside its result and sample files.
// Times are RFC 3339 text in UTC, so that they sort as text.
type Run struct {
	ID          string            `json:"id"`
	Started     string            `json:"started"` // RFC 3339, seconds
	Ended       string            `json:"ended"`
	Interrupted bool              `json:"interrupted"`          // ended before its last stage did
	EndedBy     string            `json:"ended_by,omitempty"`   // completed, signal, max_run or abort
	EndReason   string            `json:"end_reason,omitempty"` // in words: "--max-run 5s reached"
	TimeScale   float64           `json:"time_scale"`           // durations and think times were multiplied by it; 0 reads as 1
	Seed        int64             `json:"seed"`
	Shard       string            `json:"shard"` // "I/N"
	Versions    map[string]string `json:"versions"`
	Host        map[string]any    `json:"host"`
	Targets     map[string]string `json:"targets"` // service → base URL
	Profile     Profile           `json:"profile"`
	Scenarios   []string          `json:"scenarios"` // the ones this run ran
	Stages      []Stage           `json:"stages"`
	Monitor     []Monitor         `json:"monitor"`
	Requests    int64             `json:"requests"`
	Errors      int64             `json:"errors"`
	LeftOut     []LeftOut         `json:"left_out,omitempty"` // captured exchanges a scenario did not replay, and why
	Start       *Start            `json:"start,omitempty"`    // the common start instant of the shards (--start-at); nil without one
	Search      []SearchResult    `json:"search,omitempty"`   // capacity searches the run made, one per scenario with search
}

// SearchResult is one scenario's capacity search: the users each of its
// stages ran, whether the target held there, and what it found: Met is
// the most users that met the target (0: none did), Failed the fewest
// that missed it (0: none did, Max met it); the capacity lies between.
type SearchResult struct {
	Scenario string       `json:"scenario"`
	Target   string       `json:"target"` // the target's label
	From     int          `json:"from"`
	Max      int          `json:"max"`
	Steps    []SearchStep `json:"steps"`
	Met      int          `json:"met"`
	Failed   int          `json:"failed"`
	Done     bool         `json:"done"` // the search ended by itself (false: the run ended first)
}

// SearchStep is one stage of a search and the target's verdict on it.
type SearchStep struct {
	Stage int      `json:"stage"` // the stage's number in run.json's stages
	Users int      `json:"users"`
	Value *float64 `json:"value,omitempty"` // nil: nothing to measure (a miss)
	Bound float64  `json:"bound"`           // after time scaling
	Unit  string   `json:"unit"`
	Met   bool     `json:"met"`
}

// Start is a shard's start instant and how late it began: the stages were
// laid on the clock from Began, which SkewMS (Began − At, milliseconds)
// puts after the instant At every shard was given.
type Start struct {
	At     string  `json:"at"`    // RFC 3339 with nanoseconds
	Began  string  `json:"began"` // RFC 3339 with nanoseconds
	SkewMS float64 `json:"skew_ms"`
}

// LeftOut counts the captured exchanges of one service and operation that
// a scenario's pool left out, and says why: "HTTP 404" (any status of 400
// and up), "upstream error", "client aborted" (failed when recorded; a
// scenario with include_failed keeps these), "truncated request body",
// "refused before any session" (never replayed).
type LeftOut struct {
	Scenario  string `json:"scenario,omitempty"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Reason    string `json:"reason"`
	Count     int    `json:"count"`
}

// Stage is one stage's place on the run's timeline.
type Stage struct {
	Scenario string  `json:"scenario"`
	Stage    int     `json:"stage"` // 1-based, in profile order
	Name     string  `json:"name"`
	Users    int     `json:"users"` // closed and sessions modes
	Rate     float64 `json:"rate"`  // open mode: arrivals per second, before time scaling
	Start    string  `json:"start"` // RFC 3339 with nanoseconds
	End      string  `json:"end"`
}

// Monitor is one resource source the run sampled.
type Monitor struct {
	Source  string `json:"source"` // nvml, host, prom
	URL     string `json:"url,omitempty"`
	Service string `json:"service,omitempty"` // the service whose target shares the scrape's host:port
}

// Profile is the profile as replay ran it, after its defaults were filled
// in. Checks and classify rules are replay's to interpret; they travel as
// the JSON replay wrote.
type Profile struct {
	Scenarios  map[string]Scenario `json:"scenarios"`
	Classify   json.RawMessage     `json:"classify,omitempty"`
	Targets    []Target            `json:"targets,omitempty"`
	Acceptance float64             `json:"acceptance,omitempty"`
}

// Scenario is one scenario of the profile.
type Scenario struct {
	Service     string             `json:"service"`
	Mode        string             `json:"mode"`
	Stages      []ProfileStage     `json:"stages"`
	SpawnRate   float64            `json:"spawn_rate,omitempty"`
	Think       *Think             `json:"think,omitempty"` // nil: not known (a run file of another writer)
	Mix         map[string]float64 `json:"mix,omitempty"`
	Arrivals    string             `json:"arrivals,omitempty"`
	Speed       float64            `json:"speed,omitempty"` // arrivals as_recorded: times as fast as recorded
	MaxInFlight int                `json:"max_in_flight,omitempty"`
	Workers     int                `json:"workers,omitempty"` // open mode: most requests sent at once
	Checks      json.RawMessage    `json:"checks,omitempty"`
	Health      string             `json:"health,omitempty"`
	// IncludeFailed: the scenario replayed the exchanges that failed when
	// recorded, expecting them to fail the same way.
	IncludeFailed bool `json:"include_failed,omitempty"`
	// Goodput are the bounds a request must all meet to count as good.
	Goodput *Goodput `json:"goodput,omitempty"`
}

// Goodput are a scenario's service-level bounds for goodput, as vLLM's
// bench serve --goodput takes them: a request is good when it succeeded
// and each bound given holds (TTFT, time per output token, end to end).
// A zero bound is not given.
type Goodput struct {
	TTFT Duration `json:"ttft,omitempty" yaml:"ttft"`
	TPOT Duration `json:"tpot,omitempty" yaml:"tpot"`
	E2E  Duration `json:"e2e,omitempty" yaml:"e2e"`
}

// Empty reports whether no bound is given.
func (g *Goodput) Empty() bool { return g == nil || (g.TTFT == 0 && g.TPOT == 0 && g.E2E == 0) }

// Validate refuses a negative bound or goodput without any bound.
func (g *Goodput) Validate() error {
	if g.TTFT < 0 || g.TPOT < 0 || g.E2E < 0 {
		return errors.New("goodput bounds must be durations >= 0")
	}
	if g.Empty() {
		return errors.New("goodput needs at least one of ttft, tpot and e2e")
	}
	return nil
}

// ProfileStage is a stage as the profile writes it, before time scaling.
type ProfileStage struct {
	Users    int      `json:"users,omitempty"`
	Rate     float64  `json:"rate,omitempty"`
	Duration Duration `json:"duration"`
	Name     string   `json:"name,omitempty"`
}

// Scale is the run's time scale, 1 when unset.
func (r *Run) Scale() float64 {
	if r.TimeScale <= 0 {
		return 1
	}
	return r.TimeScale
}

// ThinkMean is the mean think time of a scenario in seconds after time
// scaling, or -1 when it is unknown (as recorded, or no such scenario).
func (r *Run) ThinkMean(scenario string) float64 {
	sc, ok := r.Profile.Scenarios[scenario]
	if !ok {
		return -1
	}
	if sc.Think == nil {
		return -1
	}
	m, ok := sc.Think.Mean()
	if !ok {
		return -1
	}
	return m.Seconds() * r.Scale()
}

// StageIndex is the index of a scenario's stage in Stages, -1 when absent.
func (r *Run) StageIndex(scenario string, stage int) int {
	for i, s := range r.Stages {
		if s.Scenario == scenario && s.Stage == stage {
			return i
		}
	}
	return -1
}

// Write writes dir/run.json atomically (a temporary file renamed).
func (r *Run) Write(dir string) error {
	if r.Targets == nil {
		r.Targets = map[string]string{}
	}
	if r.Stages == nil {
		r.Stages = []Stage{}
	}
	if r.Monitor == nil {
		r.Monitor = []Monitor{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("run.json: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("run.json: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

// Read reads and checks dir/run.json. A missing file is an fs error
// wrapped with the path; a file that cannot be used wraps ErrBadRunFile.
func Read(dir string) (*Run, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (a run directory holds run.json beside its results)", path, err)
	}
	return Parse(b, path)
}

// Parse reads a run file's bytes; name labels errors.
func Parse(b []byte, name string) (*Run, error) {
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %s%s: %v", ErrBadRunFile, name, jsonPos(b, err), err)
	}
	if r.ID == "" {
		return nil, fmt.Errorf("%w: %s: missing \"id\"", ErrBadRunFile, name)
	}
	if r.TimeScale < 0 || math.IsNaN(r.TimeScale) || math.IsInf(r.TimeScale, 0) {
		return nil, fmt.Errorf("%w: %s: time_scale %v: want a number > 0", ErrBadRunFile, name, r.TimeScale)
	}
	if err := ValidAcceptance(r.Profile.Acceptance); err != nil {
		return nil, fmt.Errorf("%w: %s: profile.%v", ErrBadRunFile, name, err)
	}
	for i, s := range r.Stages {
		if s.Scenario == "" || s.Stage <= 0 {
			return nil, fmt.Errorf("%w: %s: stages[%d]: want scenario and a 1-based stage", ErrBadRunFile, name, i)
		}
		if _, err := ParseTime(s.Start); err != nil {
			return nil, fmt.Errorf("%w: %s: stages[%d].start: %v", ErrBadRunFile, name, i, err)
		}
		if s.End != "" {
			if _, err := ParseTime(s.End); err != nil {
				return nil, fmt.Errorf("%w: %s: stages[%d].end: %v", ErrBadRunFile, name, i, err)
			}
		}
	}
	return &r, nil
}

// ParseTime reads a run file's RFC 3339 time.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time, got %q", s)
	}
	return t, nil
}

// jsonPos is ":LINE:COL" of the byte a JSON decoding error points at, as
// the YAML files' errors name theirs; "" when the error names none.
func jsonPos(b []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return ""
	}
	// The offset counts the bytes read, the offending one the last.
	head := b[:max(0, min(int(off), len(b))-1)]
	line := 1 + bytes.Count(head, []byte{'\n'})
	col := len(head) - bytes.LastIndexByte(head, '\n')
	return fmt.Sprintf(":%d:%d", line, col)
}
