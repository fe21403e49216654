package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

func TestSessionsModeKeepsOrder(t *testing.T) {
	// Not parallel: timing-sensitive load on a 2-core machine.
	up := newUpstream(t, 0)
	prof := mustProfile(t, `
scenarios:
  s:
    service: gateway
    mode: sessions
    stages: [{users: 7, duration: 1200ms}]
    think: {constant: 2ms}
`)
	xs := gatewayCapture(3, 5)
	_, rows := runAndRead(t, context.Background(), Options{Exchanges: xs, Profile: prof,
		Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), Seed: 3})
	seqOf := map[string][2]int64{} // id → session index, seq
	for _, x := range xs {
		var s int64
		fmt.Sscanf(x.Session, "s%d", &s)
		seqOf[x.ID] = [2]int64{s, x.Seq}
	}
	byVU := map[int32][]captures.Result{}
	for _, r := range rows {
		byVU[r.VU] = append(byVU[r.VU], r)
	}
	if len(byVU) != 7 {
		t.Fatalf("%d users sent, want 7", len(byVU))
	}
	sessionsUsed := map[int64]bool{}
	for vu, rs := range byVU {
		sort.Slice(rs, func(i, j int) bool { return rs[i].StartNS < rs[j].StartNS })
		first := seqOf[rs[0].SourceID]
		sessionsUsed[first[0]] = true
		if first[1] != 0 {
			t.Errorf("vu %d starts at seq %d, want 0", vu, first[1])
		}
		for i, r := range rs {
			got := seqOf[r.SourceID]
			if got[0] != first[0] || got[1] != int64(i%5) {
				t.Fatalf("vu %d request %d replays %v, want session %d seq %d", vu, i, got, first[0], i%5)
			}
		}
		if len(rs) < 6 {
			t.Errorf("vu %d sent %d requests, want its session at least twice", vu, len(rs))
		}
	}
	if len(sessionsUsed) != 3 {
		t.Errorf("users cloned %d of the 3 sessions, want all", len(sessionsUsed))
	}
}

// TestShardsMakeTheWhole runs the same profile unsharded and as shards 1/2
// and 2/2: the shards' users are disjoint, together the unsharded set, and
// each user makes the same choices whichever shard runs it.
func TestShardsMakeTheWhole(t *testing.T) {
	// Not parallel: timing-sensitive load on a 2-core machine.
	prof := `
scenarios:
  g:
    service: gateway
    stages: [{users: 3, duration: 400ms}, {users: 9, duration: 500ms}]
    spawn_rate: 100
    think: {uniform: [5ms, 15ms]}
    mix: {chat.completions: 60, models.list: 30, health: 10}
`
	xs := gatewayCapture(4, 6)
	type key struct{ vu int32 }
	seqs := func(shard string) map[int32][]string {
		up := newUpstream(t, 0)
		_, rows := runAndRead(t, context.Background(), Options{Exchanges: xs, Profile: mustProfile(t, prof),
			Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), Seed: 11, Shard: shard})
		m := map[int32][]string{}
		for _, r := range rows {
			m[r.VU] = append(m[r.VU], r.Operation+" "+r.SourceID)
		}
		return m
	}
	whole, a, b := seqs(""), seqs("1/2"), seqs("2/2")
	if len(whole) != 9 || len(a)+len(b) != 9 {
		t.Fatalf("users: whole %d, shards %d+%d, want 9 = 5+4", len(whole), len(a), len(b))
	}
	for vu := range a {
		if _, dup := b[vu]; dup || vu%2 != 0 {
			t.Errorf("vu %d in shard 1/2 (dup in 2/2: %v)", vu, dup)
		}
	}
	compared := 0
	for _, shard := range []map[int32][]string{a, b} {
		for vu, got := range shard {
			want := whole[vu]
			n := min(len(got), len(want))
			compared += n
			for i := 0; i < n; i++ {
				if got[i] != want[i] {
					t.Fatalf("vu %d request %d: shard sent %q, unsharded %q", vu, i, got[i], want[i])
				}
			}
		}
	}
	if compared < 40 {
		t.Errorf("compared only %d requests", compared)
	}
}

