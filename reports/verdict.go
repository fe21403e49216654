package reports

import (
	"fmt"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// Miss is a target that missed its acceptance bound, with the finding that
// explains it when one does.
type Miss struct {
	Target  analyze.TargetResult
	Finding *analyze.Finding // nil when no finding explains it
}

// Misses lists the failed targets in the profile's order, each with the
// first (most important) finding that explains it.
func Misses(s *analyze.Summary) []Miss {
	var out []Miss
	for _, t := range s.Targets {
		if t.Verdict != analyze.Fail {
			continue
		}
		m := Miss{Target: t}
		for i := range s.Findings {
			if explains(s.Findings[i], t) {
				m.Finding = &s.Findings[i]
				break
			}
		}
		out = append(out, m)
	}
	return out
}

// errorKinds are the finding kinds that explain failed requests; the
// others explain latency and throughput.
var errorKinds = map[analyze.Kind]bool{
	analyze.KindGPUMemoryPressure: true, analyze.KindPoolExhaustion: true,
	analyze.KindTimeouts: true, analyze.KindSandboxViolation: true,
}

// latencyKinds are the finding kinds that explain slow or too few
// requests: an LLM server's requests waiting for a batch slot (queueing)
// or decoding slower as the batch grows (decode_slowdown) are slow ones.
var latencyKinds = map[analyze.Kind]bool{
	analyze.KindSerialization: true, analyze.KindThroughputPlateau: true, analyze.KindRetrograde: true,
	analyze.KindGPUSaturation: true, analyze.KindTailAmplification: true, analyze.KindLoadGenSaturated: true,
	analyze.KindDegradation: true, analyze.KindPoolExhaustion: true,
	analyze.KindQueueing: true, analyze.KindDecodeSlowdown: true,
}

// explains reports whether finding f accounts for target t's miss: the
// same scenario, the same operation when both name one, and a kind that
// moves the target's metric (errors for error targets, latency and
// throughput for the others). A GPU finding that lists the target among
// the misses of its minutes explains it too, in whichever scenario.
func explains(f analyze.Finding, t analyze.TargetResult) bool {
	if f.Scenario != t.Scenario {
		for _, m := range concurrentMisses(f) {
			if strings.HasPrefix(m, t.Name()+" (") {
				return true
			}
		}
		return false
	}
	if t.Operation != "" && t.Operation != analyze.AllOps && f.Operation != "" && f.Operation != analyze.AllOps && f.Operation != t.Operation {
		return false
	}
	switch t.Metric {
	case "error_rate", "count":
		if t.ErrorKind == "sandbox_violation" {
			return f.Kind == analyze.KindSandboxViolation
		}
		return errorKinds[f.Kind]
	}
	return latencyKinds[f.Kind]
}

func concurrentMisses(f analyze.Finding) []string {
	switch ev := f.Evidence.(type) {
	case *analyze.CapacityEvidence:
		return ev.ConcurrentTargetMisses
	case *analyze.GPUMemoryEvidence:
		return ev.ConcurrentTargetMisses
	}
	return nil
}

// missText is one failed target in a line: its value against its bound at
// the stage found worst.
func missText(s *analyze.Summary, t analyze.TargetResult) string {
	line := fmt.Sprintf("%s %s against a bound of %s", t.Name(), valueText(t.Value, t.Unit), boundText(t))
	if st := targetStage(s, t); st != "" {
		line += " at stage " + st
	}
	if t.Note != "" {
		line += " (" + t.Note + ")"
	}
	return line
}

// explainText names the finding that explains a miss, or says none does.
func explainText(m Miss) string {
	if m.Finding == nil {
		return "no finding explains it"
	}
	return fmt.Sprintf("%s (%s): %s", m.Finding.Kind, m.Finding.Severity, m.Finding.Summary)
}

// Counts are how many targets passed, were only acceptable, and failed,
// and how many findings there are of each severity.
type Counts struct {
	Targets, Pass, Acceptable, Fail int
	Findings, High, Medium, Low     int
}

// CountOf counts a summary's targets by verdict and findings by severity.
func CountOf(s *analyze.Summary) Counts {
	c := Counts{Targets: len(s.Targets), Findings: len(s.Findings)}
	for _, t := range s.Targets {
		switch t.Verdict {
		case analyze.Pass:
			c.Pass++
		case analyze.Acceptable:
			c.Acceptable++
		default:
			c.Fail++
		}
	}
	for _, f := range s.Findings {
		switch f.Severity {
		case analyze.SeverityHigh:
			c.High++
		case analyze.SeverityMedium:
			c.Medium++
		default:
			c.Low++
		}
	}
	return c
}

// targetsText is the targets' count by verdict: "1 of 9 targets failed,
// 8 passed".
func (c Counts) targetsText() string {
	if c.Targets == 0 {
		return "no targets set"
	}
	var parts []string
	lead := ""
	switch {
	case c.Fail > 0:
		lead = fmt.Sprintf("%d of %d %s failed", c.Fail, c.Targets, plural(c.Targets, "target", "targets"))
	case c.Acceptable > 0:
		lead = fmt.Sprintf("%d of %d %s only acceptable", c.Acceptable, c.Targets, plural(c.Targets, "target", "targets"))
	default:
		return fmt.Sprintf("%s passed", countNoun(c.Targets, "target", "all %d targets"))
	}
	parts = append(parts, lead)
	if c.Fail > 0 && c.Acceptable > 0 {
		parts = append(parts, fmt.Sprintf("%d acceptable", c.Acceptable))
	}
	if c.Pass > 0 {
		parts = append(parts, fmt.Sprintf("%d passed", c.Pass))
	}
	return strings.Join(parts, ", ")
}

// findingsText is the findings' count by severity: "4 findings (2 high,
// 1 medium, 1 low)".
func (c Counts) findingsText() string {
	if c.Findings == 0 {
		return "no findings"
	}
	var sev []string
	for _, x := range []struct {
		n    int
		name string
	}{{c.High, "high"}, {c.Medium, "medium"}, {c.Low, "low"}} {
		if x.n > 0 {
			sev = append(sev, fmt.Sprintf("%d %s", x.n, x.name))
		}
	}
	return fmt.Sprintf("%d %s (%s)", c.Findings, plural(c.Findings, "finding", "findings"), strings.Join(sev, ", "))
}

// String is the counts in one line, targets first.
func (c Counts) String() string { return c.targetsText() + "; " + c.findingsText() }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// countNoun is "the 1 target" for one, else the format with n.
func countNoun(n int, one, manyFormat string) string {
	if n == 1 {
		return "the 1 " + one
	}
	return fmt.Sprintf(manyFormat, n)
}

// targetStage names the stage a target was judged at: its number and its
// load, as users or, in open mode, arrivals per second.
func targetStage(s *analyze.Summary, t analyze.TargetResult) string {
	if t.Stage == nil {
		if t.Metric == "count" {
			return "all"
		}
		return ""
	}
	for _, st := range s.Stages {
		if st.Scenario == t.Scenario && st.Stage == *t.Stage {
			return fmt.Sprintf("%d (%s)", st.Stage, loadText(st))
		}
	}
	if t.Users > 0 {
		return fmt.Sprintf("%d (%d users)", *t.Stage, t.Users)
	}
	return fmt.Sprint(*t.Stage)
}

// loadText is a stage's load: "100 users", or "20 arrivals/s" in open
// mode, where Users holds the arrival rate.
func loadText(st *analyze.Stage) string {
	if st.Mode == "open" {
		r := st.Rate
		if r == 0 {
			r = float64(st.Users)
		}
		return tickText(r) + " arrivals/s"
	}
	return fmt.Sprintf("%d %s", st.Users, plural(st.Users, "user", "users"))
}

// boundText is a target's bound, "≤ 200 ms", saying when it is the written
// bound scaled by the run's time scale: "≤ 200 ms (2000 ms × time scale
// 0.1)" (rates are divided by it instead).
func boundText(t analyze.TargetResult) string {
	b := boundOp(t) + " " + num(t.Bound, t.Unit)
	if t.TimeScale == 0 || t.TimeScale == 1 {
		return b
	}
	if t.Unit == "ms" || t.Unit == "s" {
		return fmt.Sprintf("%s (%s × time scale %g)", b, num(t.Bound/t.TimeScale, t.Unit), t.TimeScale)
	}
	return fmt.Sprintf("%s (%s ÷ time scale %g)", b, num(t.Bound*t.TimeScale, t.Unit), t.TimeScale)
}
