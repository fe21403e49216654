package analyze

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// TargetSpec is one target as a profile or a --targets file writes it.
// Max and Min are strings ("2s", "1%", "10") or numbers.
type TargetSpec struct {
	Scenario  string `json:"scenario" yaml:"scenario"`
	Metric    string `json:"metric" yaml:"metric"`
	Operation string `json:"operation,omitempty" yaml:"operation"`
	Users     int    `json:"users,omitempty" yaml:"users"`
	Stage     int    `json:"stage,omitempty" yaml:"stage"`
	ErrorKind string `json:"error_kind,omitempty" yaml:"error_kind"`
	Max       any    `json:"max,omitempty" yaml:"max"`
	Min       any    `json:"min,omitempty" yaml:"min"`
}

// DefaultAcceptance is the plan's 80 % band.
const DefaultAcceptance = 0.8

// metricRe lists the metrics a target may name.
var metricRe = regexp.MustCompile(`^(((ttft|ttfb|itl|tpot|send_lag)_)?(p50|p90|p95|p99|avg|min|max)|error_rate|rps|rpm|count)$`)

// checkTarget validates one spec; where names the file and position.
func checkTarget(t TargetSpec, where string) error {
	if t.Scenario == "" {
		return badInputf("%s: target without a scenario", where)
	}
	if !metricRe.MatchString(t.Metric) {
		return badInputf("%s: unknown target metric %q (want p50, p90, p95, p99, avg, min, max, ttft_p95 and the like, error_rate, rps, rpm or count)", where, t.Metric)
	}
	if (t.Max == nil) == (t.Min == nil) {
		return badInputf("%s: target %s %s needs exactly one of max and min", where, t.Scenario, t.Metric)
	}
	if _, _, err := boundOf(t); err != nil {
		return badInputf("%s: target %s %s: %v", where, t.Scenario, t.Metric, err)
	}
	return nil
}

// boundOf returns the bound in the metric's unit (ms, %, req/s, count).
func boundOf(t TargetSpec) (float64, string, error) {
	raw := t.Max
	if raw == nil {
		raw = t.Min
	}
	unit := unitOf(t.Metric)
	var s string
	switch v := raw.(type) {
	case string:
		s = strings.TrimSpace(v)
	case float64:
		return v, unit, nil
	case int:
		return float64(v), unit, nil
	case int64:
		return float64(v), unit, nil
	case uint64:
		return float64(v), unit, nil
	default:
		return 0, unit, fmt.Errorf("bound %v: want a number or a string", raw)
	}
	switch unit {
	case "ms":
		if d, err := time.ParseDuration(s); err == nil {
			return float64(d) / 1e6, unit, nil
		}
	case "%":
		if f, ok := parseFloat(strings.TrimSuffix(s, "%")); ok {
			return f, unit, nil
		}
	}
	if f, ok := parseFloat(s); ok {
		return f, unit, nil
	}
	return 0, unit, fmt.Errorf("bound %q: want a %s", s, map[string]string{"ms": "duration such as 2s or 500ms", "%": "percentage such as 1%", "req/s": "number", "requests": "number"}[unit])
}

func unitOf(metric string) string {
	switch metric {
	case "error_rate":
		return "%"
	case "rps":
		return "req/s"
	case "rpm":
		return "req/min"
	case "count":
		return "requests"
	}
	return "ms"
}

// targetsFile is a --targets YAML file.
type targetsFile struct {
	Targets    []TargetSpec `yaml:"targets"`
	Acceptance float64      `yaml:"acceptance"`
}

// ReadTargets reads a --targets file: `targets:` as in a profile and an
// optional `acceptance:`. Errors name the file and line.
func ReadTargets(path string) ([]TargetSpec, float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, badInputf("--targets: %v", err)
	}
	var tf targetsFile
	if err := unmarshalYAML(b, &tf); err != nil {
		return nil, 0, badInputf("%s: %s", path, strings.ReplaceAll(yaml.FormatError(err, false, false), "\n", " "))
	}
	if len(tf.Targets) == 0 {
		return nil, 0, badInputf("%s: no targets (want a `targets:` list)", path)
	}
	file, _ := parseYAML(b)
	for i, t := range tf.Targets {
		where := fmt.Sprintf("%s: targets[%d]", path, i)
		if line := yamlLine(file, fmt.Sprintf("$.targets[%d].metric", i)); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		if err := checkTarget(t, where); err != nil {
			return nil, 0, err
		}
	}
	if tf.Acceptance < 0 || tf.Acceptance > 1 {
		return nil, 0, badInputf("%s: acceptance %v: want a share in (0, 1], such as 0.8", path, tf.Acceptance)
	}
	return tf.Targets, tf.Acceptance, nil
}

// unmarshalYAML is yaml.Unmarshal that turns a panic inside go-yaml (a
// tag with nothing after it makes v1.19.2 dereference nil; found by
// FuzzReadTargets) into an error.
func unmarshalYAML(b []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not valid YAML (%v)", p)
		}
	}()
	// Unknown keys are errors: `op: rag.index` ignored would judge every
	// operation.
	return yaml.UnmarshalWithOptions(b, v, yaml.DisallowUnknownField())
}

func parseYAML(b []byte) (f *ast.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("not valid YAML (%v)", p)
		}
	}()
	return parser.ParseBytes(b, 0)
}

