package replay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/internal/keeptarget"
	"github.com/loadtape/loadtape/runspec"
)

// TestOutRefusedUnlessForce: a non-empty --out is refused before anything
// is sent; with Force the earlier run's files are removed first, so every
// result row afterwards is the new run's, and other files stay.
func TestOutRefusedUnlessForce(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	prof := mustProfile(t, `
scenarios: {g: {service: gateway, stages: [{users: 2, duration: 300ms}], think: {constant: 20ms}, mix: {models.list: 1}}}
`)
	out := t.TempDir()
	opts := Options{Exchanges: gatewayCapture(1, 3), Profile: prof, Targets: map[string]string{"gateway": up.URL}, Out: out}
	first, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	hits := up.hits.Load()
	_, err = Run(context.Background(), opts)
	if !IsBadInput(err) || !strings.Contains(err.Error(), "--out") || !strings.Contains(err.Error(), "--force") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("second run into %s: err %v, want one-line bad input naming --out and --force", out, err)
	}
	if up.hits.Load() != hits {
		t.Errorf("a refused run sent %d requests", up.hits.Load()-hits)
	}
	opts.Force = true
	second, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	rows := readResults(t, out)
	if len(rows) == 0 || int64(len(rows)) != second.Requests {
		t.Fatalf("%d rows in %s, the second run wrote %d", len(rows), out, second.Requests)
	}
	for _, r := range rows {
		if r.Run != second.ID {
			t.Fatalf("row of run %q left beside run %q (first was %q)", r.Run, second.ID, first.ID)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "run.json"))
	if err != nil || !strings.Contains(string(b), second.ID) {
		t.Errorf("run.json is not the second run's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "notes.txt")); err != nil {
		t.Errorf("--force removed a file that is not a run's: %v", err)
	}
}

// TestMaxRunEndsOnTime: --max-run ends a run whose stage lasts a minute
// within a second of its limit, requests in flight cut off, and says so.
func TestMaxRunEndsOnTime(t *testing.T) {
	t.Parallel()
	slow := newUpstream(t, 30*time.Second)
	prof := mustProfile(t, `
scenarios:
  g: {service: gateway, stages: [{users: 50, duration: 1m}], spawn_rate: 100, mix: {models.list: 1}}
  o: {service: gateway, mode: open, stages: [{rate: 50, duration: 1m}], mix: {models.list: 1}}
`)
	const limit = 1500 * time.Millisecond
	start := time.Now()
	info, rows := runAndRead(t, context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: prof,
		Targets: map[string]string{"gateway": slow.URL}, Out: t.TempDir(), MaxRun: limit})
	el := time.Since(start)
	// The promise is a second; a busy shared machine gets one more before
	// this fails (the bug it guards against overran by seconds).
	if el > limit+2*time.Second {
		t.Errorf("--max-run %v: the run took %v", limit, el)
	}
	if info.EndedBy != EndedMaxRun || !info.Interrupted || !strings.Contains(info.EndReason, "--max-run 1.5s") {
		t.Errorf("ended by %q (%q), interrupted %v; want max_run", info.EndedBy, info.EndReason, info.Interrupted)
	}
	if len(rows) < 20 {
		t.Fatalf("%d rows, want the users' and arrivals' requests cut off", len(rows))
	}
	for _, r := range rows {
		if r.ErrorKind != runspec.ErrCutOff {
			t.Fatalf("row %+v, want cut_off", r)
		}
	}
}

