package reports

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// tokenRow is one operation of one stage in the token table.
type tokenRow struct {
	stage, users int
	op           string
	t            *analyze.TokenStats
	g            *analyze.GoodputStats
}

// tokenRows are the operations with token figures or goodput, in the
// stages' order; none for a scenario that produced no tokens.
func tokenRows(stages []*analyze.Stage) []tokenRow {
	var rows []tokenRow
	for _, st := range stages {
		for _, op := range opsOf(st) {
			if o := st.Operations[op]; o != nil && (o.Tokens != nil || o.Goodput != nil) {
				rows = append(rows, tokenRow{st.Stage, st.Users, op, o.Tokens, o.Goodput})
			}
		}
	}
	return rows
}

var tokenHeader = []string{"Stage", "Users", "Operation", "Output tokens", "Output tok/s", "Total tok/s", "Req/s",
	"Per request tok/s p50 (p10)", "Peak tok/s", "Peak concurrency", "Good req/s", "Good %"}

func (r tokenRow) cells() []string {
	c := []string{fmt.Sprint(r.stage), fmt.Sprint(r.users), r.op, "—", "—", "—", "—", "—", "—", "—", "—", "—"}
	if t := r.t; t != nil {
		c[3], c[4], c[5], c[6] = fmt.Sprint(t.OutputTokens), num(t.OutputPerS, ""), num(t.TotalPerS, ""), num(t.RequestsPerS, "")
		if p := t.PerRequest; p != nil {
			c[7] = num(p.P50, "") + " (" + num(p.P10, "") + ")"
		}
		c[8], c[9] = num(t.PeakOutputPerS, ""), fmt.Sprint(t.PeakConcurrency)
		if t.Counting != analyze.CountUsage {
			c[3] += " (" + t.Counting + ")"
		}
	}
	if g := r.g; g != nil {
		c[10], c[11] = num(g.PerS, ""), num(100*g.Share, "")
	}
	return c
}

// countingNote says how the output tokens were counted.
func countingNote(rows []tokenRow) string {
	counts := map[string]bool{}
	var bounds string
	for _, r := range rows {
		if r.t != nil {
			counts[r.t.Counting] = true
		}
		if g := r.g; g != nil && bounds == "" {
			var b []string
			for _, x := range []struct {
				n string
				v float64
			}{{"TTFT", g.TTFTMS}, {"TPOT", g.TPOTMS}, {"e2e", g.E2EMS}} {
				if x.v > 0 {
					b = append(b, fmt.Sprintf("%s ≤ %s ms", x.n, num(x.v, "")))
				}
			}
			bounds = "A request is good when it succeeded with " + strings.Join(b, ", ")
			if g.TimeScale != 0 {
				bounds += fmt.Sprintf(" (the written bounds × the time scale %g)", g.TimeScale)
			}
			bounds += "."
		}
	}
	var parts []string
	switch {
	case counts[analyze.CountMixed] || (counts[analyze.CountUsage] && counts[analyze.CountChunks]):
		parts = append(parts, "Output tokens: from each response's usage where it had one, else chunk counts (marked): the stream's events from the first token on, which are chunks, not tokens.")
	case counts[analyze.CountChunks]:
		parts = append(parts, "Output tokens are chunk counts: the streams carried no usage, so each event from the first token on counts as one, which is not a token count.")
	case counts[analyze.CountUsage]:
		parts = append(parts, "Output tokens from each response's usage (completion_tokens).")
	}
	if bounds != "" {
		parts = append(parts, bounds)
	}
	return strings.Join(parts, " ")
}

// markdownTokens is the scenario's token table for report.md; "" when
// no stage had token figures or goodput.
func markdownTokens(stages []*analyze.Stage) string {
	rows := tokenRows(stages)
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("#### Tokens and goodput per stage\n\n| " + strings.Join(tokenHeader, " | ") + " |\n|" + strings.Repeat("---|", len(tokenHeader)) + "\n")
	for _, r := range rows {
		c := r.cells()
		for i := range c {
			c[i] = md(c[i])
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	b.WriteString("\n" + md(countingNote(rows)) + "\n\n")
	return b.String()
}

// tokensHTML is the same table for report.html.
func tokensHTML(stages []*analyze.Stage) template.HTML {
	rows := tokenRows(stages)
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<details><summary>Tokens and goodput per stage</summary>` + "\n" + `<table class="operations">` + "\n<tr>")
	for i, h := range tokenHeader {
		cls := ""
		if i == 2 {
			cls = ` class="l"`
		}
		b.WriteString("<th" + cls + ">" + template.HTMLEscapeString(h) + "</th>")
	}
	b.WriteString("</tr>\n")
	for _, r := range rows {
		b.WriteString("<tr>")
		for i, c := range r.cells() {
			cls := ""
			if i == 2 {
				cls = ` class="l"`
			}
			b.WriteString("<td" + cls + ">" + template.HTMLEscapeString(c) + "</td>")
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n<p class=\"muted\">" + template.HTMLEscapeString(countingNote(rows)) + "</p>\n</details>\n")
	return template.HTML(b.String()) // every piece escaped above
}
