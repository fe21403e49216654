package analyze

import (
	"errors"
	"math"
	"os"
	"strings"

	"github.com/loadtape/loadtape/internal/yamlx"
	"github.com/loadtape/loadtape/runspec"
)

// TargetSpec is one target as a profile or a --targets file writes it.
type TargetSpec = runspec.Target

// DefaultAcceptance is the share of a bound that still passes as
// acceptable when a run's targets leave it unset.
const DefaultAcceptance = runspec.DefaultAcceptance

// checkTarget validates one spec; where names the file and position.
func checkTarget(t TargetSpec, where string) error {
	if err := t.Validate(); err != nil {
		return badInputf("%s: %v", where, err)
	}
	return nil
}

// targetsFile is a --targets YAML file.
type targetsFile struct {
	Targets    []TargetSpec `yaml:"targets"`
	Acceptance float64      `yaml:"acceptance"`
}

// ReadTargets reads a --targets file: `targets:` as in a profile and an
// optional `acceptance:`. Errors name the file, line and column.
func ReadTargets(path string) ([]TargetSpec, float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, badInputf("--targets: %v", err)
	}
	var tf targetsFile
	if err := yamlx.Decode(path, b, &tf); err != nil {
		return nil, 0, badInputf("%v", err)
	}
	doc := yamlx.Parse(path, b)
	if len(tf.Targets) == 0 {
		return nil, 0, badInputf("%v", doc.Errorf(nil, "no targets (want a `targets:` list)"))
	}
	for i, t := range tf.Targets {
		if err := t.Validate(); err != nil {
			return nil, 0, badInputf("%v", doc.Errorf(targetPath(i, t, err), "%v", err))
		}
	}
	if err := runspec.ValidAcceptance(tf.Acceptance); err != nil {
		return nil, 0, badInputf("%v", doc.Errorf([]any{"acceptance"}, "%v", err))
	}
	return tf.Targets, tf.Acceptance, nil
}

// targetPath is where in a targets file the error err of target i is.
func targetPath(i int, t TargetSpec, err error) []any {
	switch {
	case errors.Is(err, runspec.ErrUnknownMetric):
		return []any{"targets", i, "metric"}
	case errors.Is(err, runspec.ErrBound) && t.Min != "":
		return []any{"targets", i, "min"}
	case errors.Is(err, runspec.ErrBound):
		return []any{"targets", i, "max"}
	}
	return []any{"targets", i}
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
// scenario the profile does not know is a typo, and fails. Bounds are
// scaled by the run's time scale (runspec.Bound.Scaled), so that a run
// compressed in time is judged as its full-length run would be.
func evaluateTargets(specs []TargetSpec, acceptance float64, stages []*Stage, info *RunInfo) (out []TargetResult, leftOut []string) {
	if acceptance <= 0 {
		acceptance = DefaultAcceptance
	}
	ran := map[string]bool{}
	for _, st := range stages {
		ran[st.Scenario] = true
	}
	out = make([]TargetResult, 0, len(specs))
	for _, t := range specs {
		if _, known := info.Profile.Scenarios[t.Scenario]; known && !ran[t.Scenario] {
			leftOut = append(leftOut, t.Label())
			continue
		}
		out = append(out, evaluate(t, acceptance, info.Scale(), stages))
	}
	return out, leftOut
}

func evaluate(t TargetSpec, acceptance, scale float64, stages []*Stage) TargetResult {
	b, _ := t.Bound() // checked when read
	bound := b.Value
	if scaled := b.Scaled(scale).Value; scaled != bound {
		bound = round(scaled, 6)
	}
	op := t.Operation
	if op == "" {
		op = AllOps
	}
	r := TargetResult{Scenario: t.Scenario, Metric: t.Metric, Operation: op, ErrorKind: t.ErrorKind,
		Bound: bound, Unit: b.Unit, Max: b.Max, label: t.Label()}
	if bound != b.Value {
		r.TimeScale = scale
	}
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
	case "goodput", "good_share": // goodput.go
		if o.Goodput == nil {
			return 0, false
		}
		if metric == "goodput" {
			return o.Goodput.PerS, true
		}
		return 100 * o.Goodput.Share, true
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
	return spec.Label()
}
