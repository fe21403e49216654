package demo

import (
	"testing"
	"time"

	"github.com/loadtape/loadtape/replay"
)

func TestQuickStagesEndTogether(t *testing.T) {
	t.Parallel()
	p, err := replay.ParseProfile(replay.BuiltinProfile(), "builtin")
	if err != nil {
		t.Fatal(err)
	}
	full := planLength(p, 1)
	before := map[string][]replay.Duration{}
	for name, sc := range p.Scenarios {
		for _, st := range sc.Stages {
			before[name] = append(before[name], st.Duration)
		}
	}
	shortenStages(p, QuickStages)
	goal := full / QuickStages
	if got := planLength(p, 1); got < goal-time.Millisecond || got > goal+time.Millisecond {
		t.Fatalf("quick run lasts %v, want the longest scenario a third as long: %v", got, goal)
	}
	for name, sc := range p.Scenarios {
		// Every scenario is as long as the quick run, each stage keeping
		// its share of its scenario.
		var d replay.Duration
		for _, st := range sc.Stages {
			d += st.Duration
		}
		if diff := d.D() - goal; diff < -time.Millisecond || diff > time.Millisecond {
			t.Errorf("%s lasts %v, want %v", name, d.D(), goal)
		}
		f := float64(sc.Stages[0].Duration) / float64(before[name][0])
		for i, st := range sc.Stages {
			if g := float64(st.Duration) / float64(before[name][i]); g < f*0.999 || g > f*1.001 {
				t.Errorf("%s stage %d shortened %.3f×, stage 0 %.3f×", name, i, g, f)
			}
		}
	}
}
