package reports

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/loadtape/loadtape/analyze"
)

// The CSV exports keep Locust's file names' endings and its columns, in
// its order, so that what reads Locust's --csv files reads these: Type is
// the scenario (Locust's request method), Name the operation.
var (
	StatsColumns = append([]string{"Type", "Name", "Request Count", "Failure Count", "Median Response Time",
		"Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
		"Requests/s", "Failures/s"}, percentileColumns()...)
	StatsHistoryColumns = append(append([]string{"Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"},
		percentileColumns()...), "Total Request Count", "Total Failure Count", "Total Median Response Time",
		"Total Average Response Time", "Total Min Response Time", "Total Max Response Time", "Total Average Content Size")
	FailuresColumns = []string{"Method", "Name", "Error", "Occurrences"}
)

// aggregated is Locust's name for the row of every request together.
const aggregated = "Aggregated"

func percentileColumns() []string {
	out := make([]string, len(analyze.SeriesPercentiles))
	for i, q := range analyze.SeriesPercentiles {
		out[i] = strconv.FormatFloat(100*q, 'f', -1, 64) + "%"
	}
	return out
}

// csvNum writes a number as Locust's readers parse it: plain decimals, at
// most three after the point.
func csvNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "N/A"
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

func writeCSV(rows [][]string) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("reports: csv: %w", err)
	}
	return b.Bytes(), nil
}

// StatsCSV is stats.csv: per scenario × operation over the measured
// windows of its stages (warm-up trimmed, as the stage tables), then every
// request together. Latencies are of successful requests, in ms, exact
// percentiles; Requests/s is a scenario's requests over its stages'
// windows, and the Aggregated row adds the scenarios' rates (they run at
// once). Content size is the mean response bytes of the counted requests,
// failures included, as Locust averages it over every request.
func StatsCSV(s *analyze.Summary) ([]byte, error) {
	rows := [][]string{StatsColumns}
	type acc struct {
		count, failures, bytes int64
		durs                   [][]int64
		window                 float64
	}
	var total acc
	var totalRPS, totalFPS float64
	row := func(typ, name string, a acc, rps, fps float64) []string {
		// Each stage's durations are sorted: the percentiles are found by
		// rank in them, without a sorted copy of them all.
		var n int
		var sum float64
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for _, p := range a.durs {
			if len(p) == 0 {
				continue
			}
			n += len(p)
			for _, v := range p {
				sum += float64(v)
			}
			lo, hi = min(lo, p[0]), max(hi, p[len(p)-1])
		}
		r := []string{typ, name, strconv.FormatInt(a.count, 10), strconv.FormatInt(a.failures, 10)}
		size := "0"
		if a.count > 0 {
			size = strconv.FormatInt(a.bytes/a.count, 10) // Locust writes an integer
		}
		if n == 0 {
			r = append(r, "0", "0", "0", "0", size, csvNum(rps), csvNum(fps))
			for range analyze.SeriesPercentiles {
				r = append(r, "N/A")
			}
			return r
		}
		r = append(r, csvNum(analyze.PercentileOfParts(a.durs, 0.5)/1e6), csvNum(sum/float64(n)/1e6), csvNum(float64(lo)/1e6),
			csvNum(float64(hi)/1e6), size, csvNum(rps), csvNum(fps))
		for _, q := range analyze.SeriesPercentiles {
			r = append(r, csvNum(analyze.PercentileOfParts(a.durs, q)/1e6))
		}
		return r
	}
	for _, sc := range scenarioOrder(s) {
		stages := stagesOf(s, sc)
		var window float64
		for _, st := range stages {
			window += st.WindowS
		}
		for _, op := range opNames(stages) {
			var a acc
			for _, st := range stages {
				if o := st.Operations[op]; o != nil {
					a.count += o.Count
					a.failures += errorCount(o)
					a.bytes += o.BytesIn
					a.durs = append(a.durs, o.Durations)
				}
			}
			rps, fps := rate(a.count, window), rate(a.failures, window)
			rows = append(rows, row(sc, op, a, rps, fps))
			total.count += a.count
			total.failures += a.failures
			total.bytes += a.bytes
			total.durs = append(total.durs, a.durs...)
			totalRPS += rps
			totalFPS += fps
		}
	}
	rows = append(rows, row("", aggregated, total, totalRPS, totalFPS))
	return writeCSV(rows)
}

func rate(n int64, window float64) float64 {
	if window <= 0 {
		return 0
	}
	return float64(n) / window
}

func errorCount(o *analyze.OpStats) int64 {
	var n int64
	for _, v := range o.Errors {
		n += v
	}
	return n
}

// scenarioOrder is the scenarios in the order their stages come.
func scenarioOrder(s *analyze.Summary) []string {
	var out []string
	for _, st := range s.Stages {
		if !slices.Contains(out, st.Scenario) {
			out = append(out, st.Scenario)
		}
	}
	return out
}

// StatsHistoryCSV is stats_history.csv: one row per second per scenario
// (Name "all") and one for every request together (Locust's Aggregated
// row), from summary.json's series. User Count is the scenario's users, or
// all scenarios' for the Aggregated row; percentiles are the second's (a
// histogram's, see analyze.RunSeries), N/A when nothing succeeded in it.
func StatsHistoryCSV(s *analyze.Summary) ([]byte, error) {
	rows := [][]string{StatsHistoryColumns}
	if s.Series == nil {
		return writeCSV(rows)
	}
	type line struct {
		typ, name string
		p         analyze.SeriesPoint
	}
	bySec := map[float64][]line{}
	add := func(typ, name string, pts []analyze.SeriesPoint) {
		for _, p := range pts {
			bySec[p.T] = append(bySec[p.T], line{typ, name, p})
		}
	}
	for _, sc := range scenarioOrder(s) {
		add(sc, analyze.AllOps, s.Series.Series[sc])
	}
	add("", aggregated, s.Series.Series[analyze.AllOps])
	secs := make([]float64, 0, len(bySec))
	for t := range bySec {
		secs = append(secs, t)
	}
	slices.Sort(secs)
	for _, t := range secs {
		for _, l := range bySec[t] {
			p := l.p
			r := []string{strconv.FormatInt(p.StartUnixSeconds, 10), strconv.Itoa(p.Users), l.typ, l.name, csvNum(p.RPS), csvNum(p.FailuresPS)}
			for _, q := range analyze.SeriesPercentiles {
				if v, ok := p.Percentiles[q]; ok {
					r = append(r, csvNum(v))
				} else {
					r = append(r, "N/A")
				}
			}
			r = append(r, strconv.FormatInt(p.TotalRequests, 10), strconv.FormatInt(p.TotalFailures, 10), csvNum(p.TotalMedianMS),
				csvNum(p.TotalAvgMS), csvNum(p.TotalMinMS), csvNum(p.TotalMaxMS), csvNum(p.TotalAvgBytes))
			rows = append(rows, r)
		}
	}
	return writeCSV(rows)
}

// FailuresCSV is failures.csv: one row per failure group, most frequent
// first; Method is the scenario, Name the operation, Error the error kind
// and the normalised message.
func FailuresCSV(s *analyze.Summary) ([]byte, error) {
	rows := [][]string{FailuresColumns}
	for _, f := range s.Failures {
		rows = append(rows, []string{f.Scenario, f.Operation, failureText(f), strconv.FormatInt(f.Count, 10)})
	}
	return writeCSV(rows)
}

// failureText is a failure group's kind and message in one string.
func failureText(f analyze.Failure) string {
	if f.Message == "" {
		return f.ErrorKind
	}
	return f.ErrorKind + ": " + f.Message
}
