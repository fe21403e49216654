package diagnose

import (
	"fmt"
	"time"
)

const ms = time.Millisecond

// Catalog is every planted target of the benchmark, in the order it runs.
// Service and think times vary within each family so that no detector
// threshold is met by one lucky shape; user counts are chosen per target
// so that the planted limit is reached inside the run and the load stays
// within what one small machine can send (a few hundred requests a
// second).
// Each stage lasts about ten times the top stage's latency or more:
// requests still running when the last stage ends are cut off and not
// counted, so a shorter last stage would understate its throughput, a
// fall the server does not have.
func Catalog() []Target {
	var ts []Target
	add := func(t Target) { ts = append(ts, t) }

	// One request at a time: throughput flat at 1/service.
	for _, c := range []struct {
		service, think time.Duration
		users          []int
		stage          time.Duration
	}{
		{5 * ms, 0, []int{1, 2, 4, 8, 16}, 2 * time.Second},
		{10 * ms, 20 * ms, []int{1, 2, 4, 8, 16}, 2 * time.Second},
		{20 * ms, 0, []int{1, 2, 4, 8, 12}, 2500 * ms},
		{50 * ms, 100 * ms, []int{1, 2, 4, 6, 8}, 3 * time.Second},
		{100 * ms, 0, []int{1, 2, 3, 4, 5}, 4500 * ms},
	} {
		add(Target{Name: fmt.Sprintf("single-%s-think%s", c.service, c.think), Family: "single",
			Planted: KindSerialization, Users: c.users, Stage: c.stage, Think: c.think,
			Design: fmt.Sprintf("one request at a time, %s each", c.service),
			New:    func() Behaviour { return Single(c.service) }})
	}

	// CPU work behind one worker, beside an idle GPU's DCGM samples.
	for _, c := range []struct {
		work, think time.Duration
		users       []int
	}{
		{5 * ms, 20 * ms, []int{1, 2, 4, 8, 16}},
		{10 * ms, 0, []int{1, 2, 4, 6, 8}},
		{20 * ms, 50 * ms, []int{1, 2, 4, 8, 12}},
	} {
		add(Target{Name: fmt.Sprintf("cpu-%s-think%s", c.work, c.think), Family: "cpu-idle-gpu",
			Planted: KindSerialization, Users: c.users, Stage: 2500 * ms, Think: c.think, GPU: true,
			Design: fmt.Sprintf("%s of CPU per request on one worker; GPU samples idle (2–6 %%)", c.work),
			New:    func() Behaviour { return CPUBound(c.work) }})
	}

	// One slow serialized operation among two fast parallel ones.
	for _, c := range []struct {
		fast, slow, think time.Duration
		slowShare         float64
		users             []int
	}{
		{10 * ms, 30 * ms, 50 * ms, 10, []int{2, 4, 8, 16, 32}},
		{5 * ms, 50 * ms, 100 * ms, 20, []int{1, 2, 4, 8, 16}},
		{20 * ms, 40 * ms, 60 * ms, 15, []int{2, 4, 8, 16, 24}},
	} {
		fastShare := (100 - c.slowShare) / 2
		add(Target{Name: fmt.Sprintf("slowop-%s-among-%s", c.slow, c.fast), Family: "slow-op",
			Planted: KindSerialization, Operation: SlowOpName, Users: c.users, Stage: 3 * time.Second, Think: c.think,
			Mix:    map[string]float64{"GET /v1/items": fastShare, "POST /v1/search": fastShare, SlowOpName: c.slowShare},
			Design: fmt.Sprintf("%s one at a time (%g %% of requests) among operations of %s in parallel", c.slow, c.slowShare, c.fast),
			New:    func() Behaviour { return SlowOp(c.fast, c.slow) }})
	}

	// A pool of c: throughput plateaus at c/service, requests queue.
	for _, c := range []struct {
		size           int
		service, think time.Duration
		users          []int
	}{
		{2, 20 * ms, 0, []int{1, 2, 4, 8, 16}},
		{3, 30 * ms, 30 * ms, []int{1, 2, 4, 8, 16}},
		{4, 40 * ms, 0, []int{1, 2, 4, 8, 16, 24}},
		{8, 50 * ms, 50 * ms, []int{2, 4, 8, 16, 32, 48}},
		{16, 80 * ms, 0, []int{4, 8, 16, 32, 48}},
		{32, 100 * ms, 0, []int{8, 16, 32, 64, 96}},
	} {
		add(Target{Name: fmt.Sprintf("pool-%dx%s", c.size, c.service), Family: "pool",
			Planted: KindPlateau, Users: c.users, Stage: 2500 * ms, Think: c.think,
			Design: fmt.Sprintf("a pool of %d, %s each, unbounded wait", c.size, c.service),
			New:    func() Behaviour { return Pool(c.size, c.service, 0, "") }})
	}

	// A pool of c whose waiters give up: errors jump once the wait passes
	// the timeout.
	const classifyPool = `{status: 503, body: "timed out waiting", kind: pool_timeout}`
	for _, c := range []struct {
		size                    int
		service, timeout, think time.Duration
		users                   []int
		text                    string
		classify                bool
	}{
		{2, 20 * ms, 100 * ms, 0, []int{1, 2, 4, 8, 16}, "connection pool exhausted: no connection free within the wait timeout", false},
		{4, 50 * ms, 200 * ms, 20 * ms, []int{1, 2, 4, 8, 16, 32}, "too many connections", false},
		{8, 40 * ms, 150 * ms, 0, []int{2, 4, 8, 16, 32, 64}, "timed out waiting for a worker", true},
		{16, 60 * ms, 200 * ms, 50 * ms, []int{4, 8, 16, 32, 64, 128}, "worker pool exhausted", false},
		{32, 50 * ms, 150 * ms, 50 * ms, []int{8, 16, 32, 64, 160}, "timed out waiting for a database connection", true},
	} {
		t := Target{Name: fmt.Sprintf("pooltimeout-%dx%s-wait%s", c.size, c.service, c.timeout), Family: "pool-timeout",
			Planted: KindPool, Also: []string{KindPlateau}, Users: c.users, Stage: 2500 * ms, Think: c.think,
			Design: fmt.Sprintf("a pool of %d, %s each; waiters refused with 503 %q after %s", c.size, c.service, c.text, c.timeout),
			New:    func() Behaviour { return Pool(c.size, c.service, c.timeout, c.text) }}
		if c.classify {
			t.Classify = []string{classifyPool}
		}
		add(t)
	}

	// Work that grows with the square of requests in flight.
	for _, c := range []struct {
		base, think time.Duration
		kappa       float64
		users       []int
	}{
		{20 * ms, 0, 0.005, []int{1, 2, 4, 8, 16, 32}},
		{20 * ms, 0, 0.01, []int{1, 2, 4, 8, 16, 32}},
		{10 * ms, 20 * ms, 0.02, []int{1, 2, 4, 8, 16, 32}},
		{10 * ms, 0, 0.05, []int{1, 2, 4, 8, 16, 24}},
		{20 * ms, 0, 0.1, []int{1, 2, 4, 8, 12}},
	} {
		add(Target{Name: fmt.Sprintf("retrograde-k%g-%s", c.kappa, c.base), Family: "retrograde",
			Planted: KindRetrograde, Users: c.users, Stage: 2 * time.Second, Think: c.think,
			Design: fmt.Sprintf("%s × (1 + %g·n(n−1)) with n requests in flight", c.base, c.kappa),
			New:    func() Behaviour { return Retrograde(c.base, c.kappa) }})
	}

	// A tenth of the requests, at random, queue behind a narrow lane; its
	// offered load (a tenth of users/(think+service), times the lane's
	// time over its width) reaches about 1 at the most users.
	for _, c := range []struct {
		fast, lane, think time.Duration
		width             int
		users             []int
	}{
		{10 * ms, 70 * ms, 100 * ms, 2, []int{4, 8, 16, 32}},
		{5 * ms, 30 * ms, 100 * ms, 1, []int{4, 9, 18, 36}},
		{20 * ms, 120 * ms, 150 * ms, 3, []int{5, 11, 22, 44}},
		{10 * ms, 120 * ms, 200 * ms, 4, []int{9, 18, 36, 72}},
	} {
		add(Target{Name: fmt.Sprintf("lane-%dx%s-among-%s", c.width, c.lane, c.fast), Family: "tail-lane",
			Planted: KindTail, Users: c.users, Stage: 4 * time.Second, Think: c.think,
			Design: fmt.Sprintf("1 request in 10, at random, waits for a lane of %d taking %s; the rest take %s in parallel", c.width, c.lane, c.fast),
			New:    func() Behaviour { return Lane(c.fast, 0.1, c.width, c.lane) }})
	}

	// Continuous batching: a few slots, a step time that grows with the
	// batch, streamed tokens.
	for _, c := range []struct {
		slots, tokens  int
		step0, stepPer time.Duration
		users          []int
		stage          time.Duration
		busyGPU        bool
	}{
		{4, 8, 5 * ms, 1 * ms, []int{1, 2, 4, 8, 12}, 3500 * ms, false},
		{8, 8, 8 * ms, 1 * ms, []int{1, 2, 4, 8, 12, 16}, 2500 * ms, false},
		{2, 4, 15 * ms, 5 * ms, []int{1, 2, 3, 4, 6}, 3 * time.Second, false},
		{16, 4, 15 * ms, 500 * time.Microsecond, []int{2, 4, 8, 16, 32, 48}, 2500 * ms, false},
		{4, 6, 8 * ms, 2 * ms, []int{1, 2, 4, 8, 12}, 3500 * ms, true},
		{8, 12, 6 * ms, 1 * ms, []int{2, 4, 8, 12, 16}, 3 * time.Second, true},
	} {
		// Requests wait for a slot (queueing) and each step slows as the
		// batch fills (decode_slowdown): both true of the server.
		t := Target{Name: fmt.Sprintf("batch-%dslots-%dtok", c.slots, c.tokens), Family: "gpu-batch",
			Planted: KindPlateau, Also: []string{KindQueueing, KindDecodeSlowdown}, Users: c.users, Stage: c.stage,
			Design: fmt.Sprintf("continuous batching, %d slots, %d streamed tokens, step %s + %s per sequence", c.slots, c.tokens, c.step0, c.stepPer),
			New:    func() Behaviour { return NewBatch(c.slots, c.tokens, c.step0, c.stepPer, c.busyGPU) }}
		if c.busyGPU {
			t.Name += "-busy-gpu"
			t.Family = "gpu-batch-busy"
			t.Planted = KindGPUSaturation
			t.Also = append(t.Also, KindPlateau)
			t.GPU = true
			t.Design += "; GPU samples report the share of time a step ran"
		}
		add(t)
	}

	// A collection that grows with every request: latency climbs with time
	// at constant users.
	for _, c := range []struct {
		base, perItem, think time.Duration
		users                []int
		stage, stress        time.Duration
	}{
		{10 * ms, 50 * time.Microsecond, 50 * ms, []int{4}, 20 * time.Second, 0},
		{50 * ms, 200 * time.Microsecond, 100 * ms, []int{2}, 20 * time.Second, 0},
		{20 * ms, 20 * time.Microsecond, 20 * ms, []int{8}, 20 * time.Second, 0},
		{10 * ms, 30 * time.Microsecond, 50 * ms, []int{1, 2, 4}, 2 * time.Second, 18 * time.Second},
	} {
		add(Target{Name: fmt.Sprintf("growing-%s-plus%dus", c.base, c.perItem.Microseconds()), Family: "degradation",
			Planted: KindDegradation, Users: c.users, Stage: c.stage, Stress: c.stress, Think: c.think,
			Design: fmt.Sprintf("%s + %s for every request served so far", c.base, c.perItem),
			New:    func() Behaviour { return Growing(c.base, c.perItem) }})
	}

	// Random errors at every load on a healthy service.
	for _, c := range []struct {
		service, think time.Duration
		share          float64
		users          []int
	}{
		{20 * ms, 50 * ms, 0.01, []int{1, 4, 16, 32}},
		{50 * ms, 0, 0.03, []int{1, 4, 16, 32}},
		{10 * ms, 50 * ms, 0.10, []int{1, 4, 16, 32}},
		{100 * ms, 100 * ms, 0.30, []int{1, 4, 16, 32}},
	} {
		add(Target{Name: fmt.Sprintf("errors-%g-%s", 100*c.share, c.service), Family: "random-errors",
			Planted: KindNone, Users: c.users, Stage: 2500 * ms, Think: c.think,
			Design: fmt.Sprintf("%s in parallel; %g %% of requests answer 500 at random", c.service, 100*c.share),
			New:    func() Behaviour { return Parallel(c.service, c.share) }})
	}

	// Healthy controls: any number in parallel.
	for _, c := range []struct {
		service, think time.Duration
		users          []int
		stage          time.Duration
	}{
		{5 * ms, 50 * ms, []int{1, 4, 16, 32}, 2500 * ms},
		{20 * ms, 100 * ms, []int{1, 4, 16, 48}, 2500 * ms},
		{50 * ms, 0, []int{1, 4, 16, 32}, 2500 * ms},
		{100 * ms, 200 * ms, []int{1, 4, 16, 64}, 3 * time.Second},
		{250 * ms, 0, []int{1, 4, 16, 32}, 3 * time.Second},
		{500 * ms, 500 * ms, []int{1, 4, 16, 64}, 4 * time.Second},
	} {
		add(Target{Name: fmt.Sprintf("healthy-%s-think%s", c.service, c.think), Family: "healthy",
			Planted: KindNone, Users: c.users, Stage: c.stage, Think: c.think,
			Design: fmt.Sprintf("%s (±20 %%) in parallel, no limit", c.service),
			New:    func() Behaviour { return Parallel(c.service, 0) }})
	}
	return ts
}

// Quick is one target of each family: a few minutes, for development.
func Quick(all []Target) []Target {
	seen := map[string]bool{}
	var out []Target
	for _, t := range all {
		if !seen[t.Family] {
			seen[t.Family] = true
			out = append(out, t)
		}
	}
	return out
}