func yamlLine(file *ast.File, path string) (line int) {
	defer func() {
		if recover() != nil {
			line = 0 // a position is a courtesy; never fail over it
		}
	}()
	if file == nil {
		return 0
	}
	p, err := yaml.PathString(path)
	if err != nil {
		return 0
	}
	n, err := p.FilterFile(file)
	if err != nil || n == nil || n.GetToken() == nil || n.GetToken().Position == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// countFor counts a stage's requests of op (or all) with errorKind (or any
// outcome), warm-up included.
func (st *Stage) countFor(op, errorKind string) int64 {
	var n int64
	for name, kinds := range st.raw {
		if op != AllOps && name != op {
			continue
		}
		if errorKind == "" {
			n += kinds[""]
			continue
		}
		n += kinds[errorKind]
	}
	return n
}

// evaluateTargets evaluates every target against the stages. A target of
// a profile scenario with no stage in the run (replay --scenario ran
// others) is left out and named in leftOut: failing it would make every
// run of one scenario at a time fail on the profile's other scenarios. A
// scenario the profile does not know is a typo, and fails.
func evaluateTargets(specs []TargetSpec, acceptance float64, stages []*Stage, profile map[string]ScenarioInfo) (out []TargetResult, leftOut []string) {
	if acceptance <= 0 {
		acceptance = DefaultAcceptance
	}
	ran := map[string]bool{}
	for _, st := range stages {
		ran[st.Scenario] = true
	}
	out = make([]TargetResult, 0, len(specs))
	for _, t := range specs {
		if _, known := profile[t.Scenario]; known && !ran[t.Scenario] {
			leftOut = append(leftOut, t.label())
			continue
		}
		out = append(out, evaluate(t, acceptance, stages))
	}
	return out, leftOut
}

// label names the target as written: "rag p95 rag.query at 50 users".
func (t TargetSpec) label() string {
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

func evaluate(t TargetSpec, acceptance float64, stages []*Stage) TargetResult {
	bound, unit, _ := boundOf(t)
	op := t.Operation
	if op == "" {
		op = AllOps
	}
	r := TargetResult{Scenario: t.Scenario, Metric: t.Metric, Operation: op, ErrorKind: t.ErrorKind,
		Bound: bound, Unit: unit, Max: t.Max != nil, label: t.label()}
	if r.Max {
		r.Acceptable = bound / acceptance
	} else {
		r.Acceptable = bound * acceptance
	}
	r.Acceptable = round(r.Acceptable, 6)
	var sel []*Stage
	for _, st := range stages {
		if st.Scenario != t.Scenario || (t.Users > 0 && st.Users != t.Users) || (t.Stage > 0 && st.Stage != t.Stage) {
			continue
		}
		sel = append(sel, st)
	}
	if t.Stage > 0 {
		s := t.Stage
		r.Stage = &s
	}
	if len(sel) == 0 {
		r.Verdict = Fail
		r.Note = "no stage of the run matches this target"
		return r
	}
	var value float64
	found := false
	if t.Metric == "count" {
		// Counts add up over the stages, warm-up included: one sandbox
		// violation in the first second is still one.
		for _, st := range sel {
			value += float64(st.countFor(op, t.ErrorKind))
		}
		found = true
	} else {
		worst := math.NaN()
		for _, st := range sel {
			v, ok := st.metric(t.Metric, op, t.ErrorKind)
			if !ok {
				continue
			}
			better := (r.Max && v > worst) || (!r.Max && v < worst)
			if math.IsNaN(worst) || better {
				worst = v
				s := st.Stage
				r.Stage, r.Users = &s, st.Users
			}
			found = true
		}
		value = worst
	}
	if !found || math.IsNaN(value) {
		r.Verdict = Fail
		r.Note = "no measurement for this target in the run"
		return r
	}
	value = round(value, 4)
	r.Value = &value
	switch {
	case (r.Max && value <= bound) || (!r.Max && value >= bound):
		r.Verdict = Pass
	case (r.Max && value <= r.Acceptable) || (!r.Max && value >= r.Acceptable):
		r.Verdict = Acceptable
	default:
		r.Verdict = Fail
	}
	return r
}

// metric reads one target metric from a stage.
func (st *Stage) metric(metric, op, errorKind string) (float64, bool) {
	o := st.Operations[op]
	if o == nil {
		return 0, false
	}
	switch metric {
	case "error_rate":
		if o.Count == 0 {
			return 0, false
		}
		if errorKind != "" {
			return 100 * float64(o.Errors[errorKind]) / float64(o.Count), true
		}
		return 100 * o.ErrorRate, true
	case "rps":
		return o.RPS, true
	case "rpm":
		return o.RPM, true
	}
	l := &o.LatencyMS
	prefix, stat, ok := strings.Cut(metric, "_")
	if ok {
		switch prefix {
		case "ttft":
			l = o.TTFTMS
		case "ttfb":
			l = o.TTFBMS
		case "itl":
			l = o.ITLMS
		case "tpot":
			l = o.TPOTMS
		case "send":
			l = o.SendLagMS
			stat = strings.TrimPrefix(stat, "lag_")
		}
	} else {
		stat = prefix
	}
	if l == nil {
		return 0, false
	}
	v := map[string]float64{"min": l.Min, "avg": l.Avg, "p50": l.P50, "p90": l.P90, "p95": l.P95, "p99": l.P99, "max": l.Max}[stat]
	return v, !math.IsNaN(v)
}

// Name is how reports and JUnit name a target: from the target as written,
// not from the stage found worst, so that two runs' targets match.
func (t TargetResult) Name() string {
	if t.label != "" {
		return t.label
	}
	// Read back from summary.json: the target as written is gone, so the
	// stage found worst stands in for it.
	spec := TargetSpec{Scenario: t.Scenario, Metric: t.Metric, Operation: t.Operation, ErrorKind: t.ErrorKind}
	if t.Stage != nil {
		spec.Stage = *t.Stage
	}
	return spec.label()
}
