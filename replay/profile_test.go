package replay

import (
	"strings"
	"testing"
	"time"
)

func TestBuiltinProfileParses(t *testing.T) {
	t.Parallel()
	p, err := ParseProfile(BuiltinProfile(), "built-in profile")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"gateway": {1, 10, 50, 100, 100}, "rag": {1, 5, 25, 50}, "mcp": {1, 5, 20}}
	for name, users := range want {
		s := p.Scenarios[name]
		if s == nil {
			t.Fatalf("scenario %s missing", name)
		}
		if len(s.Stages) != len(users) {
			t.Fatalf("%s: %d stages, want %d", name, len(s.Stages), len(users))
		}
		for i, u := range users {
			if s.Stages[i].Users != u {
				t.Errorf("%s stage %d: users %d, want %d", name, i+1, s.Stages[i].Users, u)
			}
		}
		if s.Stages[0].Duration.D() != 2*time.Minute || s.Stages[0].Name != "baseline" {
			t.Errorf("%s: first stage %+v, want the 2-minute baseline", name, s.Stages[0])
		}
	}
	if g := p.Scenarios["gateway"]; g.Mix["chat.completions"] != 70 || g.Mix["models.list"] != 20 || g.Mix["health"] != 10 {
		t.Errorf("gateway mix %v", g.Mix)
	}
	if g := p.Scenarios["gateway"]; g.Stages[4].Duration.D() != 15*time.Minute || g.Think.Uniform[1].D() != 5*time.Second {
		t.Errorf("gateway stress/think wrong: %+v %+v", g.Stages[4], g.Think)
	}
	m := p.Scenarios["mcp"].Mix
	if m["mcp.tools.call/read_file"]+m["mcp.tools.call/write_file"] != 40 || m["mcp.tools.call/git_status"]+m["mcp.tools.call/git_log"] != 40 || m[SandboxProbe] == 0 {
		t.Errorf("mcp mix %v", m)
	}
	if p.Acceptance != 0.8 || len(p.Targets) != 11 || p.Classify[0].Kind != "db_connection" {
		t.Errorf("targets/acceptance/classify: %v %v %v", p.Targets, p.Acceptance, p.Classify)
	}
}

func TestParseProfileErrors(t *testing.T) {
	t.Parallel()
	const tp = "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\ntargets:\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field names its line", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\n    thinkk: {constant: 1s}\n", "p.yaml:5:5: unknown field \"thinkk\""},
		{"unknown stage field", "scenarios:\n  g:\n    stages:\n      - {users: 1, duration: 1s, user: 3}\n    mix: {a: 1}\n", "p.yaml:4:34: unknown field \"user\""},
		{"zero weight", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 0}\n", "weight"},
		{"negative weight", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: -2}\n", "want > 0"},
		{"bad duration", "scenarios:\n  g:\n    stages: [{users: 1, duration: five}]\n    mix: {a: 1}\n", "duration"},
		{"open without rate", "scenarios:\n  g:\n    mode: open\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\n", "rate"},
		{"bad mode", "scenarios:\n  g:\n    mode: wild\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\n", "mode"},
		{"two thinks", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    think: {constant: 1s, exponential: 2s}\n    mix: {a: 1}\n", "only one"},
		{"no mix", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n", "mix"},
		{"no scenarios", "classify: []\n", "no scenarios"},
		{"misspelt target key", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\ntargets:\n  - {scenario: g, metric: p95, op: a, max: 1s}\n", `unknown field "op"`},
		{"target of no scenario", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\ntargets:\n  - {scenario: gg, metric: p95, max: 1s}\n", `scenario "gg" is not in the profile`},
		{"unknown target metric", tp + "  - {scenario: g, metric: p96, max: 1s}\n", `unknown target metric "p96"`},
		{"negative bound", tp + "  - {scenario: g, metric: p95, max: -1s}\n", "a bound of 0 or more"},
		{"latency bound in percent", tp + "  - {scenario: g, metric: p95, max: 5%}\n", "want a duration"},
		{"error rate over 100", tp + "  - {scenario: g, metric: error_rate, max: 120%}\n", "from 0% to 100%"},
		{"two bounds", tp + "  - {scenario: g, metric: rps, min: 1, max: 3}\n", "exactly one of max and min"},
		{"no bound", tp + "  - {scenario: g, metric: rps}\n", "exactly one of max and min"},
		{"bound not a scalar", tp + "  - {scenario: g, metric: rps, min: [1]}\n", "p.yaml:6:37: bound [1]: want a number or a string"},
		{"operation not in mix", tp + "  - {scenario: g, metric: p95, operation: b, max: 1s}\n", `operation "b" is not in scenario "g"'s mix`},
		{"error kind nobody assigns", tp + "  - {scenario: g, metric: count, error_kind: db_conection, max: 0}\n", `error_kind "db_conection"`},
		{"error kind on a latency", tp + "  - {scenario: g, metric: p95, error_kind: timeout, max: 1s}\n", "error_kind applies to error_rate and count"},
		{"negative acceptance", tp + "  - {scenario: g, metric: p95, max: 1s}\nacceptance: -3\n", "(0, 1]"},
		{"acceptance over 1", tp + "  - {scenario: g, metric: p95, max: 1s}\nacceptance: 80\n", "(0, 1]"},
		{"classify without kind", "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\nclassify:\n  - {body: x}\n", "kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseProfile([]byte(c.yaml), "p.yaml")
			if err == nil {
				t.Fatalf("no error, want one containing %q", c.want)
			}
			if !IsBadInput(err) {
				t.Errorf("error %v is not bad input", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "p.yaml") {
				t.Errorf("error %q, want it to name p.yaml and contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func FuzzParseProfile(f *testing.F) {
	f.Add(BuiltinProfile())
	f.Add([]byte("scenarios: {g: {stages: [{users: 1, duration: 1s}], mix: {a: 1}}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b, "fuzz")
		if err == nil && len(p.Scenarios) == 0 {
			t.Fatal("accepted a profile without scenarios")
		}
	})
}
