package reports

import (
	"fmt"
	"slices"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// Markdown is report.md: the verdict, targets, findings with their
// evidence, per-stage tables and the figures (as files under figures/):
// the page a team pastes as its results.
func Markdown(s *analyze.Summary, figs []Figure) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Load test report: %s\n\n", s.Run.ID)
	w("**Verdict: %s** — %s.\n\n", Verdict(s), md(headline(s)))
	w("Run %s, from %s to %s, time scale %g", s.Run.ID, s.Run.Started, s.Run.Ended, s.Run.TimeScale)
	if s.Run.Interrupted {
		w(", **interrupted**")
	}
	w(".\n\n")

	if ms := Misses(s); len(ms) > 0 {
		w("## Failed targets\n\n| Target | Stage | Value | Bound | Explained by |\n|---|---|---|---|---|\n")
		for _, m := range ms {
			t := m.Target
			w("| %s | %s | %s | %s | %s |\n", md(t.Name()), targetStage(s, t), valueText(t.Value, t.Unit), boundText(t), md(explainText(m)+noteText(t.Note)))
		}
		w("\n")
	}
	if c := s.Comparison; c != nil {
		markdownChanges(&b, c)
	}

	w("## Findings, by severity\n\n")
	if len(s.Findings) == 0 {
		w("No bottleneck found: no detector fired on this run.\n\n")
	}
	for i, f := range s.Findings {
		w("### %d. %s — %s (%s), severity %s\n\n%s\n\n**Action:** %s\n\n", i+1, f.Kind, md(f.Scenario), md(f.Operation), f.Severity, md(f.Summary), md(f.Action))
		w("| Evidence | Value |\n|---|---|\n")
		for _, kv := range evidenceRows(f) {
			w("| %s | %s |\n", kv[0], md(kv[1]))
		}
		w("\n")
		for _, fig := range figuresFor(f, figs) {
			w("![%s](figures/%s.png)\n", md(fig.Title), fig.Name)
		}
		w("\n")
	}

	markdownFailures(&b, s)

	w("## Targets\n\n")
	for _, l := range searchLines(s) { // search.go
		w("%s\n\n", md(l))
	}
	if len(s.Run.TargetsLeftOut) > 0 {
		w("Left out, their scenarios were not in this run: %s.\n\n", md(strings.Join(s.Run.TargetsLeftOut, "; ")))
	}
	if len(s.Targets) == 0 {
		w("The profile sets no targets.\n\n")
	} else {
		w("| Target | Stage | Value | Bound | Acceptable | Verdict |\n|---|---|---|---|---|---|\n")
		for _, t := range s.Targets {
			w("| %s | %s | %s | %s | %s %s | %s |\n", md(t.Name()), targetStage(s, t), valueText(t.Value, t.Unit), boundText(t), boundOp(t), num(t.Acceptable, t.Unit), verdictMark(t.Verdict)+noteText(t.Note))
		}
		w("\n")
	}

	if c := s.Comparison; c != nil {
		markdownComparison(&b, c)
	}

	for _, sc := range s.Scenarios {
		w("## Scenario %s\n\n", md(sc.Name))
		stages := stagesOf(s, sc.Name)
		w("| Stage | Load | Window (s) | Trustworthy | Steady | Requests | RPS | Error %% | p50 ms | p95 ms | p99 ms | max ms | GPU %% | CPU %% |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, st := range stages {
			a := st.Operations[analyze.AllOps]
			w("| %d %s | %s | %.1f | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", st.Stage, md(st.Name), loadText(st), st.WindowS, yesNo(st.Trustworthy), yesNo(st.Steady), a.Count, num(a.RPS, ""), num(100*a.ErrorRate, ""),
				num(a.LatencyMS.P50, ""), num(a.LatencyMS.P95, ""), num(a.LatencyMS.P99, ""), num(a.LatencyMS.Max, ""), resText(st, analyze.ResGPUUtil), resText(st, "cpu_util"))
		}
		w("\n")
		for _, fig := range figs {
			if fig.Scenario == sc.Name {
				w("![%s](figures/%s.png)\n", md(fig.Title), fig.Name)
			}
		}
		w("\n#### Operations per stage\n\np95 from intended counts each success from when it was due to be sent (send lag included), as wrk2 does: a load generator that fell behind shows there.\n\n| Stage | Load | Operation | Requests | RPS | Error %% | avg ms | p50 | p90 | p95 | p99 | p95 from intended | TTFT p95 | Errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, st := range stages {
			for _, op := range opsOf(st) {
				o := st.Operations[op]
				ttft := "—"
				if o.TTFTMS != nil {
					ttft = num(o.TTFTMS.P95, "")
				}
				w("| %d | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", st.Stage, loadText(st), md(op), o.Count, num(o.RPS, ""), num(100*o.ErrorRate, ""), num(o.LatencyMS.Avg, ""),
					num(o.LatencyMS.P50, ""), num(o.LatencyMS.P90, ""), num(o.LatencyMS.P95, ""), num(o.LatencyMS.P99, ""), fromIntended(o), ttft, md(errorsText(o.Errors)))
			}
		}
		w("\n%s", markdownTokens(stages)) // tokens.go
		if notes := stageNotes(stages); notes != "" {
			w("%s\n", notes)
		}
	}
	if s.Timeline != nil {
		w("## Timeline\n\n![timeline](figures/timeline.png)\n\n")
	}
	w("## Method\n\n%s\n", md(method(s)))
	return b.String()
}

