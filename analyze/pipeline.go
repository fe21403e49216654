package analyze

import (
	"fmt"
	"slices"

	"github.com/loadtape/loadtape/captures"
)

// build is the analysis, one step after another:
//
//  1. ingest: the collected rows become per-stage statistics (Stage) and
//     the facts only detectors read (stageFacts), resources included;
//     nothing changes them afterwards.
//  2. targets: every target against every stage, trustworthy or not (the
//     report marks the untrustworthy ones beside the verdict).
//  3. trust: per stage, whether the load generator drove it as intended,
//     and if not, why (judgeTrust).
//  4. curves: per scenario, the clean points of the throughput curve, its
//     knee and the model fits (fitCurve).
//  5. detectors: every registered detector over every scenario; each
//     returns findings and stage notes and changes nothing it reads.
//  6. link and rank: one capacity explanation per scenario (a tail that is
//     one operation's queue folded into its finding), GPU findings
//     linked to the targets other scenarios missed meanwhile, the most
//     important first.
//  7. the Summary: stage marks applied, scenario views for the figures.
func build(info *RunInfo, c *collector, samples []captures.Sample, specs []TargetSpec, acceptance float64) *Summary {
	pts := normalise(samples)
	stages, facts := ingest(info, c, pts)
	s := &Summary{
		Schema: SummarySchema, Estimator: Estimator,
		Run:    RunMeta{ID: info.ID, Started: info.Started, Ended: info.Ended, Interrupted: info.Interrupted, TimeScale: info.Scale(), LeftOut: info.LeftOut, IncludeFailed: includeFailed(info), Search: info.Search},
		Stages: stages,
	}
	s.Targets, s.Run.TargetsLeftOut = evaluateTargets(specs, acceptance, stages, info)
	scenarios := group(info, stages, facts, s.Targets)
	var found []Finding
	var marks []stageMark
	for _, sc := range scenarios {
		sc.trust = judgeTrust(sc)
		sc.curve = fitCurve(sc)
		for _, d := range detectors {
			r := d.detect(sc)
			found = append(found, r.findings...)
			marks = append(marks, r.marks...)
		}
	}
	found = keepMostSpecific(found)
	found = foldExplainedTails(found)
	linkConcurrentMisses(found, scenarios)
	rank(found)
	s.Findings = found
	if s.Findings == nil {
		s.Findings = []Finding{}
	}
	for _, sc := range scenarios {
		markStages(sc)
		s.Scenarios = append(s.Scenarios, sc.view())
	}
	for _, m := range marks {
		m.stage.Notes = append(m.stage.Notes, m.note)
	}
	s.Timeline = c.timelineOf(pts)
	s.Failures, s.Series = c.failuresOf(), c.seriesOf()
	return s
}

// stageFacts are what the detectors read of a stage besides its public
// statistics.
type stageFacts struct {
	inFlight  int32 // open mode: most requests in flight (queued or sending) at an arrival
	oomErrors int64
	oomSample string
	errDurs   map[string][]int64 // error kind → durations, for the timeout estimate
	little    littleCheck
	// overTime is the measured window in timeSlices equal slices, in
	// order: how latency and errors moved at the stage's constant load.
	overTime []timeSlice
}

// stageData is one stage as detectors see it: its statistics and facts.
// Detectors only read it.
type stageData struct {
	*Stage
	*stageFacts
}

// ingest finishes the collected stages, in run.json's order, with the
// resources sampled in their windows.
func ingest(info *RunInfo, c *collector, pts []point) ([]*Stage, []*stageFacts) {
	stages := c.finish()
	addResources(stages, pts, newAttribution(info))
	facts := make([]*stageFacts, len(stages))
	for i, st := range stages {
		acc := c.stages[stageKey{st.Scenario, int32(st.Stage)}]
		facts[i] = &stageFacts{inFlight: acc.activeMax, oomErrors: acc.oom, oomSample: acc.oomText,
			errDurs: acc.errDurs, little: acc.little(info.ThinkMean(st.Scenario), st), overTime: acc.overTime[:]}
	}
	return stages, facts
}

// scenarioCtx is what every detector looks at: one scenario's stages in
// order of users, its targets, and what the trust and curve steps made of
// them.
type scenarioCtx struct {
	name    string
	mode    string
	thinkS  float64 // mean think time after time scaling, seconds; -1 unknown
	workers int     // open mode's send limit, from run.json (0: not open or not known)
	p95Goal float64 // the scenario's p95 bound in ms, 0 when none
	stages  []stageData
	targets []TargetResult
	trust   []stageTrust // per stage, in the order of stages
	curve   curve
}

// group gathers each scenario's stages (by users) and targets.
func group(info *RunInfo, stages []*Stage, facts []*stageFacts, targets []TargetResult) []*scenarioCtx {
	var out []*scenarioCtx
	for _, name := range scenarioNames(stages) {
		sc := &scenarioCtx{name: name, thinkS: info.ThinkMean(name), workers: info.Profile.Scenarios[name].Workers}
		for i, st := range stages {
			if st.Scenario == name {
				sc.stages = append(sc.stages, stageData{st, facts[i]})
				sc.mode = st.Mode
			}
		}
		slices.SortStableFunc(sc.stages, func(a, b stageData) int { return a.Users - b.Users })
		for _, t := range targets {
			if t.Scenario == name {
				sc.targets = append(sc.targets, t)
				if t.Metric == "p95" && t.Operation == AllOps && t.Max {
					sc.p95Goal = t.Bound
				}
			}
		}
		out = append(out, sc)
	}
	return out
}

