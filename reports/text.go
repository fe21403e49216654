package reports

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// TextOptions say how Text prints.
type TextOptions struct {
	Dir   string // where the reports were written, named on the last line
	Color bool   // ANSI colours (a terminal that did not ask for NO_COLOR)
}

// ANSI colours of the text summary.
const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// Text is what analyze and compare print: the verdict with the counts, the
// failed targets each with the finding that explains it, the findings by
// severity and, after compare, what changed significantly, before the
// report's path.
func Text(w io.Writer, s *analyze.Summary, opts TextOptions) error {
	paint := func(color, text string) string {
		if !opts.Color || color == "" {
			return text
		}
		return color + text + ansiReset
	}
	var b strings.Builder
	v := Verdict(s)
	b.WriteString(paint(ansiBold+verdictColor(v), v) + ": " + CountOf(s).String() + "\n")
	if ms := Misses(s); len(ms) > 0 {
		b.WriteString("Failed targets:\n")
		for _, m := range ms {
			fmt.Fprintf(&b, "  %s %s\n", paint(ansiRed, "✗"), missText(s, m.Target))
			if m.Finding != nil {
				fmt.Fprintf(&b, "      explained by %s\n", explainText(m))
			} else {
				b.WriteString("      no finding explains it\n")
			}
		}
	}
	if len(s.Findings) > 0 {
		b.WriteString("Findings, by severity:\n")
		for _, f := range s.Findings {
			fmt.Fprintf(&b, "  %s %s %s: %s\n", paint(severityColor(f.Severity), fmt.Sprintf("%-6s", f.Severity)), f.Kind, scenarioOp(f.Scenario, f.Operation), f.Summary)
		}
	}
	if c := s.Comparison; c != nil {
		b.WriteString(changesText(c, paint))
	}
	if opts.Dir != "" {
		fmt.Fprintf(&b, "Report: %s\n", reportPath(opts.Dir))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func verdictColor(v string) string {
	switch v {
	case "FAIL":
		return ansiRed
	case "ACCEPTABLE":
		return ansiYellow
	}
	return ansiGreen
}

func severityColor(s analyze.Severity) string {
	switch s {
	case analyze.SeverityHigh:
		return ansiRed
	case analyze.SeverityMedium:
		return ansiYellow
	}
	return ""
}

// scenarioOp is "gateway" or "gateway chat.completions".
func scenarioOp(scenario, op string) string {
	if op == "" || op == analyze.AllOps {
		return scenario
	}
	return scenario + " " + op
}

// maxChanges is how many significant operation changes compare's summary
// lists; the rest are in the report's table.
const maxChanges = 5

// Changes is what changed significantly between two runs, the most
// important first: targets whose verdict changed, findings that appeared
// or went away, and the operations whose latency changed significantly,
// largest p95 change first.
type Changes struct {
	Flipped  []analyze.TargetChange
	Appeared []analyze.Finding
	Gone     []analyze.Finding
	Ops      []analyze.OpChange // significant only, by |p95 change|
}

// ChangesOf sorts a comparison's significant changes out of its tables.
func ChangesOf(c *analyze.Comparison) Changes {
	var ch Changes
	for _, t := range c.Targets {
		if t.BaseVerdict != "" && t.BaseVerdict != t.NewVerdict {
			ch.Flipped = append(ch.Flipped, t)
		}
	}
	ch.Appeared, ch.Gone = c.Appeared, c.Gone
	for _, o := range c.Operations {
		if significant(o) {
			ch.Ops = append(ch.Ops, o)
		}
	}
	slices.SortStableFunc(ch.Ops, func(a, b analyze.OpChange) int {
		return cmp.Compare(math.Abs(b.P95.ChangePct), math.Abs(a.P95.ChangePct))
	})
	return ch
}

// Empty reports whether nothing changed significantly.
func (ch Changes) Empty() bool {
	return len(ch.Flipped)+len(ch.Appeared)+len(ch.Gone)+len(ch.Ops) == 0
}

func significant(o analyze.OpChange) bool {
	return o.Verdict == "faster" || o.Verdict == "slower" || o.Verdict == "mixed"
}

// pText writes a p-value so that a tiny one stays readable: 3.2e-12, not 0.
func pText(p float64) string {
	switch {
	case math.IsNaN(p):
		return "—"
	case p == 0:
		return "< 1e-300"
	case p < 0.001:
		return fmt.Sprintf("%.1e", p)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", p), "0"), ".")
}

// pIs is "p = 3.2e-12", or "p < 1e-300" for one too small for a float.
func pIs(p float64) string {
	if t := pText(p); strings.HasPrefix(t, "<") {
		return "p " + t
	}
	return "p = " + pText(p)
}

// opChangeText is one operation's change in a line.
func opChangeText(o analyze.OpChange) string {
	return fmt.Sprintf("%s stage %d (%d users): p95 %s, p50 %s (%s)", scenarioOp(o.Scenario, o.Operation), o.Stage, o.Users,
		deltaText(o.P95, 1), deltaText(o.P50, 1), pIs(o.LatencyP))
}

func changesText(c *analyze.Comparison, paint func(string, string) string) string {
	var b strings.Builder
	ch := ChangesOf(c)
	fmt.Fprintf(&b, "Compared with %s:", c.Base.ID)
	if ch.Empty() {
		b.WriteString(" no significant change\n")
		return b.String()
	}
	b.WriteString("\n")
	for _, t := range ch.Flipped {
		color := ansiGreen
		if t.NewVerdict == analyze.Fail || (t.NewVerdict == analyze.Acceptable && t.BaseVerdict == analyze.Pass) {
			color = ansiRed
		}
		fmt.Fprintf(&b, "  %s %s: %s → %s (%s → %s)\n", paint(color, "target"), t.Name, t.BaseVerdict, t.NewVerdict, valueText(t.Base, t.Unit), valueText(t.New, t.Unit))
	}
	for _, f := range ch.Appeared {
		fmt.Fprintf(&b, "  %s %s %s [%s]\n", paint(ansiRed, "appeared"), f.Kind, scenarioOp(f.Scenario, f.Operation), f.Severity)
	}
	for _, f := range ch.Gone {
		fmt.Fprintf(&b, "  %s %s %s [%s]\n", paint(ansiGreen, "went away"), f.Kind, scenarioOp(f.Scenario, f.Operation), f.Severity)
	}
	for i, o := range ch.Ops {
		if i == maxChanges {
			fmt.Fprintf(&b, "  … and %d more significant changes in the report\n", len(ch.Ops)-maxChanges)
			break
		}
		fmt.Fprintf(&b, "  %s %s\n", paint(changeColor(o.Verdict), fmt.Sprintf("%-6s", o.Verdict)), opChangeText(o))
	}
	return b.String()
}

func changeColor(verdict string) string {
	switch verdict {
	case "faster":
		return ansiGreen
	case "slower":
		return ansiRed
	}
	return ansiYellow
}

// reportPath is report.html under dir: joined for a local directory,
// appended with one slash to a URL (s3://bucket/prefix/), whose "//"
// filepath.Join would fold.
func reportPath(dir string) string {
	if strings.Contains(dir, "://") {
		return strings.TrimRight(dir, "/") + "/report.html"
	}
	return filepath.Join(dir, "report.html")
}
