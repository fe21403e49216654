package reports

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/loadtape/loadtape/analyze"
)

// searchLines state each capacity search of the run: the most users that
// met its target and the fewest that did not, the gap between them being
// the search's uncertainty.
func searchLines(s *analyze.Summary) []string {
	var out []string
	for _, r := range s.Run.Search {
		tried := make([]string, len(r.Steps))
		for i, st := range r.Steps {
			tried[i] = strconv.Itoa(st.Users)
		}
		var found string
		switch {
		case r.Met == 0 && r.Failed > 0:
			found = fmt.Sprintf("no user count met it: %d users, the fewest tried, missed it", r.Failed)
		case r.Failed == 0 && r.Met > 0:
			found = fmt.Sprintf("%d users, the most it may try, met it: the capacity is at least that", r.Met)
		case r.Met > 0:
			found = fmt.Sprintf("%d users met it and %d did not: the capacity lies between them (± %d users)", r.Met, r.Failed, r.Failed-r.Met)
		default:
			found = "no stage was judged"
		}
		if !r.Done {
			found += "; the run ended before the search did"
		}
		out = append(out, fmt.Sprintf("Capacity search of %s against target %s: %s (stages of %s users).", r.Scenario, r.Target, found, strings.Join(tried, ", ")))
	}
	return out
}
