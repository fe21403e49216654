package analyze

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/loadtape/loadtape/runspec"
)

func TestCheckShards(t *testing.T) {
	shard := func(s string) *RunInfo {
		return &RunInfo{ID: "r1", Seed: 7, TimeScale: 0.5, Shard: s, Scenarios: []string{"g"},
			Profile: runspec.Profile{Scenarios: map[string]runspec.Scenario{"g": {Service: "gateway", Mode: "closed",
				Stages: []runspec.ProfileStage{{Users: 8}}}}}}
	}
	whole := func(n int) []*RunInfo {
		var out []*RunInfo
		for i := 1; i <= n; i++ {
			out = append(out, shard(fmt.Sprintf("%d/%d", i, n)))
		}
		return out
	}
	dirsOf := func(infos []*RunInfo) []string {
		var d []string
		for i := range infos {
			d = append(d, fmt.Sprintf("run%d", i))
		}
		return d
	}
	check := func(infos []*RunInfo) error { return checkShards(dirsOf(infos), infos) }

	if err := check(whole(4)); err != nil {
		t.Errorf("4 of 4: %v", err)
	}
	if err := check([]*RunInfo{shard("")}); err != nil {
		t.Errorf("a run without a shard: %v", err)
	}
	if err := check([]*RunInfo{shard("1/1")}); err != nil {
		t.Errorf("1/1: %v", err)
	}
	// Order does not matter.
	w := whole(3)
	if err := check([]*RunInfo{w[2], w[0], w[1]}); err != nil {
		t.Errorf("shuffled: %v", err)
	}

	seedDiff := whole(2)
	seedDiff[1].Seed = 8
	profDiff := whole(2)
	profDiff[1].Profile.Scenarios["g"] = runspec.Scenario{Service: "gateway", Mode: "closed", Stages: []runspec.ProfileStage{{Users: 9}}}
	idDiff := whole(2)
	idDiff[1].ID = "r2"
	scaleDiff := whole(2)
	scaleDiff[0].TimeScale = 1
	scenDiff := whole(2)
	scenDiff[1].Scenarios = []string{"g", "h"}

	for name, c := range map[string]struct {
		infos []*RunInfo
		want  []string
	}{
		"one missing":    {append(whole(4)[:2:2], whole(4)[3]), []string{"run r1: shard 3/4 missing", "1/4 in run0", "4/4 in run2"}},
		"two missing":    {whole(4)[1:3], []string{"shards 1/4, 4/4 missing"}},
		"only one of 4":  {[]*RunInfo{shard("2/4")}, []string{"shards 1/4, 3/4, 4/4 missing"}},
		"duplicated":     {append(whole(2), shard("2/2")), []string{"shard 2/2 given twice: run1/run.json and run2/run.json"}},
		"mixed N":        {[]*RunInfo{shard("1/2"), shard("2/3")}, []string{"run1/run.json (shard 2/3)", "one of 3 shards", "run0/run.json (shard 1/2)"}},
		"seed":           {seedDiff, []string{"run1/run.json (shard 2/2): seed 8 differs from 7"}},
		"profile":        {profDiff, []string{"run1/run.json (shard 2/2): the profile differs"}},
		"run id":         {idDiff, []string{`run id "r2" differs from "r1"`}},
		"time scale":     {scaleDiff, []string{"time scale 0.5 differs from 1"}},
		"scenarios":      {scenDiff, []string{"scenarios [g h] differ from [g]"}},
		"bad shard text": {[]*RunInfo{shard("3/2")}, []string{`run0/run.json: shard "3/2": want I/N`}},
	} {
		err := check(c.infos)
		if err == nil || !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %v, want bad input", name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", name, err, w)
			}
		}
	}
}
