// Package analyze turns a run's result and sample files into statistics per
// scenario × stage × operation, evaluates the run's targets, and names the
// bottleneck with its evidence. It reads only files (run.json, results-*,
// samples-*) and imports no earlier stage but captures; reports renders what
// it produces.
package analyze

import (
	"encoding/json"
	"math"

	"github.com/loadtape/loadtape/runspec"
)

// SummarySchema is the version of summary.json.
const SummarySchema = 1

// Estimator names the percentile definition used for every percentile in a
// Summary, so that reports can say which one it is.
const Estimator = "exact nearest-rank on all rows (R type 1, the inverse of the empirical CDF: the ⌈p·n⌉-th smallest value)"

// Summary is what analyze produces and reports render. Its JSON form is
// summary.json (docs/analyze.md describes it); fields tagged "-" are kept
// for figures and comparison only.
type Summary struct {
	Schema     int            `json:"schema"`
	Run        RunMeta        `json:"run"`
	Stages     []*Stage       `json:"stages"`
	Targets    []TargetResult `json:"targets"`
	Findings   []Finding      `json:"findings"`
	Comparison *Comparison    `json:"comparison,omitempty"`
	Failures   []Failure      `json:"failures"` // failed requests by message, most frequent first
	Series     *RunSeries     `json:"series"`   // the run second by second

	Estimator string      `json:"-"`
	Scenarios []*Scenario `json:"-"` // per scenario: the scalability curve and its fits
	Timeline  *Timeline   `json:"-"`
	Sources   []string    `json:"-"` // run directories read
}

// RunMeta is the run's identity as run.json gives it.
type RunMeta struct {
	ID          string  `json:"id"`
	Started     string  `json:"started"`
	Ended       string  `json:"ended"`
	Interrupted bool    `json:"interrupted"`
	TimeScale   float64 `json:"time_scale"`
	// TargetsLeftOut names the targets of scenarios this run did not run
	// (replay --scenario): neither met nor missed, so not in Targets.
	TargetsLeftOut []string `json:"targets_left_out,omitempty"`
	// LeftOut are the captured exchanges replay left out of its pools
	// because they failed when recorded (run.json's left_out).
	LeftOut []runspec.LeftOut `json:"left_out,omitempty"`
	// IncludeFailed names the scenarios that replayed those exchanges too
	// (profile include_failed: true): their failures were expected.
	IncludeFailed []string `json:"include_failed,omitempty"`
	// Search are the run's capacity searches as run.json records them.
	Search []runspec.SearchResult `json:"search,omitempty"`
}

// Stage holds one stage of one scenario: its statistics per operation (and
// "all"), its resources, and whether its numbers can be trusted.
type Stage struct {
	Scenario    string                 `json:"scenario"`
	Stage       int                    `json:"stage"`
	Name        string                 `json:"name"`
	Users       int                    `json:"users"`
	Start       string                 `json:"start"`
	End         string                 `json:"end"`
	Trustworthy bool                   `json:"trustworthy"`
	Steady      bool                   `json:"steady"`
	WarmUpS     float64                `json:"warmup_s"`
	Operations  map[string]*OpStats    `json:"operations"`
	Resources   map[string]ResourceAgg `json:"resources"`
	Notes       []string               `json:"notes,omitempty"`

	Mode    string  `json:"-"` // closed, open, sessions
	Rate    float64 `json:"-"` // open mode: arrivals per second (Users holds it rounded)
	WindowS float64 `json:"-"` // measured window after warm-up, seconds
	// The stage's span and its raw counts (warm-up included), read by the
	// resources and targets; what only detectors read is in stageFacts.
	startNS int64
	endNS   int64
	raw     map[string]map[string]int64 // operation → error kind ("" every request) → rows
}

// AllOps is the operation key that aggregates every operation of a stage.
const AllOps = "all"

// OpStats are the statistics of one operation (or all) within a stage.
// Latencies are of successful requests; failures are counted in Errors.
type OpStats struct {
	Count     int64            `json:"count"` // requests measured: successes + errors (cut-off ones excluded)
	RPS       float64          `json:"rps"`   // completed requests per second
	RPM       float64          `json:"rpm"`
	OKRPS     float64          `json:"ok_rps"` // successful requests per second
	ErrorRate float64          `json:"error_rate"`
	Errors    map[string]int64 `json:"errors"`
	CutOff    int64            `json:"cut_off"`
	LatencyMS Latency          `json:"latency_ms"`
	TTFBMS    *Latency         `json:"ttfb_ms,omitempty"`
	TTFTMS    *Latency         `json:"ttft_ms,omitempty"`
	ITLMS     *Latency         `json:"itl_ms,omitempty"`
	TPOTMS    *Latency         `json:"tpot_ms,omitempty"`
	SendLagMS *Latency         `json:"send_lag_ms,omitempty"`
	// FromIntendedMS is the successes' latency counted from when each was
	// meant to be sent (send lag + duration): corrected for coordinated
	// omission as wrk2 reports it, so a late generator shows here.
	FromIntendedMS *Latency      `json:"from_intended_ms,omitempty"`
	Tokens         *TokenStats   `json:"tokens,omitempty"`  // LLM token figures (tokens.go)
	Goodput        *GoodputStats `json:"goodput,omitempty"` // when the scenario sets goodput bounds

	Durations []int64           `json:"-"` // sorted durations of successes, ns: CDF figures and compare
	BytesIn   int64             `json:"-"` // response bytes of the counted requests: stats.csv's content size
	Lagged    int64             `json:"-"` // requests sent more than maxSendLagMS late
	ErrorText map[string]string `json:"-"` // one example message per error kind
}