// TestUserCountLimit: stages this machine cannot hold are refused before
// any request, naming the number it can hold; one that fits runs.
func TestUserCountLimit(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	small := &capacity{fds: 300, mem: 8 << 30} // 300 descriptors hold 44 users
	run := func(y string, c *capacity) error {
		_, err := Run(context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: mustProfile(t, y),
			Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), machine: c})
		return err
	}
	stage := `scenarios: {g: {service: gateway, stages: [{users: 1, duration: 100ms}, {users: %d, duration: 100ms}], mix: {models.list: 1}}}`
	err := run(fmt.Sprintf(stage, 45), small)
	if !IsBadInput(err) || !strings.Contains(err.Error(), `scenario "g" stage 2: 45 users`) || !strings.Contains(err.Error(), "can hold: 44") || !strings.Contains(err.Error(), "open files limit 300") {
		t.Errorf("45 users with 300 descriptors: %v", err)
	}
	if err := run(fmt.Sprintf(stage, 44), small); err != nil {
		t.Errorf("44 users with 300 descriptors: %v", err)
	}
	lowMem := &capacity{fds: 1 << 20, mem: memReserve + 10*userMemory}
	if err := run(fmt.Sprintf(stage, 11), lowMem); !IsBadInput(err) || !strings.Contains(err.Error(), "can hold: 10 (") || !strings.Contains(err.Error(), "KiB per user") {
		t.Errorf("11 users with memory for 10: %v", err)
	}
	two := `
scenarios:
  a: {service: gateway, stages: [{users: 30, duration: 100ms}], mix: {models.list: 1}}
  b: {service: gateway, stages: [{users: 30, duration: 100ms}], mix: {models.list: 1}}
`
	if err := run(two, small); !IsBadInput(err) || !strings.Contains(err.Error(), "60 users at once (a 30, b 30)") {
		t.Errorf("two scenarios of 30 side by side with room for 44: %v", err)
	}
	// An MCP user with a standalone GET stream holds two connections.
	mcp := []captures.Exchange{
		{ID: "i", Service: "mcp", Session: "m", Seq: 0, Operation: "mcp.initialize", RPCMethod: "initialize", Method: "POST", Path: "/mcp", Status: 200,
			ReqBody: []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)},
		{ID: "g", Service: "mcp", Session: "m", Seq: 1, Operation: "GET /mcp", Method: "GET", Path: "/mcp", Status: 200,
			ReqHeaders: []captures.Header{{Name: "Accept", Value: "text/event-stream"}}},
	}
	_, err = Run(context.Background(), Options{Exchanges: mcp, Out: t.TempDir(), machine: small, Targets: map[string]string{"mcp": up.URL},
		Profile: mustProfile(t, `scenarios: {m: {service: mcp, mode: sessions, stages: [{users: 23, duration: 100ms}]}}`)})
	if !IsBadInput(err) || !strings.Contains(err.Error(), "can hold: 22") || !strings.Contains(err.Error(), "2 connections per user") {
		t.Errorf("23 MCP users with streams and 300 descriptors: %v", err)
	}
	// This machine, whatever it is, cannot hold ten million users.
	hits := up.hits.Load()
	err = run(fmt.Sprintf(stage, 10_000_000), nil)
	if !IsBadInput(err) || !strings.Contains(err.Error(), "10000000 users") {
		t.Errorf("10,000,000 users: %v", err)
	}
	if up.hits.Load() != hits {
		t.Errorf("a refused run sent %d requests", up.hits.Load()-hits)
	}
}

// credentialCapture is a gateway capture whose recorder redacted a bearer
// token, an api_key query parameter and api_key/token fields of the JSON
// body (one nested, one in an array), as the proxy writes them.
func credentialCapture() []captures.Exchange {
	var xs []captures.Exchange
	for i := 0; i < 6; i++ {
		xs = append(xs, captures.Exchange{
			ID: fmt.Sprintf("c%d", i), Service: "gateway", Session: "s", Seq: int64(i), StartNS: int64(i) * int64(time.Second),
			Operation: "chat.completions", Method: "POST", Path: "/v1/chat/completions", Status: 200,
			Query: "api_key=" + "redacted%3A0123456789abcdef" + "&v=2",
			ReqHeaders: []captures.Header{{Name: "Content-Type", Value: "application/json"},
				{Name: "Authorization", Value: "redacted:fedcba9876543210"}},
			ReqBody: []byte(`{"model":"m","api_key":"redacted:00112233aabbccdd","auth":{"token":"redacted\u003a44556677eeff0011"},"tokens":["redacted:8899aabbccddeeff","ok"],"messages":[{"role":"user","content":"hi"}]}`),
		})
	}
	return xs
}

