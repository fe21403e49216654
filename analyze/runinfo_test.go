package analyze

import (
	"encoding/json"
	"testing"
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
