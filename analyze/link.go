package analyze

import (
	"fmt"
	"slices"
	"strings"
)

// linkConcurrentMisses adds to a GPU finding the latency targets other
// scenarios missed while that GPU was under pressure: RAG queries slow
// (p95 over 3 s), say, because the model reads their context on the CPU
// while the gateway fills the GPU's memory. The analyser cannot see which
// services share a GPU, so it says what coincided and lets the reader
// judge; it claims no cause.
func linkConcurrentMisses(out []Finding, scenarios []*scenarioCtx) {
	byName := map[string]*scenarioCtx{}
	for _, sc := range scenarios {
		byName[sc.name] = sc
	}
	for i := range out {
		f := &out[i]
		if f.Kind != KindGPUMemoryPressure && f.Kind != KindGPUSaturation {
			continue
		}
		var windows [][2]int64 // when this scenario's GPU was under pressure
		stages := byName[f.Scenario].stages
		base := memBaseline(stages)
		for _, st := range stages {
			if gpuPressed(st, f.Kind, base) {
				windows = append(windows, [2]int64{st.startNS, st.endNS})
			}
		}
		var misses []string
		for _, sc := range scenarios {
			// A scenario whose own finding names a cause for its latency
			// (MCP's serialized tools, say) is not listed.
			if sc.name == f.Scenario || slices.ContainsFunc(out, func(o Finding) bool { return o.Scenario == sc.name && kindSpecs[o.Kind].namesCause }) {
				continue
			}
			for _, t := range sc.targets {
				if t.Unit != "ms" || !t.Max || t.Verdict == Pass || t.Stage == nil || t.Value == nil {
					continue
				}
				st := sc.stageOf(*t.Stage)
				if !overlaps(windows, st.startNS, st.endNS) {
					continue
				}
				misses = append(misses, fmt.Sprintf("%s (%.0f ms against %.0f ms at %d users)", t.Name(), *t.Value, t.Bound, st.Users))
			}
		}
		if len(misses) == 0 {
			continue
		}
		switch ev := f.Evidence.(type) {
		case *CapacityEvidence:
			ev.ConcurrentTargetMisses = misses
		case *GPUMemoryEvidence:
			ev.ConcurrentTargetMisses = misses
		}
		f.Summary += fmt.Sprintf(" In the same minutes %s missed: %s. If those services share this GPU (a model reading context, an embedder), this pressure is likely their cause too.",
			plural(len(misses), "another scenario", "other scenarios"), strings.Join(misses, "; "))
	}
}

func overlaps(windows [][2]int64, start, end int64) bool {
	for _, w := range windows {
		if start < w[1] && w[0] < end {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// foldExplainedTails leaves out a scenario's tail_amplification whose tail
// is one operation's when a capacity finding of the same scenario names
// that operation (one serialized while the others scale, say): the tail
// is that operation's queue, which the capacity finding names as the
// cause. The capacity finding's summary says the tail is its doing.
func foldExplainedTails(fs []Finding) []Finding {
	cause := map[string]int{} // scenario + operation → index of its capacity finding
	for i, f := range fs {
		if kindSpecs[f.Kind].explains != 0 && f.Operation != AllOps {
			cause[f.Scenario+"\x00"+f.Operation] = i
		}
	}
	var drop []int
	for i, f := range fs {
		ev, ok := f.Evidence.(*TailEvidence)
		if f.Kind != KindTailAmplification || !ok || ev.Operation == "" {
			continue
		}
		j, ok := cause[f.Scenario+"\x00"+ev.Operation]
		if !ok {
			continue
		}
		last := len(ev.Users) - 1
		fs[j].Summary += fmt.Sprintf(" It is also the scenario's tail: p99/p50 went from %.1f at %g users to %.1f at %g, and it makes up %.0f %% of the slowest 1 %%.",
			ev.P99OverP50[0], ev.Users[0], ev.P99OverP50[last], ev.Users[last], *ev.OperationSharePct)
		drop = append(drop, i)
	}
	out := fs[:0]
	for i, f := range fs {
		if !slices.Contains(drop, i) {
			out = append(out, f)
		}
	}
	return out
}
