package har_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/har"
	"github.com/loadtape/loadtape/internal/capturetest"
	"github.com/loadtape/loadtape/replay"
	"github.com/loadtape/loadtape/runspec"
	"github.com/loadtape/loadtape/sim"
)

// TestImportedHARReplaysAgainstSim: the browser archive's gateway traffic,
// imported, given a profile by `profile init --from` and replayed against
// the simulated gateway, runs without a single failure.
// Not parallel: load against the sim on a 2-core machine.
func TestImportedHARReplaysAgainstSim(t *testing.T) {
	data, err := os.ReadFile("testdata/chromium.har")
	if err != nil {
		t.Fatal(err)
	}
	var f har.File
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	// The chat UI's calls to its gateway, on the model the sim serves.
	var keep []har.Entry
	for _, e := range f.Log.Entries {
		switch {
		case e.Response.Status != 200:
		case strings.HasSuffix(e.Request.URL, "/v1/models"), strings.HasSuffix(e.Request.URL, "/v1/chat/completions"):
			if e.Request.PostData != nil {
				e.Request.PostData.Text = strings.ReplaceAll(e.Request.PostData.Text, "gpt-4o-mini", "chat-7b")
				e.Request.BodySize = int64(len(e.Request.PostData.Text)) // a shorter text than bodySize reads as cut
			}
			keep = append(keep, e)
		case strings.HasSuffix(e.Request.URL, "/healthz"):
			e.Request.URL = strings.TrimSuffix(e.Request.URL, "z")
			keep = append(keep, e)
		}
	}
	if len(keep) != 4 {
		t.Fatalf("kept %d entries, want models, two chats and health", len(keep))
	}
	f.Log.Entries = keep
	b, _ := json.Marshal(f)
	harFile := filepath.Join(t.TempDir(), "gateway.har")
	os.WriteFile(harFile, b, 0o644)
	capDir := t.TempDir()
	if _, err := har.Import([]string{harFile}, har.ImportOptions{Service: "gateway", Out: capDir}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	suite := startSim(t, ctx)
	// The browser's credentials were redacted when imported.
	replayOnGateway(t, ctx, capDir, suite.URLs()["gateway"], 4, http.Header{"Authorization": {"Bearer sim"}, "Cookie": {"session=sim"}})
}

// startSim starts the simulated suite, healthy and at a small time scale,
// and closes it when the test ends.
func startSim(t *testing.T, ctx context.Context) *sim.Suite {
	t.Helper()
	cfg := sim.HealthyConfig()
	cfg.TimeScale = 0.02
	suite, err := sim.Start(ctx, cfg, sim.Addrs{Gateway: "127.0.0.1:0", RAG: "127.0.0.1:0", MCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { suite.Close() })
	return suite
}

// replayOnGateway gives the gateway capture in capDir a profile, as
// `profile init --from` does, with users users for 2 s, replays it against
// gateway with headers set on every request, and fails the test on any
// failed request or when chats, model lists or health checks were not
// replayed.
func replayOnGateway(t *testing.T, ctx context.Context, capDir, gateway string, users int, headers http.Header) {
	t.Helper()
	y, err := replay.ProfileFromCaptures([]string{capDir}, replay.GenOptions{Stages: []replay.Stage{{Users: users, Duration: replay.Duration(2 * time.Second)}}})
	if err != nil {
		t.Fatal(err)
	}
	prof, err := replay.ParseProfile(y, "generated.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	// The recorded pauses are seconds long; a shorter think keeps the test short.
	prof.Scenarios["gateway"].Think = replay.Think{Constant: replay.Duration(20 * time.Millisecond)}
	out := filepath.Join(t.TempDir(), "run")
	info, err := replay.Run(ctx, replay.Options{
		Captures: []string{capDir}, Profile: prof, Targets: map[string]string{"gateway": gateway}, Out: out, Seed: 1, Headers: headers,
	})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, res := range capturetest.Read[captures.Result](t, out) {
		ops[res.Operation]++
		if res.ErrorKind != "" && res.ErrorKind != runspec.ErrCutOff {
			t.Errorf("%s failed: %s %s", res.Operation, res.ErrorKind, res.Error)
		}
	}
	t.Logf("%d requests: %v", info.Requests, ops)
	if ops["chat.completions"] == 0 || ops["models.list"] == 0 || ops["health"] == 0 {
		t.Errorf("operations replayed %v, want chats, model lists and health checks", ops)
	}
}
