package reports

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// HTML is report.html: one file with its styles and figures inside (PNG as
// data URIs), so it opens from disk or a CI artifact with no network.
func HTML(s *analyze.Summary, figs []Figure) ([]byte, error) {
	type scenarioView struct {
		Name    string
		Stages  []*analyze.Stage
		Figures []Figure
	}
	view := struct {
		S            *analyze.Summary
		Verdict      string
		Headline     string
		Scenarios    []scenarioView
		Timeline     []Figure
		Method       string
		Resources    []string
		Figs         []Figure
		Misses       []Miss
		Changes      *Changes
		Failures     []analyze.Failure
		FailuresLeft int
		LeftOut      []string
	}{Figs: figs, S: s, Verdict: Verdict(s), Headline: headline(s), Method: method(s), Resources: resourceNames, Misses: Misses(s),
		Failures: failureRows(s), FailuresLeft: max(0, len(s.Failures)-maxFailureRows), LeftOut: leftOutLines(s)}
	if s.Comparison != nil {
		ch := ChangesOf(s.Comparison)
		view.Changes = &ch
	}
	for _, sc := range s.Scenarios {
		v := scenarioView{Name: sc.Name, Stages: stagesOf(s, sc.Name)}
		for _, f := range figs {
			if f.Scenario == sc.Name {
				v.Figures = append(v.Figures, f)
			}
		}
		view.Scenarios = append(view.Scenarios, v)
	}
	for _, f := range figs {
		if f.Scenario == "" {
			view.Timeline = append(view.Timeline, f)
		}
	}
	tmpl, err := htmlTemplate.Clone()
	if err != nil {
		return nil, fmt.Errorf("reports: report.html: %w", err)
	}
	tmpl.Funcs(template.FuncMap{
		"stage": func(t analyze.TargetResult) string { return targetStage(s, t) },
		"miss":  func(t analyze.TargetResult) string { return missText(s, t) },
	})
	var b bytes.Buffer
	if err := tmpl.Execute(&b, view); err != nil {
		return nil, fmt.Errorf("reports: report.html: %w", err)
	}
	return b.Bytes(), nil
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":     num,
	"value":   valueText,
	"boundOp": boundOp,
	// stage and miss need the summary: HTML replaces them per report.
	"stage":    func(analyze.TargetResult) string { return "" },
	"miss":     func(analyze.TargetResult) string { return "" },
	"explain":  explainText,
	"pval":     pText,
	"opChange": opChangeText,
	"sig":      significant,
	"worse":    worse,
	"load":     loadText,
	"bound":    boundText,
	"share":    shareText,
	"seconds":  secondsText,
	"pct":      func(v float64) string { return num(100*v, "") },
	"png": func(f Figure) template.URL {
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(f.PNG))
	},
	"evidence":   evidenceRows,
	"figuresFor": figuresFor,
	"ops":        opsOf,
	"tokens":     tokensHTML, // tokens.go
	"search":     searchLines,
	"errors":     errorsText,
	"res": func(st *analyze.Stage, name string) string {
		r, ok := st.Resources[name]
		if !ok {
			return ""
		}
		return fmt.Sprintf("%s / %s", num(r.Mean, ""), num(r.Max, ""))
	},
	"anyRes": func(stages []*analyze.Stage, names []string) bool {
		for _, st := range stages {
			for _, n := range names {
				if _, ok := st.Resources[n]; ok {
					return true
				}
			}
		}
		return false
	},
	"hasRes": func(stages []*analyze.Stage, name string) bool {
		for _, st := range stages {
			if _, ok := st.Resources[name]; ok {
				return true
			}
		}
		return false
	},
	"lower":        strings.ToLower,
	"join":         strings.Join,
	"fromIntended": fromIntended,
	"ttft": func(o *analyze.OpStats) string {
		if o.TTFTMS == nil {
			return "—"
		}
		return num(o.TTFTMS.P95, "")
	},
	"delta": deltaText,
}).Parse(strings.Replace(htmlSource, "{{/* failures */}}", htmlFailures, 1)))

