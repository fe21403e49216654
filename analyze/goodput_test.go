package analyze

import (
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// goodput and good_share are target metrics: the good requests per
// second and their share, judged against a min bound like rps; without
// goodput bounds there is nothing to judge.
func TestGoodputTargets(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := int64(time.Millisecond)
	var rows []captures.Result
	for i := range 40 { // one request every 250 ms; every fourth misses the TTFT bound
		ttft := 100 * ms
		if i%4 == 0 {
			ttft = 900 * ms
		}
		rows = append(rows, captures.Result{Scenario: "llm", Stage: 1, VU: int32(i % 8), Operation: "chat.completions",
			StartNS: t0.UnixNano() + int64(i)*250*ms, TTFTNS: ttft, DurationNS: ttft + 200*ms, Status: 200,
			ChunkOffsetsNS: []int64{ttft, ttft + 100*ms, ttft + 200*ms, ttft + 200*ms}, CompletionTokens: 3})
	}
	judge := func(g *runspec.Goodput, metric, min string) TargetResult {
		info := oneStage(t0, g, 1)
		st := collectStage(t, info, rows)
		res, _ := evaluateTargets([]TargetSpec{{Scenario: "llm", Metric: metric, Min: runspec.Limit(min)}}, 0.8, []*Stage{st}, info)
		return res[0]
	}
	bounds := &runspec.Goodput{TTFT: runspec.Duration(500 * time.Millisecond)}
	for _, c := range []struct {
		metric, min string
		value       float64
		verdict     Verdict
	}{
		{"good_share", "70%", 75, Pass},
		{"good_share", "90%", 75, Acceptable}, // 90 × 0.8 = 72 ≤ 75
		{"goodput", "3", 3, Pass},             // 30 good over the 10 s window
		{"goodput", "5", 3, Fail},
	} {
		r := judge(bounds, c.metric, c.min)
		if r.Value == nil || *r.Value != c.value || r.Verdict != c.verdict || r.Unit != runspec.UnitOf(c.metric) {
			t.Errorf("%s min %s: %+v, want value %v, %s", c.metric, c.min, r, c.value, c.verdict)
		}
	}
	if r := judge(nil, "good_share", "90%"); r.Verdict != Fail || r.Value != nil || r.Note == "" {
		t.Errorf("good_share without goodput bounds: %+v, want a fail saying there is no measurement", r)
	}
}
