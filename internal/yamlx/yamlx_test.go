package yamlx_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/analyze"
	"github.com/loadtape/loadtape/internal/yamlx"
	"github.com/loadtape/loadtape/proxy"
	"github.com/loadtape/loadtape/replay"
	"github.com/loadtape/loadtape/sim"
)

type doc struct {
	Name  string        `yaml:"name"`
	Count int           `yaml:"count"`
	Wait  time.Duration `yaml:"wait"`
	Items []struct {
		Key string `yaml:"key"`
	} `yaml:"items"`
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"name: a\nnmae: b\n", `f.yaml:2:1: unknown field "nmae"`},
		{"count: many\n", "f.yaml:1:8: cannot unmarshal string"},
		{"items:\n  - {key: a, kye: b}\n", `f.yaml:2:14: unknown field "kye"`},
		{"wait: soon\n", `f.yaml:1:7: time: invalid duration "soon"`},
		{"items: [\n", "f.yaml:1:"},
		// go-yaml v1.19.2 panics on these (found by fuzzing the rules and
		// targets parsers): an error, never a panic.
		{"redact: {headers:!0 00,000008: 000}#00000000000000000", "f.yaml"},
		{"acCeptance: 0.8\ntargets:\n !0 #0000000000000000000000000000000000000000", "f.yaml"},
	} {
		var d doc
		err := yamlx.Decode("f.yaml", []byte(tc.in), &d)
		var ye *yamlx.Error
		if !errors.As(err, &ye) || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q, want one line starting %q", tc.in, err, tc.want)
		}
	}
}

func TestPos(t *testing.T) {
	t.Parallel()
	d := yamlx.Parse("f.yaml", []byte("name: a\nitems:\n  - key: x\n  - {key: y}\nmix: {chat.completions: 1}\n"))
	for _, tc := range []struct {
		path      []any
		line, col int
	}{
		{[]any{"name"}, 1, 1},
		{[]any{"items", 1, "key"}, 4, 6},
		{[]any{"items", 0}, 3, 5},
		{[]any{"items", 7, "key"}, 2, 1}, // no such element: the longest part that exists
		{[]any{"mix", "chat.completions"}, 5, 7},
		{[]any{"nothing"}, 0, 0},
	} {
		if l, c := d.Pos(tc.path...); l != tc.line || c != tc.col {
			t.Errorf("Pos%v = %d:%d, want %d:%d", tc.path, l, c, tc.line, tc.col)
		}
	}
	if err := d.Errorf([]any{"name"}, "want %s", "b"); err.Error() != "f.yaml:1:1: want b" {
		t.Errorf("Errorf: %q", err)
	}
	if l, c := yamlx.Parse("f.yaml", []byte("[")).Pos("a"); l != 0 || c != 0 {
		t.Errorf("a file that does not parse has no positions, got %d:%d", l, c)
	}
}

// Every YAML schema loadtape reads, fed the same bytes: no panic, and an
// error is one line that names the file. The seed corpus holds a valid
// file of each schema.
func FuzzSchemas(f *testing.F) {
	f.Add(replay.BuiltinProfile())
	f.Add([]byte("session_header: X-Session-Id\nredact: {headers: [X-Key], query: [api_key]}\nrules:\n  - {match: {method: POST, path: /v1/*}, service: gateway, operation: chat}\n"))
	f.Add([]byte("time_scale: 0.1\ngateway: {batch_slots: 4, models: [{name: chat-7b, load: startup}]}\nrag: {db: {pool_size: 5}}\n"))
	f.Add([]byte("acceptance: 0.8\ntargets:\n  - {scenario: gateway, metric: p95, max: 2s}\n  - {scenario: rag, metric: error_rate, error_kind: vector_timeout, max: 0.1%}\n"))
	f.Add([]byte("redact: {headers:!0 00,000008: 000}#00000000000000000"))
	f.Add([]byte("acCeptance: 0.8\ntargets:\n !0 #0000000000000000000000000000000000000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		oneLine := func(schema string, err error) {
			if err != nil && (strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "fuzz.yaml")) {
				t.Errorf("%s: error %q: want one line naming fuzz.yaml", schema, err)
			}
		}
		p, err := replay.ParseProfile(b, "fuzz.yaml")
		oneLine("profile", err)
		if err == nil && len(p.Scenarios) == 0 {
			t.Error("profile without scenarios accepted")
		}
		_, err = proxy.ParseRules("fuzz.yaml", b)
		oneLine("rules", err)
		c, err := sim.ParseConfig("fuzz.yaml", b)
		oneLine("sim config", err)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Errorf("sim config accepted that Validate refuses: %v", verr)
			}
		}
		path := filepath.Join(t.TempDir(), "fuzz.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		specs, _, err := analyze.ReadTargets(path)
		oneLine("targets", err)
		for _, s := range specs {
			if err := s.Validate(); err != nil {
				t.Errorf("targets file accepted a target that does not validate: %v", err)
			}
		}
	})
}
