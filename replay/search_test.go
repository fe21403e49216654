package replay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// slotServer serves slots requests at once, each for service, the rest
// waiting their turn: a closed user's latency is about users/slots ×
// service once users exceed slots.
func slotServer(t *testing.T, slots int, service time.Duration) *httptest.Server {
	sem := make(chan struct{}, slots)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			fmt.Fprint(w, `{"status":"ok"}`)
			return
		}
		select {
		case sem <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(service)
		<-sem
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"content":"Hi"}}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runProfileText(t *testing.T, y, url string) (*runspec.Run, []captures.Result) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	xs := slices.DeleteFunc(gatewayCapture(2, 6), func(x captures.Exchange) bool { return x.Operation != "chat.completions" })
	if _, err := Run(context.Background(), Options{ProfilePath: path, Exchanges: xs, Targets: map[string]string{"gateway": url}, Out: out}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rf, err := runspec.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	return rf, readResults(t, out)
}

// stagePercentile is the q-quantile in ms of each stage's successful
// requests, by nearest rank, keyed by the stage's users, over the window
// the live judge reads (the stage less its warm-up: a tenth, at most
// liveWarmUpMax).
func stagePercentile(rf *runspec.Run, rows []captures.Result, q float64) map[int]float64 {
	out := map[int]float64{}
	for _, st := range rf.Stages {
		start, _ := runspec.ParseTime(st.Start)
		end, _ := runspec.ParseTime(st.End)
		ws := start.Add(min(time.Duration(float64(end.Sub(start))*liveWarmUpFraction), liveWarmUpMax)).UnixNano()
		var d []int64
		for _, r := range rows {
			if int(r.Stage) == st.Stage && r.ErrorKind == "" && r.StartNS >= ws && r.StartNS < end.UnixNano() {
				d = append(d, r.DurationNS)
			}
		}
		slices.Sort(d)
		if len(d) > 0 {
			out[st.Users] = nearestRank(d, q) / 1e6
		}
	}
	return out
}

// The capacity search against a server of 4 slots of 50 ms lands within
// one bisection step (one user) of the most users a fixed sweep of every
// user count finds under the same p50 bound, and records each stage.
func TestSearchFindsTheCapacityOfAFixedSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("two runs of about 12 s")
	}
	const bound = 135.0 // ms: 4 slots × 50 ms hold about 10 users under it
	head := `scenarios:
  gateway:
    think: {constant: 1ms}
    mix: {chat.completions: 1}
`
	target := fmt.Sprintf("targets:\n  - {scenario: gateway, metric: p50, max: %gms}\n", bound)
	var users []string
	for u := 6; u <= 16; u++ {
		users = append(users, fmt.Sprintf("{users: %d, duration: 1s}", u))
	}
	sweepY := head + "    stages: [" + strings.Join(users, ", ") + "]\n" + target
	searchY := head + "    stages: [{duration: 1s}]\n    search: {target: 1, users: {from: 1, max: 64}}\n" + target

	// Best of three: a busy machine can slow one stage of either run.
	var last string
	for range 3 {
		rf, rows := runProfileText(t, sweepY, slotServer(t, 4, 50*time.Millisecond).URL)
		p50 := stagePercentile(rf, rows, 0.5)
		capacity := 5 // users below 6 wait for no slot
		for u := 6; u <= 16 && p50[u] > 0 && p50[u] <= bound; u++ {
			capacity = u
		}
		srf, _ := runProfileText(t, searchY, slotServer(t, 4, 50*time.Millisecond).URL)
		if len(srf.Search) != 1 {
			t.Fatalf("run.json has %d searches, want 1", len(srf.Search))
		}
		s := srf.Search[0]
		if len(s.Steps) != len(srf.Stages) || len(s.Steps) < 4 {
			t.Fatalf("search recorded %d steps for %d stages: %+v", len(s.Steps), len(srf.Stages), s)
		}
		var tried []string
		for i, st := range s.Steps {
			tried = append(tried, fmt.Sprintf("%d:%v", st.Users, st.Met))
			if srf.Stages[i].Users != st.Users || st.Stage != i+1 {
				t.Errorf("step %d: %d users, run.json stage %d has %d", i+1, st.Users, srf.Stages[i].Stage, srf.Stages[i].Users)
			}
		}
		last = fmt.Sprintf("sweep p50 %v → capacity %d; search %s → met %d, failed %d, done %v", p50, capacity, strings.Join(tried, " "), s.Met, s.Failed, s.Done)
		t.Log(last)
		if s.Done && s.Failed == s.Met+1 && s.Met >= capacity-1 && s.Met <= capacity+1 {
			return
		}
	}
	t.Errorf("the search did not land within one user of the sweep: %s", last)
}

func TestSearchRefusesBadSpecs(t *testing.T) {
	t.Parallel()
	const head = "scenarios:\n  gateway:\n    mix: {chat.completions: 1}\n"
	const tg = "targets:\n  - {scenario: gateway, metric: p95, max: 1s}\n  - {scenario: gateway, metric: count, max: 3}\n"
	for _, tc := range []struct{ y, want string }{
		{head + "    stages: [{duration: 1s}]\n    search: {target: 3, users: {from: 1, max: 8}}\n" + tg, "test.yaml:5:14: scenario \"gateway\": search target: 3: want a target's number or label"},
		{head + "    stages: [{duration: 1s}]\n    search: {target: gateway p96, users: {from: 1, max: 8}}\n" + tg, "search target: \"gateway p96\" is no target's label"},
		{head + "    stages: [{duration: 1s}]\n    search: {target: gateway count, users: {from: 1, max: 8}}\n" + tg, "search target gateway count: replay judges each stage"},
		{head + "    stages: [{duration: 1s}]\n    search: {target: 1, users: {from: 0, max: 8}}\n" + tg, "test.yaml:5:25: scenario \"gateway\": search users: want from >= 1"},
		{head + "    stages: [{duration: 1s}, {duration: 1s}]\n    search: {target: 1, users: {from: 1, max: 8}}\n" + tg, "a search wants one stage"},
		{head + "    stages: [{users: 3, duration: 1s}]\n    search: {target: 1, users: {from: 1, max: 8}}\n" + tg, "takes its users from the search"},
	} {
		_, err := ParseProfile([]byte(tc.y), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %v, want one line with %q", err, tc.want)
		}
	}
	// By label, the search resolves the target and fills the stage's
	// users with the max for the user-count limit.
	p, err := ParseProfile([]byte(head+"    stages: [{duration: 1s}]\n    search: {target: gateway p95, users: {from: 2, max: 8}}\n"+tg), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sc := p.Scenarios["gateway"]; sc.Search.target != 0 || sc.Stages[0].Users != 8 {
		t.Errorf("target %d, stage users %d; want 0 and 8", sc.Search.target, sc.Stages[0].Users)
	}
}

// Each shard would search apart from the others: a sharded search is bad
// input before any request.
func TestSearchRefusedInAShardedRun(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	y := "scenarios:\n  gateway:\n    mix: {chat.completions: 1}\n    stages: [{duration: 1s}]\n    search: {target: 1, users: {from: 1, max: 8}}\ntargets:\n  - {scenario: gateway, metric: p95, max: 1s}\n"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{ProfilePath: path, Exchanges: gatewayCapture(2, 6), Shard: "1/2",
		Targets: map[string]string{"gateway": up.URL}, Out: filepath.Join(dir, "run")})
	if !IsBadInput(err) || !strings.Contains(err.Error(), "--shard 1/2: scenario \"gateway\" searches") {
		t.Errorf("error %v, want bad input naming --shard and the search", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d requests sent before the refusal", n)
	}
}
