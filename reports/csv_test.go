package reports

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strconv"
	"testing"

	"github.com/loadtape/loadtape/analyze"
)

// Locust's CSV headers as its documentation and locust/stats.py write them
// (requests_csv_columns, stats_history_csv_columns, failures_columns), with
// its default percentiles; written out here, not taken from csv.go.
var (
	locustPercentiles = []string{"50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"}
	locustStats       = slices.Concat([]string{"Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
		"Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s"}, locustPercentiles)
	locustHistory = slices.Concat([]string{"Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"}, locustPercentiles,
		[]string{"Total Request Count", "Total Failure Count", "Total Median Response Time", "Total Average Response Time",
			"Total Min Response Time", "Total Max Response Time", "Total Average Content Size"})
	locustFailures = []string{"Method", "Name", "Error", "Occurrences"}
)

func parseCSV(t *testing.T, name string, b []byte, header []string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll() // also fails on a row of another width
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(rows) < 2 {
		t.Fatalf("%s: %d rows, want a header and data", name, len(rows))
	}
	if !slices.Equal(rows[0], header) {
		t.Fatalf("%s: header %q, want Locust's %q", name, rows[0], header)
	}
	return rows[1:]
}

func numeric(t *testing.T, name string, rows [][]string, from int, except ...int) {
	t.Helper()
	for _, r := range rows {
		for i := from; i < len(r); i++ {
			if slices.Contains(except, i) || r[i] == "N/A" {
				continue
			}
			if _, err := strconv.ParseFloat(r[i], 64); err != nil {
				t.Errorf("%s: column %d %q is not a number", name, i, r[i])
			}
		}
	}
}

// The three CSVs read by encoding/csv have exactly Locust's columns, and
// their counts agree with the summary they came from.
func TestCSVsHaveLocustsColumns(t *testing.T) {
	t.Parallel()
	s := demoLike(t)
	stats, err := StatsCSV(s)
	if err != nil {
		t.Fatal(err)
	}
	rows := parseCSV(t, "stats.csv", stats, locustStats)
	numeric(t, "stats.csv", rows, 2)
	last := rows[len(rows)-1]
	if last[0] != "" || last[1] != "Aggregated" {
		t.Fatalf("stats.csv: last row %q, want Locust's Aggregated row", last[:2])
	}
	var count, failed int64
	for _, st := range s.Stages {
		for name, o := range st.Operations {
			if name != "all" {
				count += o.Count
				failed += errorCount(o)
			}
		}
	}
	if last[2] != strconv.FormatInt(count, 10) || last[3] != strconv.FormatInt(failed, 10) {
		t.Errorf("stats.csv Aggregated: %s requests, %s failures; want %d, %d (the stages' measured requests)", last[2], last[3], count, failed)
	}

	history, err := StatsHistoryCSV(s)
	if err != nil {
		t.Fatal(err)
	}
	rows = parseCSV(t, "stats_history.csv", history, locustHistory)
	numeric(t, "stats_history.csv", rows, 0, 2, 3)
	var aggRows int
	var prev int64
	for _, r := range rows {
		if r[3] != "Aggregated" {
			continue
		}
		aggRows++
		n, _ := strconv.ParseInt(r[17], 10, 64)
		if n < prev {
			t.Errorf("stats_history.csv: Total Request Count falls from %d to %d", prev, n)
		}
		prev = n
	}
	if all := s.Series.Series["all"]; aggRows != len(all) || prev != all[len(all)-1].TotalRequests {
		t.Errorf("stats_history.csv: %d Aggregated rows ending at %d requests, want %d rows ending at %d", aggRows, prev, len(all), all[len(all)-1].TotalRequests)
	}

	failures, err := FailuresCSV(s)
	if err != nil {
		t.Fatal(err)
	}
	rows = parseCSV(t, "failures.csv", failures, locustFailures)
	var occ int64
	for _, r := range rows {
		n, err := strconv.ParseInt(r[3], 10, 64)
		if err != nil {
			t.Fatalf("failures.csv: Occurrences %q", r[3])
		}
		occ += n
	}
	var want int64
	for _, f := range s.Failures {
		want += f.Count
	}
	if occ != want || len(rows) != len(s.Failures) {
		t.Errorf("failures.csv: %d rows, %d occurrences; want %d, %d", len(rows), occ, len(s.Failures), want)
	}
}

// Average Content Size is the mean response bytes per counted request,
// per operation and over all of them, as Locust writes it (an integer).
func TestStatsCSVContentSize(t *testing.T) {
	t.Parallel()
	op := func(count, bytes int64) *analyze.OpStats {
		return &analyze.OpStats{Count: count, BytesIn: bytes, Errors: map[string]int64{}, Durations: []int64{1e6, 2e6}}
	}
	s := &analyze.Summary{Stages: []*analyze.Stage{
		{Scenario: "gateway", Stage: 1, Users: 1, WindowS: 10, Operations: map[string]*analyze.OpStats{"chat.completions": op(2, 3000), "health": op(2, 40)}},
		{Scenario: "gateway", Stage: 2, Users: 5, WindowS: 10, Operations: map[string]*analyze.OpStats{"chat.completions": op(2, 1000)}},
	}}
	b, err := StatsCSV(s)
	if err != nil {
		t.Fatal(err)
	}
	rows := parseCSV(t, "stats.csv", b, locustStats)
	want := map[string]string{"chat.completions": "1000", "health": "20", aggregated: "673"}
	for _, r := range rows {
		if r[8] != want[r[1]] {
			t.Errorf("%s: Average Content Size %s, want %s", r[1], r[8], want[r[1]])
		}
	}
}
