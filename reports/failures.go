package reports

import (
	"fmt"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// maxFailureRows is how many failure groups the reports show; failures.csv
// and summary.json hold them all.
const maxFailureRows = 50

// failureRows are the groups the reports show, most frequent first.
func failureRows(s *analyze.Summary) []analyze.Failure {
	if len(s.Failures) > maxFailureRows {
		return s.Failures[:maxFailureRows]
	}
	return s.Failures
}

// secondsText is a time since the run's start: "12.3 s".
func secondsText(v float64) string { return num(v, "s") }

// shareText is a share as a percentage: "7.58 %".
func shareText(v float64) string { return num(100*v, "%") }

// leftOutLines say, per scenario, which captured exchanges replay left out
// of its pools because they failed when recorded, and which scenarios
// replayed them anyway.
func leftOutLines(s *analyze.Summary) []string {
	var out []string
	for _, name := range s.Run.IncludeFailed {
		out = append(out, fmt.Sprintf("scenario %s replayed the exchanges that failed when recorded too (include_failed: true): their failures were expected", name))
	}
	for _, l := range s.Run.LeftOut {
		who := l.Scenario
		if who == "" {
			who = l.Service
		}
		out = append(out, fmt.Sprintf("scenario %s: left out %d × %s %s (%s)", who, l.Count, l.Reason, l.Operation, l.Service))
	}
	return out
}

func markdownFailures(b *strings.Builder, s *analyze.Summary) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Failures by message\n\n")
	if len(s.Failures) == 0 {
		w("No request failed.\n\n")
	} else {
		w("Every failed request of the run, warm-up included, by scenario, operation, error kind and message (numbers and ids in it replaced, so one failure repeated is one row); share is of the operation's requests; first and last are seconds from the run's start.\n\n")
		w("| Scenario | Operation | Error kind | Message | Count | Share | First | Last | Example |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, f := range failureRows(s) {
			w("| %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", md(f.Scenario), md(f.Operation), md(f.ErrorKind), md(f.Message), f.Count, shareText(f.Share), secondsText(f.FirstS), secondsText(f.LastS), md(f.Example))
		}
		if n := len(s.Failures) - maxFailureRows; n > 0 {
			w("\n%d more in failures.csv and summary.json.\n", n)
		}
		w("\n")
	}
	if lines := leftOutLines(s); len(lines) > 0 {
		w("Exchanges that failed when recorded, left out of the replay pools unless the profile says include_failed: true:\n\n")
		for _, l := range lines {
			w("- %s\n", md(l))
		}
		w("\n")
	}
}

const htmlFailures = `<h2 id="failures">Failures by message</h2>
{{if not .S.Failures}}<p>No request failed.</p>{{else}}
<p class="muted">Every failed request of the run, warm-up included, by scenario, operation, error kind and message (numbers and ids in it replaced, so one failure repeated is one row); share is of the operation's requests; first and last are seconds from the run's start.</p>
<table id="failures-table"><tr><th class="l">Scenario</th><th class="l">Operation</th><th class="l">Error kind</th><th class="l">Message</th><th>Count</th><th>Share</th><th>First</th><th>Last</th><th class="l">Example</th></tr>
{{range .Failures}}<tr><td class="l">{{.Scenario}}</td><td class="l">{{.Operation}}</td><td class="l">{{.ErrorKind}}</td><td class="l msg">{{.Message}}</td><td>{{.Count}}</td><td>{{share .Share}}</td><td>{{seconds .FirstS}}</td><td>{{seconds .LastS}}</td><td class="l msg"><code>{{.Example}}</code></td></tr>
{{end}}</table>
{{with .FailuresLeft}}<p class="muted">{{.}} more in failures.csv and summary.json.</p>{{end}}{{end}}
{{with .LeftOut}}<p id="left-out-pools">Exchanges that failed when recorded, left out of the replay pools unless the profile says include_failed: true:</p><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
`