// markdownChanges is compare's lead: what changed significantly, marked
// red (worse) and green (better).
func markdownChanges(b *strings.Builder, c *analyze.Comparison) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## What changed since %s\n\n", md(c.Base.ID))
	ch := ChangesOf(c)
	if ch.Empty() {
		w("No significant change: no target changed its verdict, no finding appeared or went away, and no operation's latency changed significantly (%s).\n\n", md(c.Test))
		return
	}
	for _, t := range ch.Flipped {
		mark := "🟢"
		if worse(t) {
			mark = "🔴"
		}
		w("- %s target %s: %s → %s (%s → %s)\n", mark, md(t.Name), t.BaseVerdict, t.NewVerdict, valueText(t.Base, t.Unit), valueText(t.New, t.Unit))
	}
	for _, f := range ch.Appeared {
		w("- 🔴 finding appeared: %s %s, severity %s\n", f.Kind, md(scenarioOp(f.Scenario, f.Operation)), f.Severity)
	}
	for _, f := range ch.Gone {
		w("- 🟢 finding went away: %s %s, severity %s\n", f.Kind, md(scenarioOp(f.Scenario, f.Operation)), f.Severity)
	}
	for i, o := range ch.Ops {
		if i == maxChanges {
			w("- … and %d more significant changes in the comparison table below\n", len(ch.Ops)-maxChanges)
			break
		}
		w("- %s %s: %s\n", changeMark(o.Verdict), o.Verdict, md(opChangeText(o)))
	}
	w("\n")
}

// worse reports whether a target's verdict moved toward failing.
func worse(t analyze.TargetChange) bool {
	rank := map[analyze.Verdict]int{analyze.Pass: 0, analyze.Acceptable: 1, analyze.Fail: 2}
	return rank[t.NewVerdict] > rank[t.BaseVerdict]
}

func changeMark(verdict string) string {
	switch verdict {
	case "faster":
		return "🟢"
	case "slower":
		return "🔴"
	}
	return "🟡"
}

func markdownComparison(b *strings.Builder, c *analyze.Comparison) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Comparison with %s\n\n%s\n\n", md(c.Base.ID), md(c.Test))
	if len(c.Targets) > 0 {
		w("| Target | Base | New | Base verdict | New verdict |\n|---|---|---|---|---|\n")
		for _, t := range c.Targets {
			w("| %s | %s | %s | %s | %s |\n", md(t.Name), valueText(t.Base, t.Unit), valueText(t.New, t.Unit), t.BaseVerdict, t.NewVerdict)
		}
		w("\n")
	}
	w("| Scenario | Stage | Users | Operation | p50 ms | p95 ms | p99 ms | RPS | Error %% | p (latency) | Verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, o := range c.Operations {
		verdict := o.Verdict
		if significant(o) {
			verdict = changeMark(o.Verdict) + " **" + o.Verdict + "**"
		}
		w("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", md(o.Scenario), o.Stage, o.Users, md(o.Operation), deltaText(o.P50, 1), deltaText(o.P95, 1), deltaText(o.P99, 1), deltaText(o.RPS, 1), deltaText(o.ErrorRate, 100), pText(o.LatencyP), verdict)
	}
	w("\n")
}

func deltaText(d analyze.Delta, scale float64) string {
	return fmt.Sprintf("%s → %s (%+.1f %%)", num(d.Base*scale, ""), num(d.New*scale, ""), d.ChangePct)
}

// headline says in one line why the verdict is what it is: the counts of
// targets by verdict and of findings by severity, and the most important
// finding when no target failed (the failed targets follow the verdict).
func headline(s *analyze.Summary) string {
	h := CountOf(s).String()
	if len(Misses(s)) == 0 && len(s.Findings) > 0 {
		f := s.Findings[0]
		h += "; most important: " + string(f.Kind) + " (" + string(f.Severity) + "): " + f.Summary
	}
	return h
}

func method(s *analyze.Summary) string {
	warm := ""
	for _, st := range s.Stages {
		warm = fmt.Sprintf("%.1f s", st.WarmUpS)
		break
	}
	return fmt.Sprintf("Percentiles: %s. Latency statistics are of successful requests; failures count in the error rate; requests cut off at a stage's end are left out. "+
		"Each stage's first seconds are trimmed as warm-up (min(10 s, 10 %% of the stage) unless set; %s for the first stage). "+
		"A stage is untrustworthy when the load generator fell behind (send lag p99 > 10 ms, or Little's law N = X·(R+Z) off by more than 10 %%); "+
		"it is not steady when latency was still climbing at its end. Resources: mean and max over the stage's window, the busiest device's mean; "+
		"scraped metrics count only for the scenarios whose service shares their host and port.", s.Estimator, warm)
}

func stageNotes(stages []*analyze.Stage) string {
	var b strings.Builder
	for _, st := range stages {
		for _, n := range st.Notes {
			fmt.Fprintf(&b, "- Stage %d (%s): %s\n", st.Stage, loadText(st), md(n))
		}
	}
	return b.String()
}

func opsOf(st *analyze.Stage) []string {
	return append([]string{analyze.AllOps}, opNames([]*analyze.Stage{st})...)
}

func errorsText(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func resText(st *analyze.Stage, name string) string {
	r, ok := st.Resources[name]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%s (max %s)", num(r.Mean, ""), num(r.Max, ""))
}

func noteText(n string) string {
	if n == "" {
		return ""
	}
	return " (" + n + ")"
}

func verdictMark(v analyze.Verdict) string {
	switch v {
	case analyze.Pass:
		return "✅ pass"
	case analyze.Acceptable:
		return "🟡 acceptable"
	}
	return "❌ fail"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// md escapes the characters that break a Markdown table cell.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// fromIntended is an operation's p95 counted from each success's intended
// send time (send lag included), "—" when the rows carry none.
func fromIntended(o *analyze.OpStats) string {
	if o.FromIntendedMS == nil {
		return "—"
	}
	return num(o.FromIntendedMS.P95, "")
}
