package replay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// TestMaxRunCutsOffInOneBatch runs users whose every request hangs past
// --max-run: Run returns soon after the limit without waiting for the
// requests to unwind, with exactly one cut-off row per user, written at
// the limit, and the requests unwinding later add no row.
func TestMaxRunCutsOffInOneBatch(t *testing.T) {
	const users = 300
	hang := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		case <-time.After(30 * time.Second):
		}
	}))
	defer up.Close()
	defer close(hang)
	xs := []captures.Exchange{{ID: "x1", Service: "gateway", Operation: "models.list", Method: "GET", Path: "/v1/models", Status: 200}}
	prof := mustProfile(t, `
scenarios:
  s:
    service: gateway
    stages: [{users: 300, duration: 1m}]
    mix: {models.list: 1}
`)
	mw := &memWriter{}
	const limit = time.Second
	start := time.Now()
	info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up.URL},
		Out: t.TempDir(), MaxRun: limit, resultWriter: mw})
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// A bound that holds on a busy machine; the binary test measures the
	// command's wall time with thousands of users.
	if el > limit+2*time.Second {
		t.Errorf("Run took %v with --max-run %v", el, limit)
	}
	if info.EndedBy != EndedMaxRun || info.CutOff != users || info.Requests != users {
		t.Errorf("ended by %s, %d requests, %d cut off; want max_run and %d of each", info.EndedBy, info.Requests, info.CutOff, users)
	}
	check := func(when string) {
		t.Helper()
		if len(mw.rows) != users {
			t.Fatalf("%s: %d rows, want %d (one per user)", when, len(mw.rows), users)
		}
		seen := map[int32]bool{}
		for _, r := range mw.rows {
			if seen[r.VU] {
				t.Fatalf("%s: user %d has two rows", when, r.VU)
			}
			seen[r.VU] = true
			if r.ErrorKind != runspec.ErrCutOff || r.Error != "cut off: --max-run 1s reached" {
				t.Fatalf("%s: row %+v, want cut off by --max-run", when, r)
			}
			if end := time.Unix(0, r.StartNS+r.DurationNS); r.StartNS == 0 || end.After(info.Ended.Add(time.Millisecond)) || end.Before(info.Ended.Add(-time.Millisecond)) {
				t.Fatalf("%s: user %d's row ends at %v, want the run's end %v", when, r.VU, end, info.Ended)
			}
		}
	}
	check("after Run")
	// The requests are cancelled unwindDelay after Run returned; their
	// users' own rows must not be added.
	time.Sleep(unwindDelay + 500*time.Millisecond)
	check("after the requests unwound")
}

// TestScenarioEndingFirstCutsOffItsOwn: a scenario that ends before the
// run does cuts its requests off at its own end (they are cancelled, not
// left to run on), and the run's end writes the rest in one batch.
func TestScenarioEndingFirstCutsOffItsOwn(t *testing.T) {
	hang := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		case <-time.After(30 * time.Second):
		}
	}))
	defer up.Close()
	defer close(hang)
	xs := []captures.Exchange{{ID: "x1", Service: "gateway", Operation: "models.list", Method: "GET", Path: "/v1/models", Status: 200}}
	prof := mustProfile(t, `
scenarios:
  short:
    service: gateway
    stages: [{users: 3, duration: 400ms}]
    mix: {models.list: 1}
  long:
    service: gateway
    stages: [{users: 2, duration: 1500ms}]
    mix: {models.list: 1}
`)
	mw := &memWriter{}
	info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up.URL},
		Out: t.TempDir(), resultWriter: mw})
	if err != nil {
		t.Fatal(err)
	}
	if info.EndedBy != EndedCompleted || info.CutOff != 5 || len(mw.rows) != 5 {
		t.Fatalf("ended by %s, %d cut off, %d rows; want completed with 5 cut-off rows", info.EndedBy, info.CutOff, len(mw.rows))
	}
	ends := map[string]time.Time{}
	for _, sp := range info.Stages {
		ends[sp.Scenario] = sp.End
	}
	for _, r := range mw.rows {
		end := time.Unix(0, r.StartNS+r.DurationNS)
		// The short scenario's requests end when their cancellation came
		// back (a busy machine: up to a second late), long before the run.
		late := end.Sub(ends[r.Scenario])
		if r.ErrorKind != runspec.ErrCutOff || late < 0 || late > time.Second || (r.Scenario == "long" && !end.Equal(info.Ended)) {
			t.Errorf("%s user %d: %s %q ending %v after its scenario's end", r.Scenario, r.VU, r.ErrorKind, r.Error, late)
		}
	}
}

// TestSealKeepsLateUnsentRows: after the seal, a user putting the row the
// seal cut off adds nothing, nor does a request started after the end; a
// row of an arrival due before the end that its dispatcher reached late
// (never sent, so never in flight) is still written, and one a worker sent
// only after the end is written as cut off.
func TestSealKeepsLateUnsentRows(t *testing.T) {
	t.Parallel()
	mw := &memWriter{}
	sk := newSink(mw, nil)
	sk.inflight = &inflight{}
	end := time.Now()
	row := func(id string, start time.Time) *captures.Result {
		return &captures.Result{SourceID: id, StartNS: start.UnixNano()}
	}
	done := row("done", end.Add(-time.Second))
	sk.inflight.add(done)
	sk.put(done)
	hung := row("hung", end.Add(-time.Second))
	sk.inflight.add(hung)
	sk.seal(end, "deadline exceeded")
	hung.ErrorKind = runspec.ErrCutOff // its user's own cut-off, after the seal
	sk.put(hung)
	late := row("late", end.Add(-time.Millisecond))
	late.ErrorKind = runspec.ErrCutOff
	sk.put(late)
	sk.put(row("after", end.Add(time.Millisecond)))
	sentLate := row("sent-late", end.Add(time.Millisecond)) // due before the end, a worker sent it after
	sentLate.IntendedNS = end.Add(-time.Millisecond).UnixNano()
	sk.put(sentLate)
	if err := sk.close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range mw.rows {
		got[r.SourceID]++
		if r.SourceID == "sent-late" && r.ErrorKind != runspec.ErrCutOff {
			t.Errorf("a request due before the end and sent after it: %q, want cut off", r.ErrorKind)
		}
	}
	if len(mw.rows) != 4 || got["done"] != 1 || got["hung"] != 1 || got["late"] != 1 || got["sent-late"] != 1 {
		t.Errorf("rows %v, want done, hung (once, by the seal), late and sent-late", got)
	}
}