func TestOpenModeRateAndDrops(t *testing.T) {
	// Not parallel: timing-sensitive load on a 2-core machine.
	up := newUpstream(t, 0)
	slow := newUpstream(t, 300*time.Millisecond)
	prof := mustProfile(t, `
scenarios:
  fast:
    service: gateway
    mode: open
    arrivals: constant
    stages: [{rate: 400, duration: 1s}]
    mix: {chat.completions: 1, models.list: 1}
  capped:
    service: slow
    mode: open
    stages: [{rate: 100, duration: 600ms}]
    max_in_flight: 5
    mix: {models.list: 1}
`)
	xs := gatewayCapture(2, 6)
	for _, x := range gatewayCapture(1, 3) {
		x.Service, x.ID = "slow", "slow-"+x.ID
		xs = append(xs, x)
	}
	_, rows := runAndRead(t, context.Background(), Options{Exchanges: xs, Profile: prof,
		Targets: map[string]string{"gateway": up.URL, "slow": slow.URL}, Out: t.TempDir(), Seed: 5})
	n := map[string]map[string]int{"fast": {}, "capped": {}}
	for _, r := range rows {
		n[r.Scenario][r.ErrorKind]++
		if r.VU != -1 {
			t.Fatalf("open-mode row with vu %d", r.VU)
		}
	}
	// Constant arrivals at 400/s for 1 s: exactly 400 rows, each sent or
	// (the last ones, on a loaded machine) cut off at the stage's end.
	if got := n["fast"][""] + n["fast"][runspec.ErrCutOff]; got != 400 || n["fast"][""] < 200 {
		t.Errorf("fast: %v at 400/s for 1s, want 400 rows, most of them successes", n["fast"])
	}
	c := n["capped"]
	if c[runspec.ErrDropped] == 0 || c[runspec.ErrDropped]+c[""]+c[runspec.ErrCutOff] < 30 {
		t.Errorf("capped: %v, want drops beyond max_in_flight and every arrival recorded", c)
	}
	if slow.peak.Load() > 5 {
		t.Errorf("slow upstream saw %d in flight, max_in_flight is 5", slow.peak.Load())
	}
}

