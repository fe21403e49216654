package reports

import (
	"strings"
	"testing"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/runspec"
)

func TestSearchLines(t *testing.T) {
	s := &analyze.Summary{}
	s.Run.Search = []runspec.SearchResult{
		{Scenario: "gateway", Target: "gateway p50", Met: 10, Failed: 11, Done: true, Steps: []runspec.SearchStep{{Users: 8}, {Users: 16}, {Users: 12}, {Users: 10}, {Users: 11}}},
		{Scenario: "rag", Target: "rag p95", Met: 64, Done: true, Steps: []runspec.SearchStep{{Users: 64}}},
		{Scenario: "mcp", Target: "mcp p95", Failed: 1, Steps: []runspec.SearchStep{{Users: 1}}},
	}
	got := searchLines(s)
	want := []string{"10 users met it and 11 did not: the capacity lies between them (± 1 users) (stages of 8, 16, 12, 10, 11 users)",
		"64 users, the most it may try, met it", "no user count met it: 1 users, the fewest tried, missed it; the run ended before the search did"}
	for i, w := range want {
		if i >= len(got) || !strings.Contains(got[i], w) {
			t.Errorf("line %d = %q, want it to contain %q", i, got, w)
		}
	}
}
