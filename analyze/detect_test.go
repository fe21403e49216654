package analyze

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Kind)+"/"+f.Scenario)
	}
	slices.Sort(out)
	return out
}

func describe(s *Summary) string {
	var b strings.Builder
	for _, sc := range s.Scenarios {
		for _, p := range sc.Points {
			fmt.Fprintf(&b, "  %s N=%g X=%.1f R=%.1fms p50=%.1f p99=%.1f err=%.3f trust=%v\n", sc.Name, p.Users, p.X, p.RMS, p.P50, p.P99, p.ErrorRate, p.Trustworthy)
		}
	}
	for _, st := range s.Stages {
		fmt.Fprintf(&b, "  stage %d users %d res=%v notes=%v\n", st.Stage, st.Users, st.Resources[ResGPUUtil], st.Notes)
	}
	for _, f := range s.Findings {
		fmt.Fprintf(&b, "  finding %s: %s %v\n", f.Kind, f.Summary, f.EvidenceMap())
	}
	return b.String()
}

func analyseModel(t *testing.T, m model, targets []TargetSpec) *Summary {
	t.Helper()
	info, rows, samples := simulate(m, testSeed)
	s, err := Summarize(info, rows, samples, targets, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// modelCase is a known queueing model and the findings it must raise.
type modelCase struct {
	name string
	m    model
	want []string
}

// queueingCases are the known models of every detector; the golden test
// pins their summaries too.
func queueingCases() []modelCase {
	oom := healthy
	oom.Users = []int{1, 10, 50, 100}
	oom.Fail = func(r *rand.Rand, users int) (string, string) {
		if users >= 50 && r.Float64() < 0.2 {
			return runspec.ErrHTTP5xx, `HTTP 500: {"error": "CUDA out of memory. Tried to allocate 20.00 MiB"}`
		}
		return "", ""
	}
	memFull := healthy
	memFull.GPUMem = func(users int) float64 { return 80 + float64(users) }
	reserved := healthy // vLLM's gpu_memory_utilization=0.96: full from the start, flat
	reserved.GPUMem = func(int) float64 { return 96 }
	kvFull := healthy
	kvFull.KVCache = func(users int) float64 { return min(1, float64(users)/18) }
	vector := healthy
	vector.Name = "rag"
	vector.Fail = func(r *rand.Rand, _ int) (string, string) {
		if r.Float64() < 0.01 {
			return runspec.ErrVectorTimeout, "qdrant: Timeout error: search took too long"
		}
		return "", ""
	}
	timingOut := func(share float64) model { // steady client-side timeouts, no onset
		m := healthy
		m.Fail = func(r *rand.Rand, _ int) (string, string) {
			if r.Float64() < share {
				return runspec.ErrTimeout, "request timeout after 60s"
			}
			return "", ""
		}
		return m
	}
	tail := healthy
	tail.Users = []int{1, 4, 10, 20}
	tail.Service = func(r *rand.Rand, _, users int) time.Duration {
		if r.Float64() < 0.002*float64(users) {
			return time.Second
		}
		return 40*time.Millisecond + time.Duration(r.ExpFloat64()*float64(5*time.Millisecond))
	}
	lagging := lagsAt10(healthy)
	slowGen := healthy
	slowGen.RealThink = 320 * time.Millisecond // the users think longer than the profile says: fewer busy than intended
	sandbox := healthy
	sandbox.Name = "mcp"
	sandbox.Fail = func(r *rand.Rand, _ int) (string, string) {
		if r.Float64() < 0.002 {
			return runspec.ErrSandboxViolation, "read outside the sandbox: /etc/passwd"
		}
		return "", ""
	}
	return []modelCase{
		{"a healthy wide server has no bottleneck", healthy, nil},
		{"a single worker serializes", serialized, []string{"serialization/mcp"}},
		{"a pool with a wait timeout runs out", pool, []string{"pool_exhaustion/rag"}},
		{"a server whose work grows with concurrency is retrograde", retrograde, []string{"retrograde/retro"}},
		{"throughput that falls from its peak is retrograde, not serialization, however small the one-user latency", quadratic, []string{"retrograde/quad"}},
		{"a batching server on a busy GPU saturates it", gpuBound, []string{"gpu_saturation/gateway"}},
		{"a CPU-bound server with its GPU at 25 % plateaus, not GPU saturation", cpuBound, []string{"throughput_plateau/gateway"}},
		{"CUDA out-of-memory errors are GPU memory pressure", oom, []string{"gpu_memory_pressure/gateway"}},
		{"GPU memory rising over 95 % is pressure", memFull, []string{"gpu_memory_pressure/gateway"}},
		{"GPU memory reserved at 96 % from the start is not", reserved, nil},
		{"a full KV cache is pressure", kvFull, []string{"gpu_memory_pressure/gateway"}},
		{"vector-store timeouts over 0.1 %", vector, []string{"timeouts/rag"}},
		{"request timeouts over the 1 % error bound", timingOut(0.03), []string{"timeouts/gateway"}},
		{"request timeouts under it", timingOut(0.003), nil},
		{"a tail that grows with users", tail, []string{"tail_amplification/gateway"}},
		{"send lag marks the load generator saturated", lagging, []string{"load_generator_saturated/gateway"}},
		{"Little's law off marks the load generator saturated", slowGen, []string{"load_generator_saturated/gateway"}},
		{"a sandbox escape", sandbox, []string{"sandbox_violation/mcp"}},
	}
}

// Every detector on a known queueing model: the right kind, and no other.
func TestDetectorsOnQueueingModels(t *testing.T) {
	t.Parallel()
	for _, tc := range queueingCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := analyseModel(t, tc.m, nil)
			if got := kinds(s.Findings); !slices.Equal(got, tc.want) {
				t.Errorf("findings %v, want %v\n%s", got, tc.want, describe(s))
			}
			for _, f := range s.Findings {
				if f.Summary == "" || f.Action == "" || len(f.EvidenceMap()) == 0 {
					t.Errorf("%s: want summary, action and evidence, got %+v", f.Kind, f)
				}
			}
		})
	}
}

