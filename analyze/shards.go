package analyze

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/loadtape/loadtape/runspec"
)

// checkShards wants the run directories given to make one whole run: the
// same run id, seed, time scale, scenarios and profile in every run.json,
// one count of shards N, and each shard 1..N exactly once. A run file
// without a shard (an older writer) is shard 1/1. Every failure is bad
// input that names the run files and shards concerned.
func checkShards(dirs []string, infos []*RunInfo) error {
	file := func(i int) string { return filepath.Join(dirs[i], runspec.FileName) }
	type place struct{ i, n int }
	shards := make([]place, len(infos))
	for k, ri := range infos {
		i, n, err := parseShardOf(ri.Shard)
		if err != nil {
			return badInputf("%s: shard %q: want I/N with 1 <= I <= N", file(k), ri.Shard)
		}
		shards[k] = place{i, n}
	}
	first := infos[0]
	prof, _ := json.Marshal(first.Profile)
	for k, ri := range infos[1:] {
		k++
		var diff string
		switch {
		case ri.ID != first.ID:
			diff = fmt.Sprintf("run id %q differs from %q", ri.ID, first.ID)
		case shards[k].n != shards[0].n:
			diff = fmt.Sprintf("shard %d/%d is one of %d shards, shard %d/%d one of %d", shards[k].i, shards[k].n, shards[k].n, shards[0].i, shards[0].n, shards[0].n)
		case ri.Seed != first.Seed:
			diff = fmt.Sprintf("seed %d differs from %d", ri.Seed, first.Seed)
		case scaleOf(ri) != scaleOf(first):
			diff = fmt.Sprintf("time scale %v differs from %v", scaleOf(ri), scaleOf(first))
		case !slices.Equal(ri.Scenarios, first.Scenarios):
			diff = fmt.Sprintf("scenarios %v differ from %v", ri.Scenarios, first.Scenarios)
		default:
			if p, _ := json.Marshal(ri.Profile); !bytes.Equal(p, prof) {
				diff = "the profile differs"
			}
		}
		if diff != "" {
			return badInputf("%s (shard %d/%d): %s in %s (shard %d/%d): analyze takes the shards of one run", file(k), shards[k].i, shards[k].n, diff, file(0), shards[0].i, shards[0].n)
		}
	}
	n := shards[0].n
	seen := make([]int, n+1) // shard → index in dirs + 1
	for k, s := range shards {
		if j := seen[s.i]; j > 0 {
			return badInputf("shard %d/%d given twice: %s and %s", s.i, n, file(j-1), file(k))
		}
		seen[s.i] = k + 1
	}
	var missing, given []string
	for i := 1; i <= n; i++ {
		if seen[i] == 0 {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		} else {
			given = append(given, fmt.Sprintf("%d/%d in %s", i, n, dirs[seen[i]-1]))
		}
	}
	if len(missing) > 0 {
		word := "shard"
		if len(missing) > 1 {
			word = "shards"
		}
		return badInputf("run %s: %s %s missing (given: %s): analyze takes every shard of a run", first.ID, word, strings.Join(missing, ", "), strings.Join(given, ", "))
	}
	return nil
}

func parseShardOf(s string) (i, n int, err error) {
	if s == "" {
		return 1, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("bad shard %q", s)
	}
	return i, n, nil
}

func scaleOf(ri *RunInfo) float64 {
	if ri.TimeScale == 0 {
		return 1
	}
	return ri.TimeScale
}