func scenarioNames(stages []*Stage) []string {
	var names []string
	for _, st := range stages {
		if !slices.Contains(names, st.Scenario) {
			names = append(names, st.Scenario)
		}
	}
	return names
}

// A detector looks at one scenario and returns what it found. It reads
// the scenario and changes nothing in it: what it has to say about a
// stage it returns as a mark.
type detector struct {
	name   string
	kinds  []kindSpec
	detect func(*scenarioCtx) detected
}

// detected is a detector's answer.
type detected struct {
	findings []Finding
	marks    []stageMark
}

// stageMark is a note a detector adds to a stage.
type stageMark struct {
	stage *Stage
	note  string
}

// kindSpec is how the link and rank step treats a finding kind.
type kindSpec struct {
	kind Kind
	rank int // lower first among findings of one severity
	// explains, when not 0, puts the kind among the explanations of a
	// scenario's throughput limit: one per scenario is kept, the lowest.
	explains int
	// namesCause: the kind names a cause of the scenario's latency of its
	// own, so that it is not listed as a coincidence beside a GPU finding.
	namesCause bool
}

// detectors and kindSpecs are filled by register, from the init function of
// each detector's file: adding a detector is adding a file.
var (
	detectors []detector
	kindSpecs = map[Kind]kindSpec{}
)

func register(d detector) {
	for _, k := range d.kinds {
		if _, dup := kindSpecs[k.kind]; dup {
			panic("analyze: finding kind " + string(k.kind) + " registered twice")
		}
		kindSpecs[k.kind] = k
	}
	detectors = append(detectors, d)
}

// found is a detected holding one finding, or none for nil.
func found(f *Finding) detected {
	if f == nil {
		return detected{}
	}
	return detected{findings: []Finding{*f}}
}

// keepMostSpecific keeps, per scenario, only the most specific explanation
// of a throughput limit: serialization, GPU saturation or a retrograde
// curve take the place of the generic throughput_plateau.
func keepMostSpecific(fs []Finding) []Finding {
	best := map[string]int{}
	for _, f := range fs {
		if e := kindSpecs[f.Kind].explains; e != 0 {
			if b, ok := best[f.Scenario]; !ok || e < b {
				best[f.Scenario] = e
			}
		}
	}
	return slices.DeleteFunc(fs, func(f Finding) bool {
		e := kindSpecs[f.Kind].explains
		return e != 0 && e != best[f.Scenario]
	})
}

// rank puts the bottleneck first: by severity, then the named causes
// before the generic shapes, and the load generator's own trouble last.
func rank(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if d := severityRank[a.Severity] - severityRank[b.Severity]; d != 0 {
			return d
		}
		return kindSpecs[a.Kind].rank - kindSpecs[b.Kind].rank
	})
}

var severityRank = map[Severity]int{SeverityHigh: 0, SeverityMedium: 1, SeverityLow: 2}

// markStages applies the trust step's verdicts to the scenario's stages.
func markStages(sc *scenarioCtx) {
	for i, st := range sc.stages {
		if tr := sc.trust[i]; !tr.ok() {
			st.Trustworthy = false
			st.Notes = append(st.Notes, "untrustworthy: the load generator did not keep up ("+tr.why()+")")
		}
	}
}

// view is the scenario's scalability view for the figures: the clean
// points and every other stage that measured something, by users.
func (sc *scenarioCtx) view() *Scenario {
	v := &Scenario{Name: sc.name, Mode: sc.mode, ThinkS: sc.thinkS, P95Goal: sc.p95Goal, USL: sc.curve.usl}
	v.Points = slices.Clone(sc.curve.clean)
	for i, st := range sc.stages {
		if !slices.ContainsFunc(v.Points, func(p Point) bool { return p.Stage == st.Stage.Stage }) && st.Operations[AllOps].Count > 0 {
			v.Points = append(v.Points, pointOf(st.Stage, sc.trust[i].ok()))
		}
	}
	slices.SortStableFunc(v.Points, func(a, b Point) int {
		switch {
		case a.Users < b.Users:
			return -1
		case a.Users > b.Users:
			return 1
		}
		return a.Stage - b.Stage
	})
	if sc.curve.cap.knee >= 0 && sc.curve.cap.plateau {
		v.KneeN = sc.kneeUsers()
	}
	return v
}

// stageOf is the scenario's stage numbered stage (its last when none is).
func (sc *scenarioCtx) stageOf(stage int) stageData {
	for _, st := range sc.stages {
		if st.Stage.Stage == stage {
			return st
		}
	}
	return sc.stages[len(sc.stages)-1]
}

// resourceByStage is a resource's mean per stage, keyed by users.
func (sc *scenarioCtx) resourceByStage(name string) map[string]float64 {
	out := map[string]float64{}
	for _, st := range sc.stages {
		if r, ok := st.Resources[name]; ok {
			out[fmt.Sprint(st.Users)] = r.Mean
		}
	}
	return out
}