// Latency is a distribution in milliseconds.
type Latency struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// ResourceAgg is the mean and max of one resource over a stage's window.
type ResourceAgg struct {
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
	Unit string  `json:"unit,omitempty"`
}

// TargetResult is one target evaluated against the run.
type TargetResult struct {
	Scenario   string   `json:"scenario"`
	Metric     string   `json:"metric"`
	Operation  string   `json:"operation"`
	Stage      *int     `json:"stage"`
	ErrorKind  string   `json:"error_kind,omitempty"`
	Bound      float64  `json:"bound"`
	Acceptable float64  `json:"acceptable"`
	Unit       string   `json:"unit"`
	TimeScale  float64  `json:"time_scale,omitempty"` // set when Bound and Acceptable are the written bound scaled by the run's time scale
	Value      *float64 `json:"value"`
	Verdict    Verdict  `json:"verdict"`
	Note       string   `json:"note,omitempty"`
	Max        bool     `json:"-"` // an upper bound (else a lower bound)
	Users      int      `json:"-"` // users of the stage evaluated
	label      string
}

// Verdict is a target's outcome against its bound and acceptance band.
type Verdict string

// Verdicts of a target.
const (
	Pass       Verdict = "pass"
	Acceptable Verdict = "acceptable"
	Fail       Verdict = "fail"
)

// Finding is one named bottleneck with the numbers it rests on.
type Finding struct {
	Kind      Kind     `json:"kind"`
	Scenario  string   `json:"scenario"`
	Operation string   `json:"operation"`
	Severity  Severity `json:"severity"`
	Summary   string   `json:"summary"`
	Action    string   `json:"action"`
	// Evidence is one of the *Evidence types of the detector family that
	// raised the finding; summary.json writes it as an object of its
	// numbers (EvidenceMap).
	Evidence Evidence `json:"evidence"`
}

// Kind names what a finding found; summary.json and other tools key on it.
type Kind string

// The finding kinds.
const (
	KindSerialization     Kind = "serialization"
	KindThroughputPlateau Kind = "throughput_plateau"
	KindRetrograde        Kind = "retrograde"
	KindGPUSaturation     Kind = "gpu_saturation"
	KindGPUMemoryPressure Kind = "gpu_memory_pressure"
	KindPoolExhaustion    Kind = "pool_exhaustion"
	KindTimeouts          Kind = "timeouts"
	KindTailAmplification Kind = "tail_amplification"
	KindLoadGenSaturated  Kind = "load_generator_saturated"
	KindSandboxViolation  Kind = "sandbox_violation"
)

// Severity is how much a finding matters to the run's outcome.
type Severity string

// Severities of a finding.
const (
	SeverityHigh   Severity = "high"
	SeverityMedium Severity = "medium"
	SeverityLow    Severity = "low"
)

// Scenario is the scalability view of one scenario: one point per stage and
// the fits drawn over them.
type Scenario struct {
	Name    string
	Mode    string
	Points  []Point
	USL     *USLFit
	KneeN   float64 // users at the throughput knee; 0 when none
	ThinkS  float64 // mean think time after time scaling, seconds; -1 when unknown
	P95Goal float64 // the scenario's p95 bound in ms, 0 when none
}

// Point is one stage on the scalability curve.
type Point struct {
	Stage       int
	Users       float64
	X           float64 // successful requests per second
	RPS         float64 // completed requests per second
	RMS         float64 // mean success latency, ms
	P50, P95    float64
	P99         float64
	ErrorRate   float64
	Trustworthy bool
}

// Timeline is the run as per-bucket series, for the timeline figure.
type Timeline struct {
	BucketS float64
	StartNS int64
	Series  map[string]*Series // per scenario
	GPUUtil []XY               // run-wide, attributed to nothing
	CPUUtil []XY
}

// Series are one scenario's per-bucket values.
type Series struct {
	RPS    []XY
	P95MS  []XY
	Errors []XY
}

// XY is one point of a series: seconds from the run's start and a value.
type XY struct{ X, Y float64 }

// MarshalJSON writes NaN and infinities as null so that summary.json stays
// valid JSON whatever the data.
func (l Latency) MarshalJSON() ([]byte, error) {
	type plain struct {
		Min *float64 `json:"min"`
		Avg *float64 `json:"avg"`
		P50 *float64 `json:"p50"`
		P90 *float64 `json:"p90"`
		P95 *float64 `json:"p95"`
		P99 *float64 `json:"p99"`
		Max *float64 `json:"max"`
	}
	return json.Marshal(plain{fin(l.Min), fin(l.Avg), fin(l.P50), fin(l.P90), fin(l.P95), fin(l.P99), fin(l.Max)})
}

func fin(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	v = math.Round(v*1000) / 1000
	return &v
}