// TestCredentialsNeverSent: a run whose redacted credentials no flag
// supplies is refused with the list of what is missing; given them, the
// target receives the live values and no placeholder anywhere (headers,
// URL, body); allowed to go without, the fields are left out, never sent.
func TestCredentialsNeverSent(t *testing.T) {
	t.Parallel()
	prof := `
scenarios: {g: {service: gateway, stages: [{users: 2, duration: 400ms}], think: {constant: 20ms}, mix: {chat.completions: 1}}}
`
	run := func(rc *keeptarget.Target, o Options) error {
		o.Exchanges, o.Profile, o.Out = credentialCapture(), mustProfile(t, prof), t.TempDir()
		o.Targets = map[string]string{"gateway": rc.URL}
		_, err := Run(context.Background(), o)
		return err
	}

	rc := keeptarget.Start(t, 0)
	err := run(rc, Options{})
	if !errors.Is(err, ErrMissingCredentials) || !IsBadInput(err) {
		t.Fatalf("no credentials given: err %v, want ErrMissingCredentials", err)
	}
	for _, want := range []string{"header Authorization (6 requests of gateway): --header 'Authorization: ...'",
		"query parameter api_key", "body field api_key", "body field token", "body field tokens", "--secret api_key=...", "--allow-missing-credentials"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if n := len(rc.Received()); n > 1 { // the health probe at most
		t.Errorf("a refused run sent %d requests", n)
	}

	rc = keeptarget.Start(t, 0)
	err = run(rc, Options{Headers: http.Header{"Authorization": {"Bearer live-token"}},
		Secrets: map[string]string{"api_key": "live-key", "token": "live-tok", "tokens": "live-toks"}})
	if err != nil {
		t.Fatal(err)
	}
	got := rc.Received()
	if len(got) < 4 {
		t.Fatalf("%d requests received", len(got))
	}
	for _, r := range got {
		if captures.ContainsPlaceholder(r) || strings.Contains(r, "redacted") {
			t.Fatalf("a placeholder was sent:\n%s", r)
		}
		if strings.HasPrefix(r, "GET /health") {
			continue
		}
		for _, want := range []string{"api_key=live-key&v=2", "Authorization: Bearer live-token", `"api_key":"live-key"`,
			`"auth":{"token":"live-tok"}`, `"tokens":["live-toks","ok"]`, `{"model":"m",`} {
			if !strings.Contains(r, want) {
				t.Fatalf("request lacks %q:\n%s", want, r)
			}
		}
	}

	rc = keeptarget.Start(t, 0)
	if err := run(rc, Options{AllowMissingCredentials: true}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rc.Received() {
		if captures.ContainsPlaceholder(r) || strings.Contains(r, "redacted") || strings.Contains(r, "Authorization") || strings.Contains(r, "api_key") {
			t.Fatalf("sent without credentials, the request still names one:\n%s", r)
		}
		if !strings.HasPrefix(r, "GET /health") && (!strings.Contains(r, `"auth":{}`) || !strings.Contains(r, `"tokens":["ok"]`) || !strings.Contains(r, "?v=2")) {
			t.Fatalf("request lost more than its credentials:\n%s", r)
		}
	}

	if err := run(keeptarget.Start(t, 0), Options{Headers: http.Header{"Authorization": {"redacted:fedcba9876543210"}}, AllowMissingCredentials: true}); !IsBadInput(err) {
		t.Errorf("a placeholder given as --header: %v, want bad input", err)
	}
}

// TestArrivalsAsRecorded: arrivals as_recorded at speed 2 are due at half
// the recorded offsets from the scenario's start, in recorded order, and
// the recording starts again one median gap after its last exchange.
func TestArrivalsAsRecorded(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	offsets := []time.Duration{0, 100 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var xs []captures.Exchange
	for i, off := range offsets {
		op, path := "models.list", "/v1/models"
		if i%2 == 1 {
			op, path = "health", "/health"
		}
		// Stored out of order: the timeline sorts by recorded start.
		xs = append([]captures.Exchange{{ID: fmt.Sprintf("x%d", i), Service: "gateway", Operation: op, Method: "GET", Path: path,
			StartNS: t0 + int64(off), DurationNS: int64(time.Millisecond), Status: 200}}, xs...)
	}
	prof := mustProfile(t, `
scenarios:
  r:
    service: gateway
    mode: open
    arrivals: as_recorded
    speed: 2
    stages: [{duration: 200ms}, {duration: 400ms}]
`)
	mw := &memWriter{}
	out := t.TempDir()
	info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up.URL},
		Out: out, resultWriter: mw})
	if err != nil {
		t.Fatal(err)
	}
	rf, err := runspec.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if sc := rf.Profile.Scenarios["r"]; sc.Arrivals != ArrivalsAsRecorded || sc.Speed != 2 {
		t.Errorf("run.json has arrivals %q speed %v, want as_recorded and 2", sc.Arrivals, sc.Speed)
	}
	start := info.Stages[0].Start
	// One pass at speed 2 lasts 250 ms plus the median of its gaps (25, 50,
	// 50, 125 ms: 50 ms) = 300 ms; the 600 ms of stages hold arrivals 0..9
	// (the last due at 550 ms).
	period := 300 * time.Millisecond
	want := map[int64]time.Duration{}
	for i := int64(0); ; i++ {
		at := time.Duration(i/5)*period + offsets[i%5]/2
		if at >= 600*time.Millisecond {
			break
		}
		want[i] = at
	}
	if len(mw.rows) != len(want) {
		t.Fatalf("%d arrivals, want %d", len(mw.rows), len(want))
	}
	sent := 0
	for _, r := range mw.rows {
		w, ok := want[r.Iteration]
		if !ok {
			t.Fatalf("arrival %d was not in the recording's schedule", r.Iteration)
		}
		if got := time.Duration(r.IntendedNS - start.UnixNano()); got < w-time.Microsecond || got > w+time.Microsecond {
			t.Errorf("arrival %d due at %v, want %v (recorded offset / speed)", r.Iteration, got, w)
		}
		if src := fmt.Sprintf("x%d", r.Iteration%5); r.SourceID != src {
			t.Errorf("arrival %d replays %s, want %s", r.Iteration, r.SourceID, src)
		}
		if stage := int32(1 + btoi(w >= 200*time.Millisecond)); r.Stage != stage {
			t.Errorf("arrival %d at %v in stage %d, want %d", r.Iteration, w, r.Stage, stage)
		}
		switch r.ErrorKind {
		case "":
			sent++
		case runspec.ErrCutOff:
			// A busy machine can reach an arrival only after its stage
			// ended: it is written, with its intended time, as cut off.
		default:
			t.Errorf("arrival %d: %s %s", r.Iteration, r.ErrorKind, r.Error)
		}
	}
	if sent < len(want)/2 {
		t.Errorf("%d of %d arrivals sent", sent, len(want))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMaxRunCountsFromStartAt: a shard that waits for --start-at gets its
// whole --max-run of load after that instant.
func TestMaxRunCountsFromStartAt(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	prof := mustProfile(t, `scenarios: {g: {service: gateway, stages: [{users: 2, duration: 1m}], think: {constant: 20ms}, mix: {models.list: 1}}}`)
	at := time.Now().Add(700 * time.Millisecond)
	info, err := Run(context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: prof, Targets: map[string]string{"gateway": up.URL},
		Out: t.TempDir(), StartAt: at, MaxRun: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if info.EndedBy != EndedMaxRun || len(info.Stages) != 1 {
		t.Fatalf("ended by %q with %d stages", info.EndedBy, len(info.Stages))
	}
	// The stage runs from --start-at to --start-at + 1 s; counted from
	// the call it would have had 300 ms.
	if d := info.Stages[0].End.Sub(info.Stages[0].Start); d < 900*time.Millisecond {
		t.Errorf("the stage ran %v of its --max-run 1s after --start-at", d)
	}
}
