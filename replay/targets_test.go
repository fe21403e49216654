package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A profile whose targets analyze could not judge, or would judge wrongly,
// stops the run before its first request (the health check included), with
// one line of bad input naming the file, line and column.
func TestBadTargetsRefusedBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	const head = "scenarios:\n  gateway:\n    stages: [{users: 2, duration: 1s}]\n    mix: {chat.completions: 1}\n  chat:\n    service: gateway\n    mode: sessions\n    stages: [{users: 1, duration: 1s}]\ntargets:\n"
	cases := []struct{ name, targets, want string }{
		{"unknown metric", "  - {scenario: gateway, metric: p96, max: 2s}\n", "p.yaml:10:25: unknown target metric \"p96\""},
		{"negative bound", "  - {scenario: gateway, metric: p95, max: -2s}\n", "p.yaml:10:38: target gateway p95: bad target bound \"-2s\": want a bound of 0 or more"},
		{"rate bound as a duration", "  - {scenario: gateway, metric: rps, min: 2s}\n", "p.yaml:10:38: target gateway rps: bad target bound \"2s\": want a number of requests per second"},
		{"unknown scenario", "  - {scenario: gatewya, metric: p95, max: 2s}\n", "p.yaml:10:6: target 1: scenario \"gatewya\""},
		{"operation not in the mix", "  - {scenario: gateway, metric: p95, operation: models.list, max: 2s}\n", "p.yaml:10:38: target 1: operation \"models.list\" is not in scenario \"gateway\"'s mix"},
		{"operation not in the capture", "  - {scenario: chat, metric: p95, operation: chat.complete, max: 2s}\n", "p.yaml:10:35: target 1: operation \"chat.complete\" is not in the capture"},
		{"misspelt key", "  - {scenario: gateway, metric: p95, op: all, max: 2s}\n", "p.yaml:10:38: unknown field \"op\""},
		{"acceptance below 0", "  - {scenario: gateway, metric: p95, max: 2s}\nacceptance: -3\n", "p.yaml:11:1: acceptance -3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, 0)
			dir := t.TempDir()
			path := filepath.Join(dir, "p.yaml")
			if err := os.WriteFile(path, []byte(head+tc.targets), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), Options{ProfilePath: path, Exchanges: gatewayCapture(2, 6),
				Targets: map[string]string{"gateway": up.URL}, Out: filepath.Join(dir, "run")})
			if err == nil {
				t.Fatalf("Run accepted the profile; want %q", tc.want)
			}
			msg := strings.TrimPrefix(err.Error(), dir+string(filepath.Separator))
			if !IsBadInput(err) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q (bad input %v), want one line of bad input with %q", msg, IsBadInput(err), tc.want)
			}
			if n := up.hits.Load(); n != 0 {
				t.Errorf("%d requests reached the service before the profile was refused", n)
			}
			if _, err := os.Stat(filepath.Join(dir, "run", "run.json")); err == nil {
				t.Error("a refused run wrote run.json")
			}
		})
	}
}