// The serialized model's effective parallelism is about one and the
// CPU-bound model's about its eight slots.
func TestEffectiveParallelism(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m      model
		lo, hi float64
	}{{serialized, 0.7, 1.4}, {cpuBound, 5.5, 10}} {
		s := analyseModel(t, tc.m, nil)
		if len(s.Findings) != 1 {
			t.Fatalf("%s: findings %v", tc.m.Name, kinds(s.Findings))
		}
		got := s.Findings[0].Evidence.(*CapacityEvidence).EffectiveParallelism
		if got < tc.lo || got > tc.hi {
			t.Errorf("%s: effective parallelism %.2f, want in [%g, %g]", tc.m.Name, got, tc.lo, tc.hi)
		}
	}
}

// A saturated GPU with the host's CPU near its limit too says so; with the
// CPU idle it does not (measured on an H200: testdata/gpu/check.sh).
func TestGPUSaturationNamesBusyHostCPU(t *testing.T) {
	t.Parallel()
	busyHost := gpuBound
	busyHost.HostCPU = func(users int) float64 { return min(99, 6*float64(users)) }
	for _, tc := range []struct {
		m    model
		note bool
	}{{gpuBound, false}, {busyHost, true}} {
		s := analyseModel(t, tc.m, nil)
		if got := kinds(s.Findings); !slices.Equal(got, []string{"gpu_saturation/gateway"}) {
			t.Fatalf("findings %v, want gpu_saturation\n%s", got, describe(s))
		}
		f := s.Findings[0]
		cpu := f.Evidence.(*CapacityEvidence).CPUUtilMeanPct != nil
		if named := strings.Contains(f.Summary, "host CPU"); named != tc.note || cpu != tc.note {
			t.Errorf("host CPU busy %v: summary names it %v, evidence has it %v: %s", tc.note, named, cpu, f.Summary)
		}
	}
}

