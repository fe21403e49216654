package analyze

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/replay"
)

func TestThinkSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want float64
		ok   bool
	}{
		{`{"uniform": ["2s", "5s"]}`, 3.5, true},
		{`{"exponential": "3s"}`, 3, true},
		{`{"constant": "500ms"}`, 0.5, true},
		{`{"uniform": [2000000000, 6000000000]}`, 4, true}, // time.Duration as nanoseconds
		{`{}`, 0, true},
		{`{"as_recorded": true}`, 0, false},
		{`"1s"`, 1, true},
	} {
		got, ok := thinkSeconds(json.RawMessage(tc.raw))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: got %v %v, want %v %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
	ri := &RunInfo{TimeScale: 0.05, Profile: ProfileInfo{Scenarios: map[string]ScenarioInfo{"g": {Think: json.RawMessage(`{"uniform": ["2s", "5s"]}`)}}}}
	if got := ri.thinkMean("g"); got < 0.1749 || got > 0.1751 {
		t.Errorf("think scaled by 0.05: %v, want 0.175", got)
	}
}

// replay refuses unknown target keys before a run (its targetKeys); every
// key a TargetSpec reads must be one it accepts, or a valid target would
// be refused there.
func TestReplayAcceptsEveryTargetKey(t *testing.T) {
	t.Parallel()
	var keys []string
	rt := reflect.TypeFor[TargetSpec]()
	for i := range rt.NumField() {
		keys = append(keys, strings.Split(rt.Field(i).Tag.Get("yaml"), ",")[0])
	}
	values := map[string]string{"scenario": "g", "metric": "p95", "operation": "a", "users": "1", "stage": "1", "error_kind": "timeout", "max": "1s", "min": "1"}
	var target []string
	for _, k := range keys {
		v, ok := values[k]
		if !ok {
			t.Fatalf("TargetSpec key %q: give it a value here", k)
		}
		target = append(target, k+": "+v)
	}
	profile := "scenarios:\n  g:\n    stages: [{users: 1, duration: 1s}]\n    mix: {a: 1}\ntargets:\n  - {" + strings.Join(target, ", ") + "}\n"
	if _, err := replay.ParseProfile([]byte(profile), "p.yaml"); err != nil {
		t.Errorf("replay refuses a target with every TargetSpec key: %v", err)
	}
}
