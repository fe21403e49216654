package runspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// AllOps is the operation a target names to judge every operation of its
// scenario together; an empty operation means the same.
const AllOps = "all"

// DefaultAcceptance is the share of a bound within which a missed target
// is still "acceptable" rather than failed: a max of 2 s accepts up to
// 2.5 s, a min of 10 req/s down to 8.
const DefaultAcceptance = 0.8

// Target is one performance target, as a profile's `targets:` or a
// --targets file writes it.
type Target struct {
	Scenario  string `json:"scenario" yaml:"scenario"`
	Metric    string `json:"metric" yaml:"metric"`
	Operation string `json:"operation,omitempty" yaml:"operation"`
	Users     int    `json:"users,omitempty" yaml:"users"` // judge only stages of this many users
	Stage     int    `json:"stage,omitempty" yaml:"stage"` // judge only this 1-based stage
	ErrorKind string `json:"error_kind,omitempty" yaml:"error_kind"`
	Max       Limit  `json:"max,omitempty" yaml:"max"`
	Min       Limit  `json:"min,omitempty" yaml:"min"`
	// Abort ends the run once the target has failed over a whole stage
	// window (k6's abortOnFail); replay judges it while the run goes on,
	// so its metric must be one LiveMetric accepts.
	Abort bool `json:"abort,omitempty" yaml:"abort"`
}

// Limit is a bound as written: "2s", "500ms", "1%", "10"; empty when not
// given. Numbers are kept as their text.
type Limit string

// Units of a bound.
const (
	UnitMS       = "ms"
	UnitPercent  = "%"
	UnitPerSec   = "req/s"
	UnitPerMin   = "req/min"
	UnitRequests = "requests"
)

// metricRe is the grammar of target metrics: a latency statistic of the
// whole request or of one of its phases, an error rate, a throughput or a
// count of requests.
var metricRe = regexp.MustCompile(`^(((ttft|ttfb|itl|tpot|send_lag)_)?(p50|p90|p95|p99|avg|min|max)|error_rate|rps|rpm|count|goodput|good_share)$`)

// MetricHelp lists the metrics for error messages.
const MetricHelp = "p50, p90, p95, p99, avg, min, max, ttft_p95 and the like (ttft, ttfb, itl, tpot, send_lag), error_rate, rps, rpm, count, goodput (good requests/s) or good_share (% of requests good)"

// Sentinel errors of target validation.
var (
	ErrUnknownMetric = errors.New("unknown target metric")
	ErrBound         = errors.New("bad target bound")
	ErrAbortMetric   = errors.New("abort needs a metric replay judges while it runs")
)

// KnownMetric reports whether a target may name metric.
func KnownMetric(metric string) bool { return metricRe.MatchString(metric) }

// LiveMetric reports whether replay can judge metric from its own tallies
// while the run goes on, for a target with abort: the latency statistics
// of the request, its TTFB, TTFT, TPOT and send lag, the error rate, rps,
// rpm, and count with a max (a count only grows, so a min is known only
// at the end). ITL and goodput are analyze's alone.
func LiveMetric(metric string, max bool) bool {
	switch {
	case !KnownMetric(metric), metric == "goodput", metric == "good_share", strings.HasPrefix(metric, "itl_"):
		return false
	case metric == "count":
		return max
	}
	return true
}

// LiveMetricHelp lists the metrics LiveMetric accepts, for error messages.
const LiveMetricHelp = "p50…max, ttfb_, ttft_, tpot_ and send_lag_ statistics, error_rate, rps, rpm, or count with a max"

// UnitOf is the unit a metric's bound is in.
func UnitOf(metric string) string {
	switch metric {
	case "error_rate", "good_share":
		return UnitPercent
	case "rps", "goodput":
		return UnitPerSec
	case "rpm":
		return UnitPerMin
	case "count":
		return UnitRequests
	}
	return UnitMS
}

// Bound is a target's limit read in its metric's unit.
type Bound struct {
	Value float64
	Unit  string // UnitMS, UnitPercent, UnitPerSec, UnitPerMin, UnitRequests
	Max   bool   // the value must stay at or below Value (else at or above)
}

// Scaled is the bound for a run whose durations were multiplied by scale:
// a latency bound is multiplied by it and a rate bound divided, so that a
// run compressed in time against a service whose times scale with it gets
// the verdicts of the full-length run. Rates of errors and counts do not
// change with time.
func (b Bound) Scaled(scale float64) Bound {
	if scale <= 0 || scale == 1 {
		return b
	}
	switch b.Unit {
	case UnitMS:
		b.Value *= scale
	case UnitPerSec, UnitPerMin:
		b.Value /= scale
	}
	return b
}