// The RAG scenario must not be charged with the gateway's GPU: scraped
// samples belong only to the scenario whose service shares host:port.
func TestPromSamplesAttributedByHostPort(t *testing.T) {
	t.Parallel()
	rag := cpuBound
	rag.Name = "rag"
	info, rows, samples := simulate(rag, 3)
	samples = slices.DeleteFunc(samples, func(s captures.Sample) bool { return s.Metric == "gpu_util" })
	info.Targets = map[string]string{"rag": "http://127.0.0.1:8002", "gateway": "http://localhost:8000"}
	info.Profile.Scenarios["gateway"] = ScenarioInfo{Service: "gateway"}
	// The gateway's memory rises with load to 98.3 % (a rise, not a
	// reservation: detectGPUMemoryPressure).
	used := []float64{5000, 5300, 5600, 5800, 5900}
	for si, st := range info.Stages {
		start, _ := parseTime(st.Start)
		for i := range 80 {
			t := start.UnixNano() + int64(i)*int64(250*time.Millisecond)
			samples = append(samples,
				captures.Sample{TNS: t, Source: "prom", Device: "http://127.0.0.1:8000/metrics", Metric: `DCGM_FI_DEV_GPU_UTIL{gpu="0"}`, Value: 99},
				captures.Sample{TNS: t, Source: "prom", Device: "http://127.0.0.1:8000/metrics", Metric: `DCGM_FI_DEV_FB_USED{gpu="0"}`, Value: used[si]},
				captures.Sample{TNS: t, Source: "prom", Device: "http://127.0.0.1:8000/metrics", Metric: `DCGM_FI_DEV_FB_FREE{gpu="0"}`, Value: 6000 - used[si]})
		}
	}
	s, err := Summarize(info, rows, samples, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(s.Findings), []string{"throughput_plateau/rag"}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v\n%s", got, want, describe(s))
	}
	if _, ok := s.Stages[0].Resources[ResGPUUtil]; ok {
		t.Errorf("rag stage has the gateway's gpu_util: %v", s.Stages[0].Resources)
	}
	// The same samples scraped from the RAG service's own port are its GPU.
	for i := range samples {
		if samples[i].Source == "prom" {
			samples[i].Device = "http://127.0.0.1:8002/metrics"
		}
	}
	s, err = Summarize(info, rows, samples, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(s.Findings), []string{"gpu_memory_pressure/rag", "gpu_saturation/rag"}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v\n%s", got, want, describe(s))
	}
	if m := s.Stages[len(s.Stages)-1].Resources[ResGPUMemPct]; m.Max < 98 || m.Max > 99 {
		t.Errorf("gpu_mem_pct from DCGM FB_USED/(USED+FREE): %v, want 98.3", m)
	}
}

// The demo's runs are short and time-compressed: 10 s stages of a few
// hundred requests. The detectors must hold there too, whatever the seed.
func TestDetectorsOnShortStages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m    model
		want []string
	}{
		{healthy, nil},
		{serialized, []string{"serialization/mcp"}},
		{pool, []string{"pool_exhaustion/rag"}},
		{gpuBound, []string{"gpu_saturation/gateway"}},
		{cpuBound, []string{"throughput_plateau/gateway"}},
	} {
		m := tc.m
		m.StageLen = 10 * time.Second
		for seed := uint64(1); seed <= 5; seed++ {
			info, rows, samples := simulate(m, seed)
			s, err := Summarize(info, rows, samples, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(s.Findings); !slices.Equal(got, tc.want) {
				t.Errorf("%s seed %d: findings %v, want %v\n%s", m.Name, seed, got, tc.want, describe(s))
			}
		}
	}
}

// A replayer that counts users still waiting for a later stage reports
// more active users than the stage runs; Little's law must not take that
// for a lagging generator.
func TestLittleIgnoresInflatedActiveUsers(t *testing.T) {
	t.Parallel()
	info, rows, samples := simulate(healthy, 5)
	for i := range rows {
		rows[i].ActiveUsers = 20 // the last stage's users, from the start
	}
	s, err := Summarize(info, rows, samples, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Findings) != 0 {
		t.Errorf("findings %v, want none\n%s", kinds(s.Findings), describe(s))
	}
}