func TestBadInputSendsNothing(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	good := `
scenarios:
  g:
    service: gateway
    stages: [{users: 1, duration: 1s}]
    mix: {chat.completions: 1}
`
	empty := t.TempDir()
	cases := []struct {
		name    string
		profile string
		opts    func(*Options)
		want    string
	}{
		{"mix operation missing lists what the capture has", strings.Replace(good, "chat.completions: 1", "chat.completions: 1, embeddings: 2", 1), nil,
			`"embeddings" is not in the capture of service "gateway" (it has: chat.completions, health, models.list)`},
		{"empty capture", good, func(o *Options) { o.Exchanges = nil; o.Captures = []string{empty} }, "no exchanges"},
		{"target without scheme", good, func(o *Options) { o.Targets = map[string]string{"gateway": "127.0.0.1:8000"} }, "want an http:// or https:// URL"},
		{"no target for the service", good, func(o *Options) { o.Targets = map[string]string{"rag": up.URL} }, "--target gateway=URL"},
		{"unknown scenario", good, func(o *Options) { o.Scenarios = []string{"nope"} }, `--scenario "nope"`},
		{"bad shard", good, func(o *Options) { o.Shard = "3/2" }, "--shard"},
		{"only truncated bodies", good, func(o *Options) {
			for i := range o.Exchanges {
				o.Exchanges[i].ReqTruncated = o.Exchanges[i].Operation == "chat.completions"
			}
		}, "truncated request body"},
		{"service missing from capture", strings.Replace(good, "service: gateway", "service: rag", 1), func(o *Options) { o.Targets["rag"] = up.URL }, `no exchanges of service "rag"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{Exchanges: gatewayCapture(1, 3), Profile: mustProfile(t, c.profile),
				Targets: map[string]string{"gateway": up.URL}, Out: filepath.Join(t.TempDir(), "run")}
			if c.opts != nil {
				c.opts(&opts)
			}
			_, err := Run(context.Background(), opts)
			if err == nil || !IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v (bad input: %v), want bad input containing %q", err, IsBadInput(err), c.want)
			}
			if _, serr := os.Stat(opts.Out); serr == nil {
				t.Errorf("run directory created for bad input")
			}
		})
	}
	if up.hits.Load() != 0 {
		t.Errorf("upstream got %d requests from bad input", up.hits.Load())
	}
}

func TestTargetDownStopsBeforeResults(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, 0)
	url := up.URL
	up.Close() // down
	out := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: mustProfile(t, `
scenarios: {g: {service: gateway, stages: [{users: 1, duration: 1s}], mix: {health: 1}}}`),
		Targets: map[string]string{"gateway": url}, Out: out})
	if !errors.Is(err, ErrTargetDown) || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("err %v, want ErrTargetDown naming gateway", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Error("results directory written for a run that never started")
	}
}

// TestInterruptCutsOff cancels a run mid-stage (a signal): requests in
// flight become cut_off rows, files are closed and run.json says
// interrupted; --max-run does the same on its own.
func TestInterruptCutsOff(t *testing.T) {
	t.Parallel()
	slow := newUpstream(t, 5*time.Second)
	prof := `
scenarios: {g: {service: gateway, stages: [{users: 4, duration: 1m}], mix: {models.list: 1}}}
targets: [{scenario: g, metric: p95, max: 2s}]
acceptance: 0.8
`
	for _, viaMaxRun := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		opts := Options{Exchanges: gatewayCapture(1, 3), Profile: mustProfile(t, prof),
			Targets: map[string]string{"gateway": slow.URL}, Out: t.TempDir(), Monitor: []string{"host"}, MonitorEvery: 100 * time.Millisecond}
		if viaMaxRun {
			opts.MaxRun = 400 * time.Millisecond
		} else {
			time.AfterFunc(400*time.Millisecond, cancel)
		}
		start := time.Now()
		info, rows := runAndRead(t, ctx, opts)
		cancel()
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("interrupted run took %v", el)
		}
		if !info.Interrupted || len(rows) != 4 {
			t.Fatalf("interrupted=%v rows=%d, want true and 4 cut-off rows", info.Interrupted, len(rows))
		}
		for _, r := range rows {
			if r.ErrorKind != runspec.ErrCutOff {
				t.Errorf("row %+v, want cut_off", r)
			}
		}
		var rj map[string]any
		b, err := os.ReadFile(filepath.Join(opts.Out, "run.json"))
		if err != nil || json.Unmarshal(b, &rj) != nil {
			t.Fatalf("run.json: %v", err)
		}
		if rj["interrupted"] != true || rj["shard"] != "1/1" || rj["profile"].(map[string]any)["acceptance"] != 0.8 {
			t.Errorf("run.json %s", b)
		}
		st := rj["stages"].([]any)[0].(map[string]any)
		if st["scenario"] != "g" || st["stage"] != 1.0 || st["users"] != 4.0 {
			t.Errorf("stage %v", st)
		}
		if m := rj["monitor"].([]any); len(m) != 1 || m[0].(map[string]any)["source"] != "host" {
			t.Errorf("monitor %v", m)
		}
		if ms, _ := filepath.Glob(filepath.Join(opts.Out, "samples-*.parquet")); len(ms) == 0 {
			t.Error("no samples file")
		}
		if left, _ := filepath.Glob(filepath.Join(opts.Out, "*.inprogress")); len(left) > 0 {
			t.Errorf("files left open: %v", left)
		}
	}
}

// TestOpenShardsMakeTheWhole: in open mode shard I/N sends arrivals
// i ≡ I−1 (mod N) of one seeded stream, so the shards' arrivals are disjoint
// and together the unsharded schedule, with the same intended times and
// choices.
func TestOpenShardsMakeTheWhole(t *testing.T) {
	t.Parallel()
	prof := `
scenarios:
  o:
    service: gateway
    mode: open
    stages: [{rate: 150, duration: 400ms}, {rate: 300, duration: 300ms}]
    mix: {chat.completions: 1, models.list: 1, health: 1}
`
	xs := gatewayCapture(3, 6)
	sched := func(shard string) map[string]string {
		up := newUpstream(t, 0)
		mw := &memWriter{}
		if _, err := Run(context.Background(), Options{Exchanges: xs, Profile: mustProfile(t, prof), Seed: 9, Shard: shard,
			Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), resultWriter: mw}); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, r := range mw.rows {
			m[fmt.Sprintf("%d/%d", r.Stage, r.Iteration)] = r.SourceID
		}
		return m
	}
	whole, a, b := sched(""), sched("1/2"), sched("2/2")
	if len(whole) < 100 || len(a)+len(b) != len(whole) {
		t.Fatalf("arrivals: whole %d, shards %d+%d", len(whole), len(a), len(b))
	}
	for _, sh := range []map[string]string{a, b} {
		for k, src := range sh {
			if whole[k] != src {
				t.Fatalf("arrival %s: shard sent %q, unsharded %q", k, src, whole[k])
			}
		}
	}
	for k := range a {
		if _, dup := b[k]; dup {
			t.Fatalf("arrival %s sent by both shards", k)
		}
	}
}
