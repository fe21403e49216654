package replay

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// TestThinkingUsersPastOpenFiles: closed users that think hold no
// connection while they do, so more of them than the open files limit
// holds connections for may start (memory still limits them); users that
// never pause may not.
func TestThinkingUsersPastOpenFiles(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	small := &capacity{fds: 300, mem: 8 << 30} // 300 descriptors hold 44 connections
	run := func(think string) (*RunInfo, error) {
		y := `scenarios: {g: {service: gateway, stages: [{users: 200, duration: 1s}], spawn_rate: 400, ` + think + `mix: {models.list: 1}}}`
		return Run(context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: mustProfile(t, y),
			Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), machine: small, resultWriter: &memWriter{}})
	}
	info, err := run(`think: {uniform: [300ms, 600ms]}, `)
	if err != nil {
		t.Fatalf("200 users thinking 300–600 ms with 300 descriptors: %v", err)
	}
	if info.Requests < 200 || info.Errors > info.CutOff {
		t.Errorf("%d requests, %d errors (%d cut off): want every user's requests, none failed", info.Requests, info.Errors, info.CutOff)
	}
	for _, think := range []string{"", `think: {exponential: 500ms}, `, `think: {uniform: [0s, 1s]}, `} {
		if _, err := run(think); !IsBadInput(err) {
			t.Errorf("200 users with think %q and 300 descriptors: %v, want refused", think, err)
		}
	}
	lowMem := &capacity{fds: 300, mem: memReserve + 10*userMemory}
	_, err = Run(context.Background(), Options{Exchanges: gatewayCapture(1, 3), Out: t.TempDir(), machine: lowMem,
		Targets: map[string]string{"gateway": up.URL}, Profile: mustProfile(t,
			`scenarios: {g: {service: gateway, stages: [{users: 11, duration: 100ms}], think: {constant: 1s}, mix: {models.list: 1}}}`)})
	if !IsBadInput(err) {
		t.Errorf("11 thinking users with memory for 10: %v, want refused", err)
	}
}

// TestConnectionWaitIsNotLatency: past the transport's connection cap a
// request waits for a connection another finished with; its clock starts
// when it got one, so the wait is not counted as the target's latency.
func TestConnectionWaitIsNotLatency(t *testing.T) {
	up := newUpstream(t, 300*time.Millisecond)
	tr := newTransport()
	tr.MaxConnsPerHost = 1
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	o := &outgoing{method: http.MethodGet, url: up.URL + "/v1/models", header: http.Header{}}
	rows := make([]captures.Result, 2)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(context.Background(), client, 10*time.Second, o, &rows[i])
		}()
		time.Sleep(50 * time.Millisecond) // the second asks while the first holds the connection
	}
	wg.Wait()
	if el := time.Since(began); el < 550*time.Millisecond {
		t.Fatalf("two requests on one connection took %v, want them one after the other", el)
	}
	first, second := rows[0], rows[1]
	if first.StartNS > second.StartNS {
		first, second = second, first
	}
	for _, r := range []captures.Result{first, second} {
		if r.Error != "" || r.Status != 200 {
			t.Fatalf("row %+v, want HTTP 200", r)
		}
		if d := time.Duration(r.DurationNS); d < 300*time.Millisecond || d > 550*time.Millisecond {
			t.Errorf("duration %v, want about the upstream's 300 ms, not the wait for the connection", d)
		}
	}
	if second.StartNS < first.StartNS+int64(250*time.Millisecond) {
		t.Errorf("second request started %v after the first, want after the first's answer", time.Duration(second.StartNS-first.StartNS))
	}
}

// TestUsersPastConnectionCapTakeTurns: with more thinking users than
// connections, no more than the cap send at once; the others wait their
// turn without failing, and the wait shows as send lag.
func TestUsersPastConnectionCapTakeTurns(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 400*time.Millisecond)
	small := &capacity{fds: 300, mem: 8 << 30} // 44 connections
	w := &memWriter{}
	y := `scenarios: {g: {service: gateway, stages: [{users: 200, duration: 2s}], spawn_rate: 1000, think: {uniform: [200ms, 400ms]}, mix: {models.list: 1}}}`
	info, err := Run(context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: mustProfile(t, y),
		Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), machine: small, resultWriter: w})
	if err != nil {
		t.Fatal(err)
	}
	if p := up.peak.Load(); p > 44 {
		t.Errorf("%d requests at the upstream at once, want at most the 44 connections", p)
	}
	if info.Requests < 150 || info.Errors > info.CutOff {
		t.Errorf("%d requests, %d errors (%d cut off): want every user sending, none failed", info.Requests, info.Errors, info.CutOff)
	}
	lagged := 0
	for _, r := range w.rows {
		if r.ErrorKind == "" && time.Duration(r.StartNS-r.IntendedNS) > 200*time.Millisecond {
			lagged++
		}
	}
	if lagged == 0 {
		t.Errorf("no row sent 200 ms after it was due: the wait for a turn should show as send lag")
	}
}