const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loadtape report {{.S.Run.ID}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1.5rem;color:#1d232a;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0 1rem}
h2{border-bottom:2px solid #e3e7eb;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d7dde3;padding:.3rem .55rem;text-align:right;vertical-align:top}
th{background:#f3f5f7}
td.l,th.l{text-align:left}
.verdict{font-size:1.3rem;font-weight:700;padding:1rem 1.2rem;border-radius:8px;margin-bottom:1rem}
.verdict small{display:block;font-weight:400;font-size:.95rem;margin-top:.35rem}
.v-pass{background:#dcf5e3;color:#14532d}.v-acceptable{background:#fff4cc;color:#713f12}.v-fail{background:#fde0e0;color:#7f1d1d}
tr.pass td.verdict-cell{background:#dcf5e3}tr.acceptable td.verdict-cell{background:#fff4cc}tr.fail td.verdict-cell{background:#fde0e0}
.finding{border:1px solid #d7dde3;border-left:6px solid #888;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.finding.high{border-left-color:#c62828}.finding.medium{border-left-color:#ef8f00}.finding.low{border-left-color:#607d8b}
.finding h3{margin:.2rem 0 .4rem;font-size:1.1rem}
.action{background:#f3f5f7;padding:.4rem .6rem;border-radius:4px}
figure{margin:.8rem 0}figure img{width:100%;height:auto;border:1px solid #e3e7eb}
figcaption{font-size:.85rem;color:#555}
.no{color:#b71c1c;font-weight:600}
.muted{color:#666;font-size:.9rem}
details summary{cursor:pointer;margin:.5rem 0}
#failed-targets{margin:.6rem 0 0;padding-left:1.2rem;font-size:1rem;font-weight:400}
#failed-targets li{margin:.3rem 0}
#failed-targets .explain{font-size:.9rem}
#failed-targets a{color:inherit}
td.msg{max-width:28rem;overflow-wrap:anywhere}td.msg code{font-size:.8rem;white-space:pre-wrap}
ul.changes li{margin:.2rem 0;padding:.15rem .4rem;border-radius:4px;list-style:none}
ul.changes li.worse,ul.changes li.slower,tr.slower td.verdict-cell{background:#fde0e0;color:#7f1d1d}
ul.changes li.better,ul.changes li.faster,tr.faster td.verdict-cell{background:#dcf5e3;color:#14532d}
ul.changes li.mixed,tr.mixed td.verdict-cell{background:#fff4cc;color:#713f12}
</style>
</head>
<body>
<h1>Load test report: {{.S.Run.ID}}</h1>
<div class="verdict v-{{lower .Verdict}}" id="verdict">{{.Verdict}}<small>{{.Headline}}.</small>
{{if .Misses}}<ul id="failed-targets">{{range .Misses}}<li><b>{{miss .Target}}</b><br><span class="explain">{{if .Finding}}Explained by <a href="#finding-{{.Finding.Kind}}-{{.Finding.Scenario}}">{{explain .}}</a>{{else}}No finding explains it.{{end}}</span></li>{{end}}</ul>{{end}}
</div>
<p class="muted">Run {{.S.Run.ID}} from {{.S.Run.Started}} to {{.S.Run.Ended}}, time scale {{.S.Run.TimeScale}}{{if .S.Run.Interrupted}}, <span class="no">interrupted</span>{{end}}.</p>

{{with .Changes}}
<h2 id="changes">What changed since {{$.S.Comparison.Base.ID}}</h2>
{{if .Empty}}<p>No significant change: no target changed its verdict, no finding appeared or went away, and no operation's latency changed significantly.</p>{{else}}
<ul class="changes">
{{range .Flipped}}<li class="{{if worse .}}worse{{else}}better{{end}}">Target {{.Name}}: {{.BaseVerdict}} → {{.NewVerdict}} ({{value .Base .Unit}} → {{value .New .Unit}})</li>{{end}}
{{range .Appeared}}<li class="worse">Finding appeared: {{.Kind}} {{.Scenario}} {{.Operation}}, severity {{.Severity}}</li>{{end}}
{{range .Gone}}<li class="better">Finding went away: {{.Kind}} {{.Scenario}} {{.Operation}}, severity {{.Severity}}</li>{{end}}
{{range $i, $o := .Ops}}{{if lt $i 5}}<li class="{{$o.Verdict}}">{{$o.Verdict}}: {{opChange $o}}</li>{{end}}{{end}}
</ul>{{end}}
{{end}}

<h2>Findings, by severity</h2>
{{if not .S.Findings}}<p id="no-findings">No bottleneck found: no detector fired on this run.</p>{{end}}
{{range $i, $f := .S.Findings}}
<div class="finding {{$f.Severity}}" id="finding-{{$f.Kind}}-{{$f.Scenario}}">
<h3>{{$f.Kind}} — {{$f.Scenario}} ({{$f.Operation}}), severity {{$f.Severity}}</h3>
<p>{{$f.Summary}}</p>
<p class="action"><b>Action:</b> {{$f.Action}}</p>
<table class="evidence"><tr><th class="l">Evidence</th><th class="l">Value</th></tr>
{{range evidence $f}}<tr><td class="l">{{index . 0}}</td><td class="l">{{index . 1}}</td></tr>{{end}}
</table>
{{range figuresFor $f $.Figs}}<figure><img src="{{png .}}" alt="{{.Title}}"><figcaption>{{.Title}}</figcaption></figure>{{end}}
</div>
{{end}}

{{/* failures */}}

<h2>Targets</h2>{{range search .S}}
<p class="search">{{.}}</p>{{end}}
{{with .S.Run.TargetsLeftOut}}<p class="muted" id="left-out">Left out, their scenarios were not in this run: {{join . "; "}}.</p>{{end}}
{{if .S.Targets}}
<table id="targets">
<tr><th class="l">Target</th><th class="l">Stage</th><th>Value</th><th>Bound</th><th>Acceptable</th><th class="l">Verdict</th></tr>
{{range .S.Targets}}<tr class="{{.Verdict}}"><td class="l">{{.Name}}</td><td class="l">{{stage .}}</td><td>{{value .Value .Unit}}</td><td>{{bound .}}</td><td>{{boundOp .}} {{num .Acceptable .Unit}}</td><td class="l verdict-cell">{{.Verdict}}{{if .Note}} ({{.Note}}){{end}}</td></tr>
{{end}}</table>
{{else}}<p>The profile sets no targets.</p>{{end}}

{{with .S.Comparison}}
<h2>Comparison with {{.Base.ID}}</h2>
<p class="muted">{{.Test}}</p>
{{if .Targets}}<table id="compare-targets"><tr><th class="l">Target</th><th>Base</th><th>New</th><th class="l">Base verdict</th><th class="l">New verdict</th></tr>
{{range .Targets}}<tr class="{{.NewVerdict}}"><td class="l">{{.Name}}</td><td>{{value .Base .Unit}}</td><td>{{value .New .Unit}}</td><td class="l">{{.BaseVerdict}}</td><td class="l verdict-cell">{{.NewVerdict}}</td></tr>{{end}}
</table>{{end}}
<table id="compare-operations"><tr><th class="l">Scenario</th><th>Stage</th><th>Users</th><th class="l">Operation</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>RPS</th><th>Error %</th><th>p (latency)</th><th class="l">Verdict</th></tr>
{{range .Operations}}<tr class="{{if sig .}}{{.Verdict}}{{end}}"><td class="l">{{.Scenario}}</td><td>{{.Stage}}</td><td>{{.Users}}</td><td class="l">{{.Operation}}</td><td>{{delta .P50 1.0}}</td><td>{{delta .P95 1.0}}</td><td>{{delta .P99 1.0}}</td><td>{{delta .RPS 1.0}}</td><td>{{delta .ErrorRate 100.0}}</td><td>{{pval .LatencyP}}</td><td class="l verdict-cell">{{.Verdict}}</td></tr>{{end}}
</table>
{{end}}

{{range .Scenarios}}{{$stages := .Stages}}
<h2>Scenario {{.Name}}</h2>
<table class="stages">
<tr><th>Stage</th><th>Load</th><th>Window s</th><th>Trustworthy</th><th>Steady</th><th>Requests</th><th>RPS</th><th>Error %</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>
{{range .Stages}}{{$st := .}}{{with index .Operations "all"}}<tr><td>{{$st.Stage}} {{$st.Name}}</td><td>{{load $st}}</td><td>{{printf "%.1f" $st.WindowS}}</td><td>{{if $st.Trustworthy}}yes{{else}}<span class="no">no</span>{{end}}</td><td>{{if $st.Steady}}yes{{else}}<span class="no">no</span>{{end}}</td><td>{{.Count}}</td><td>{{num .RPS ""}}</td><td>{{pct .ErrorRate}}</td><td>{{num .LatencyMS.P50 ""}}</td><td>{{num .LatencyMS.P95 ""}}</td><td>{{num .LatencyMS.P99 ""}}</td><td>{{num .LatencyMS.Max ""}}</td></tr>{{end}}
{{end}}</table>
{{if anyRes $stages $.Resources}}<table class="resources">
<tr><th>Stage</th><th>Load</th>{{range $.Resources}}{{if hasRes $stages .}}<th>{{.}}<br>mean / max</th>{{end}}{{end}}</tr>
{{range .Stages}}{{$st := .}}<tr><td>{{$st.Stage}}</td><td>{{load $st}}</td>{{range $.Resources}}{{if hasRes $stages .}}<td>{{res $st .}}</td>{{end}}{{end}}</tr>
{{end}}</table>{{end}}
{{range .Stages}}{{range .Notes}}<p class="muted">Stage note: {{.}}</p>{{end}}{{end}}
{{range .Figures}}<figure><img src="{{png .}}" alt="{{.Title}}"><figcaption>{{.Title}}</figcaption></figure>{{end}}
<details><summary>Operations per stage</summary>
<table class="operations">
<tr><th>Stage</th><th>Load</th><th class="l">Operation</th><th>Requests</th><th>RPS</th><th>Error %</th><th>avg ms</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th title="each success counted from when it was due to be sent, send lag included (wrk2's corrected latency)">p95 from intended</th><th>TTFT p95</th><th class="l">Errors</th></tr>
{{range .Stages}}{{$st := .}}{{range ops .}}{{$o := index $st.Operations .}}<tr><td>{{$st.Stage}}</td><td>{{load $st}}</td><td class="l">{{.}}</td><td>{{$o.Count}}</td><td>{{num $o.RPS ""}}</td><td>{{pct $o.ErrorRate}}</td><td>{{num $o.LatencyMS.Avg ""}}</td><td>{{num $o.LatencyMS.P50 ""}}</td><td>{{num $o.LatencyMS.P90 ""}}</td><td>{{num $o.LatencyMS.P95 ""}}</td><td>{{num $o.LatencyMS.P99 ""}}</td><td>{{fromIntended $o}}</td><td>{{ttft $o}}</td><td class="l">{{errors $o.Errors}}</td></tr>{{end}}{{end}}
</table>
</details>
{{tokens .Stages}}{{end}}

{{if .Timeline}}<h2>Timeline</h2>
{{range .Timeline}}<figure><img src="{{png .}}" alt="{{.Title}}"><figcaption>{{.Title}}</figcaption></figure>{{end}}{{end}}

<h2>Method</h2>
<p class="muted">{{.Method}}</p>
</body>
</html>
`