// Validate checks a target on its own: scenario given, metric known, one
// bound, in the metric's unit, not negative (a percentage at most 100),
// error_kind only where errors are counted. The error says what was
// expected; the caller adds where the target was written.
func (t Target) Validate() error {
	if t.Scenario == "" {
		return errors.New("target without a scenario")
	}
	if !KnownMetric(t.Metric) {
		return fmt.Errorf("%w %q (want %s)", ErrUnknownMetric, t.Metric, MetricHelp)
	}
	if t.Users < 0 || t.Stage < 0 {
		return fmt.Errorf("target %s: users and stage must be > 0 when given", t.Label())
	}
	if t.ErrorKind != "" && t.Metric != "error_rate" && t.Metric != "count" {
		return fmt.Errorf("target %s: error_kind applies to error_rate and count, not %s", t.Label(), t.Metric)
	}
	b, err := t.Bound()
	if err != nil {
		return fmt.Errorf("target %s: %w", t.Label(), err)
	}
	if t.Abort && !LiveMetric(t.Metric, b.Max) {
		return fmt.Errorf("target %s: %w (want %s), not %s with %s", t.Label(), ErrAbortMetric, LiveMetricHelp, t.Metric, map[bool]string{true: "max", false: "min"}[b.Max])
	}
	return nil
}

// Bound reads the target's one bound in its metric's unit.
func (t Target) Bound() (Bound, error) {
	b := Bound{Unit: UnitOf(t.Metric), Max: t.Max != ""}
	if (t.Max == "") == (t.Min == "") {
		return b, fmt.Errorf("%w: needs exactly one of max and min", ErrBound)
	}
	s := strings.TrimSpace(string(t.Max))
	if !b.Max {
		s = strings.TrimSpace(string(t.Min))
	}
	v, ok := parseBound(s, b.Unit)
	if !ok {
		return b, fmt.Errorf("%w %q: want %s", ErrBound, s, map[string]string{
			UnitMS: "a duration such as 2s or 500ms", UnitPercent: "a percentage such as 1%",
			UnitPerSec: "a number of requests per second", UnitPerMin: "a number of requests per minute",
			UnitRequests: "a number of requests"}[b.Unit])
	}
	if v < 0 || (b.Unit == UnitPercent && v > 100) {
		return b, fmt.Errorf("%w %q: want %s", ErrBound, s, map[bool]string{true: "a share from 0% to 100%", false: "a bound of 0 or more"}[b.Unit == UnitPercent])
	}
	b.Value = v
	return b, nil
}

func parseBound(s, unit string) (float64, bool) {
	switch unit {
	case UnitMS:
		if d, err := time.ParseDuration(s); err == nil {
			return float64(d) / 1e6, true
		}
	case UnitPercent:
		s = strings.TrimSpace(strings.TrimSuffix(s, "%"))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// Label names the target as written: "rag p95 rag.query at 50 users".
func (t Target) Label() string {
	s := t.Scenario + " " + t.Metric
	if t.ErrorKind != "" {
		s += "[" + t.ErrorKind + "]"
	}
	if t.Operation != "" && t.Operation != AllOps {
		s += " " + t.Operation
	}
	switch {
	case t.Stage > 0:
		s += " stage " + strconv.Itoa(t.Stage)
	case t.Users > 0:
		s += " at " + strconv.Itoa(t.Users) + " users"
	}
	return s
}

// ValidAcceptance checks a profile's or targets file's acceptance: 0
// (unset: DefaultAcceptance) or a share in (0, 1].
func ValidAcceptance(a float64) error {
	if a < 0 || a > 1 || math.IsNaN(a) {
		return fmt.Errorf("acceptance %v: want a share in (0, 1], such as 0.8", a)
	}
	return nil
}

// UnmarshalYAML takes a scalar: a string, or a number kept as its text.
// Anything else is an error at the value's position (*PosError).
func (l *Limit) UnmarshalYAML(n ast.Node) error {
	for {
		t, ok := n.(*ast.TagNode)
		if !ok {
			break
		}
		n = t.Value
	}
	if sc, ok := n.(ast.ScalarNode); ok && n.Type() != ast.BoolType {
		if err := l.set(sc.GetValue()); err == nil {
			return nil
		}
	}
	return &PosError{Token: n.GetToken(), Msg: fmt.Sprintf("bound %s: want a number or a string such as 2s or 1%%", strings.TrimSpace(n.String()))}
}

// PosError is a bad value at a place in a YAML file, for a decoder that
// reports positions (internal/yamlx).
type PosError struct {
	Token *token.Token
	Msg   string
}

func (e *PosError) Error() string { return e.Msg }

// GetToken is where the bad value is written.
func (e *PosError) GetToken() *token.Token { return e.Token }

// UnmarshalJSON takes a string or a number.
func (l *Limit) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return l.set(v)
}

func (l *Limit) set(v any) error {
	switch x := v.(type) {
	case nil:
		*l = ""
	case string:
		*l = Limit(x)
	case float64:
		*l = Limit(strconv.FormatFloat(x, 'g', -1, 64))
	case int:
		*l = Limit(strconv.Itoa(x))
	case int64:
		*l = Limit(strconv.FormatInt(x, 10))
	case uint64:
		*l = Limit(strconv.FormatUint(x, 10))
	default:
		return fmt.Errorf("bound %v: want a number or a string such as 2s or 1%%", v)
	}
	return nil
}

// MarshalJSON writes a number as a number and anything else as a string.
func (l Limit) MarshalJSON() ([]byte, error) {
	if f, err := strconv.ParseFloat(string(l), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && !strings.ContainsAny(string(l), "xXpP_") {
		return []byte(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return json.Marshal(string(l))
}