// A scenario with fewer than three user counts cannot show a capacity
// finding; its first stage says so instead of staying silent.
func TestTooFewUserCountsSaysSo(t *testing.T) {
	t.Parallel()
	two := serialized
	two.Users = []int{5, 20}
	for _, tc := range []struct {
		m    model
		note bool
	}{{two, true}, {serialized, false}} {
		s := analyseModel(t, tc.m, nil)
		got := strings.Contains(strings.Join(s.Stages[0].Notes, " "), "need three")
		if got != tc.note {
			t.Errorf("users %v: note %v, want %v: %q", tc.m.Users, got, tc.note, s.Stages[0].Notes)
		}
	}
}

// A bottleneck across scenarios: RAG slows while the gateway's GPU is under
// memory pressure. The gateway's finding names the RAG target missed in
// the same minutes, only a miss in those minutes, and not a scenario whose
// own capacity finding explains it.
func TestGPUFindingNamesConcurrentMisses(t *testing.T) {
	t.Parallel()
	gw := healthy
	gw.GPUMem = func(users int) float64 { return 80 + float64(users) } // ≥ 95 % at 20 users only
	slowAt := func(users int) model {
		m := healthy
		m.Name = "rag"
		m.Service = func(r *rand.Rand, _, u int) time.Duration {
			if u == users {
				return 400 * time.Millisecond
			}
			return 40 * time.Millisecond
		}
		return m
	}
	serial := serialized
	serial.Name, serial.Users = "rag", healthy.Users
	// 96 % reserved from the start, out of memory at 20 users only: the
	// reserved stages are not pressure, so a miss at 5 users is not linked.
	reservedOOM := healthy
	reservedOOM.GPUMem = func(int) float64 { return 96 }
	reservedOOM.Fail = func(r *rand.Rand, users int) (string, string) {
		if users == 20 && r.Float64() < 0.2 {
			return runspec.ErrHTTP5xx, `HTTP 500: {"error": "CUDA out of memory"}`
		}
		return "", ""
	}
	for _, tc := range []struct {
		gw, other model
		linked    bool
	}{{gw, slowAt(20), true}, {gw, slowAt(5), false}, {gw, serial, false}, {reservedOOM, slowAt(5), false}, {reservedOOM, slowAt(20), true}} {
		info, rows, samples := simulate(tc.gw, 1)
		rInfo, rRows, rSamples := simulate(tc.other, 2)
		for i := range rRows {
			rRows[i].Run = info.ID
		}
		info.Stages = append(info.Stages, rInfo.Stages...)
		info.Profile.Scenarios["rag"] = rInfo.Profile.Scenarios["rag"]
		info.Targets["rag"] = rInfo.Targets["rag"]
		targets := []TargetSpec{{Scenario: "rag", Metric: "p95", Max: "200ms"}}
		s, err := Summarize(info, append(rows, rRows...), append(samples, rSamples...), targets, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var gpu *Finding
		for i, f := range s.Findings {
			if f.Kind == KindGPUMemoryPressure && f.Scenario == "gateway" {
				gpu = &s.Findings[i]
			}
		}
		if gpu == nil {
			t.Fatalf("no gpu_memory_pressure on the gateway: %v\n%s", kinds(s.Findings), describe(s))
		}
		linked := len(gpu.Evidence.(*GPUMemoryEvidence).ConcurrentTargetMisses) > 0
		if linked != tc.linked || strings.Contains(gpu.Summary, "rag p95") != tc.linked {
			t.Errorf("%v: linked %v, want %v: %s %v", kinds(s.Findings), linked, tc.linked, gpu.Summary, gpu.Evidence)
		}
	}
}

// In open mode, send lag with every worker busy names `workers` as the
// limit, not the replayer's CPU.
func TestOpenModeLagNamesWorkers(t *testing.T) {
	t.Parallel()
	lagging := lagsAt10(healthy)
	for _, tc := range []struct {
		workers int
		named   bool
	}{{8, true}, {64, false}, {0, false}} {
		info, rows, samples := simulate(lagging, testSeed)
		sc := info.Profile.Scenarios["gateway"]
		sc.Mode, sc.Workers = "open", tc.workers // in flight per arrival: the users, up to 20
		info.Profile.Scenarios["gateway"] = sc
		s, err := Summarize(info, rows, samples, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Findings) != 1 || s.Findings[0].Kind != KindLoadGenSaturated {
			t.Fatalf("workers %d: findings %v, want load_generator_saturated\n%s", tc.workers, kinds(s.Findings), describe(s))
		}
		if named := strings.Contains(s.Findings[0].Action, "raise `workers`"); named != tc.named {
			t.Errorf("workers %d: action names workers %v, want %v: %s", tc.workers, named, tc.named, s.Findings[0].Action)
		}
	}
}

// When one operation's latency grows with users and the others' do not,
// the capacity finding names that operation; with one operation, or all
// growing, it stays on the scenario as a whole.
func TestCapacityNamesTheOneSlowOperation(t *testing.T) {
	t.Parallel()
	serialOp := laneModel(0.3, 1, 60*time.Millisecond) // 30 % of requests share one server
	serialOp.StageLen = 20 * time.Second
	for _, tc := range []struct {
		name string
		m    model
		op   string
		kind Kind
	}{
		{"one operation serialized while the other scales", serialOp, "slow", KindSerialization},
		{"a single-operation scenario", serialized, AllOps, KindSerialization},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			info, rows, samples := simulate(tc.m, seed)
			s, err := Summarize(info, rows, samples, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			var capacity *Finding
			for i, f := range s.Findings {
				if e := kindSpecs[f.Kind].explains; e != 0 {
					capacity = &s.Findings[i]
				}
			}
			if capacity == nil {
				t.Fatalf("%s seed %d: no capacity finding: %v\n%s", tc.name, seed, kinds(s.Findings), describe(s))
			}
			if capacity.Kind != tc.kind {
				t.Errorf("%s seed %d: %s, want %s: %s", tc.name, seed, capacity.Kind, tc.kind, capacity.Summary)
			}
			if capacity.Operation != tc.op {
				t.Errorf("%s seed %d: %s names operation %q, want %q: %s", tc.name, seed, capacity.Kind, capacity.Operation, tc.op, capacity.Summary)
			}
			ev := capacity.Evidence.(*CapacityEvidence)
			if g := ev.OperationLatencyGrowth; (len(g) > 0) != (tc.op != AllOps) {
				t.Errorf("%s seed %d: operation growth %v", tc.name, seed, g)
			}
			// The slow operation's own curve is one server's.
			if tc.op != AllOps && !(ev.OperationModel == ModelSingle || ev.OperationModel == ModelC && ev.OperationModelParams["c"] <= serialMaxC) {
				t.Errorf("%s seed %d: operation model %s %v, want one server", tc.name, seed, ev.OperationModel, ev.OperationModelParams)
			}
		}
	}
}

// A stage's timeouts are over their bound only beyond chance: one timeout
// in 70 requests is not evidence against a 1 % bound, 20 in 1,000 is.
func TestTimeoutsBeyondNoise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, count int64
		bound    float64
		stages   int
		want     bool
	}{
		{0, 100, 1, 4, false},
		{1, 70, 1, 4, false},
		{3, 150, 1, 4, false}, // 2 %, but a 1 % service shows 3 of 150 one time in five
		{20, 1000, 1, 4, true},
		{41, 1360, 1, 4, true},
		{2, 100, 0.1, 1, true}, // the vector store's 0.1 %: 2 of 100 is not luck
		{1, 10, 0, 4, true},    // a bound of zero: any timeout is over it
	} {
		if got := beyondNoise(tc.n, tc.count, tc.bound, tc.stages); got != tc.want {
			t.Errorf("%d of %d against %g %% over %d stages: beyond noise %v, want %v", tc.n, tc.count, tc.bound, tc.stages, got, tc.want)
		}
	}
}

// lagsAt10 is m with its requests sent 40 ms late at 10 users, as a
// replayer short of CPU sends them, and on time elsewhere.
func lagsAt10(m model) model {
	m.Lag = func(users int) time.Duration {
		if users == 10 {
			return 40 * time.Millisecond
		}
		return 0
	}
	return m
}
