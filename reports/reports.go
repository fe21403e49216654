// Package reports renders what analyze produced: report.html (one
// self-contained file), report.md, summary.json, junit.xml, the figures as
// SVG and PNG, and CSV files in Locust's layout. It computes little of its
// own: stats.csv's whole-run percentiles from the stages' durations.
package reports

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// Write renders every report of s into dir (created if missing):
// report.html, report.md, summary.json, junit.xml, Locust's stats.csv,
// stats_history.csv and failures.csv, and figures/*.svg|png.
func Write(dir string, s *analyze.Summary) error {
	if err := os.MkdirAll(filepath.Join(dir, "figures"), 0o755); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	figs, err := figures(s)
	if err != nil {
		return err
	}
	for _, f := range figs {
		for ext, b := range map[string][]byte{".svg": f.SVG, ".png": f.PNG} {
			if err := os.WriteFile(filepath.Join(dir, "figures", f.Name+ext), b, 0o644); err != nil {
				return fmt.Errorf("reports: %w", err)
			}
		}
	}
	js, err := SummaryJSON(s)
	if err != nil {
		return err
	}
	junit, err := JUnit(s)
	if err != nil {
		return err
	}
	html, err := HTML(s, figs)
	if err != nil {
		return err
	}
	stats, err := StatsCSV(s)
	if err != nil {
		return err
	}
	history, err := StatsHistoryCSV(s)
	if err != nil {
		return err
	}
	failures, err := FailuresCSV(s)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"summary.json": js, "junit.xml": junit, "report.md": []byte(Markdown(s, figs)), "report.html": html,
		"stats.csv": stats, "stats_history.csv": history, "failures.csv": failures} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("reports: %w", err)
		}
	}
	return nil
}

// SummaryJSON is summary.json, indented (docs/analyze.md lists its keys).
func SummaryJSON(s *analyze.Summary) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("reports: summary.json: %w", err)
	}
	return append(b, '\n'), nil
}

// Verdict is the run's one-word outcome: FAIL when a target missed its
// acceptance bound, ACCEPTABLE when one is only inside the band, else PASS.
func Verdict(s *analyze.Summary) string {
	v := "PASS"
	for _, t := range s.Targets {
		switch t.Verdict {
		case analyze.Fail:
			return "FAIL"
		case analyze.Acceptable:
			v = "ACCEPTABLE"
		}
	}
	return v
}

// Failed reports whether any target missed its acceptance bound (exit 3).
func Failed(s *analyze.Summary) bool { return Verdict(s) == "FAIL" }

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit is junit.xml: one test case per target; a failed target is a
// failure, an acceptable one passes with a note.
func JUnit(s *analyze.Summary) ([]byte, error) {
	suite := junitSuite{Name: "loadtape targets " + s.Run.ID}
	for _, t := range s.Targets {
		c := junitCase{Name: t.Name(), Classname: "loadtape." + t.Scenario}
		line := fmt.Sprintf("%s: value %s, bound %s, acceptable %s %s: %s", t.Name(), valueText(t.Value, t.Unit), boundText(t), boundOp(t), num(t.Acceptable, t.Unit), t.Verdict)
		if t.Note != "" {
			line += " (" + t.Note + ")"
		}
		if t.Verdict == analyze.Fail {
			c.Failure = &junitFailure{Message: line, Type: "target", Text: line}
			suite.Failures++
		} else {
			c.SystemOut = line
		}
		suite.Cases = append(suite.Cases, c)
		suite.Tests++
	}
	b, err := xml.MarshalIndent(junitSuites{Suites: []junitSuite{suite}}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("reports: junit.xml: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func boundOp(t analyze.TargetResult) string {
	if t.Max {
		return "≤"
	}
	return "≥"
}

func valueText(v *float64, unit string) string {
	if v == nil {
		return "—"
	}
	return num(*v, unit)
}

// num formats a number with its unit, with as many digits as it deserves.
func num(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	var s string
	switch a := math.Abs(v); {
	case a == 0 || a >= 100 || (a == math.Trunc(a) && a < 1e15):
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	case a >= 0.1:
		s = strconv.FormatFloat(v, 'g', 3, 64)
	default:
		s = fmt.Sprintf("%.3g", v)
	}
	switch unit {
	case "", "requests":
		return s
	case "%":
		return s + " %"
	}
	return s + " " + unit
}

// evidenceRows flattens a finding's evidence into sorted key/value text,
// with the keys and rounding of summary.json.
func evidenceRows(f analyze.Finding) [][2]string {
	ev := f.EvidenceMap()
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, [2]string{k, evidenceText(ev[k])})
	}
	return out
}

func evidenceText(v any) string {
	switch x := v.(type) {
	case float64:
		return num(x, "")
	case string:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.ReplaceAll(string(b), ",", ", ")
}

// figuresFor picks the figures that show a finding's evidence.
func figuresFor(f analyze.Finding, figs []Figure) []Figure {
	want := map[analyze.Kind][]string{
		analyze.KindSerialization:     {"throughput", "latency"},
		analyze.KindThroughputPlateau: {"throughput", "latency"},
		analyze.KindRetrograde:        {"throughput"},
		analyze.KindGPUSaturation:     {"throughput"},
		analyze.KindGPUMemoryPressure: {"errors"},
		analyze.KindPoolExhaustion:    {"errors", "cdf"},
		analyze.KindTimeouts:          {"errors"},
		analyze.KindTailAmplification: {"cdf", "latency"},
		analyze.KindLoadGenSaturated:  {"latency"},
		analyze.KindSandboxViolation:  {"errors"},
		analyze.KindDegradation:       {"timeline"},
		analyze.KindQueueing:          {"tokens_ttft", "tokens_tpot"},
		analyze.KindDecodeSlowdown:    {"tokens_tpot"},
	}[f.Kind]
	var out []Figure
	for _, k := range want {
		for _, fig := range figs {
			if fig.Kind == k && (fig.Scenario == f.Scenario || fig.Scenario == "") {
				out = append(out, fig)
			}
		}
	}
	return out
}

// resourceNames lists the resources shown in stage tables, in this order.
var resourceNames = []string{analyze.ResGPUUtil, analyze.ResGPUMemPct, analyze.ResGPUMemUsedMB, "gpu_power_w", "cpu_util", analyze.ResCPUSteal, analyze.ResMemPct, "disk_read_iops", "disk_write_iops", analyze.ResQueueRunning, analyze.ResQueueWaiting}
