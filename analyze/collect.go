package analyze

import (
	"cmp"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// WarmUp is what is trimmed from the start of every stage before its
// statistics are taken: min(Max, Fraction × the stage's length). Users are
// still arriving and caches still filling then.
type WarmUp struct {
	Max      time.Duration
	Fraction float64
}

// DefaultWarmUp trims min(10 s, 10 % of the stage): proportionate, so that
// a time-compressed 15 s stage keeps 13.5 s of measurement.
var DefaultWarmUp = WarmUp{Max: 10 * time.Second, Fraction: 0.1}

func (w WarmUp) of(stage time.Duration) time.Duration {
	d := time.Duration(float64(stage) * w.Fraction)
	return max(0, min(d, w.Max))
}

// maxITL bounds the inter-chunk gaps kept per operation; beyond it a
// uniform reservoir sample is kept (documented in docs/analyze.md).
const maxITL = 1 << 20

// steadyBuckets is how many slices a stage window is cut into to check that
// latency is not still climbing at its end.
const steadyBuckets = 10

// timeSlices is how many slices a stage window is cut into for the trend
// detectors: enough points for a rank test to be significant, few enough
// that each slice of a short stage holds several requests.
const timeSlices = 30

// timeSlice is what one slice of a stage window measured.
type timeSlice struct {
	ok, errors int64
	sumNS      float64 // durations of the successes
}

type stageKey struct {
	scenario string
	stage    int32
}

type opAcc struct {
	count, cutOff int64
	bytesIn       int64 // response bytes of the counted requests (Locust's content size)
	errors        map[string]int64
	errText       map[string]string
	// Latencies, ns, each in chunks (chunkAppend): the named slice is
	// the last chunk, its ...Done the full ones before it.
	ok, ttfb, ttft []int64
	tpot, lag      []int64 // lag: of the failures (a success's is in okLag)
	// okLag is each success's send lag, beside its duration in ok (the
	// same position), or -1 where it has none (no start or intended
	// time): its latency from the intended send is the two together, so
	// it is not kept a third time (derive).
	okLag     []int64
	okLagNone int64 // the -1s
	okDone    [][]int64
	ttfbDone  [][]int64
	ttftDone  [][]int64
	tpotDone  [][]int64
	lagDone   [][]int64
	okLagDone [][]int64
	itl       []int64 // a reservoir (addITL), one slice
	itlSeen   int64
	// Made by derive, for tailSeries: every send lag, and every latency
	// from the intended send.
	lags, fromIntended [][]int64
}

// derive makes lags and fromIntended from okChunks (the durations in
// their rows' order, as chunks(okDone, ok) was before sorting), okLag
// and lag, in slices of buf.
func (op *opAcc) derive(okChunks [][]int64, buf *arena) {
	n := 0
	for _, c := range okChunks {
		n += len(c)
	}
	lagChunks := chunks(op.okLagDone, op.okLag)
	fi := buf.take(n - int(op.okLagNone))
	k := 0
	li, lj := 0, 0 // the position in lagChunks
durations:
	for _, c := range okChunks {
		for _, d := range c {
			for li < len(lagChunks) && lj == len(lagChunks[li]) {
				li, lj = li+1, 0
			}
			if li == len(lagChunks) || k == len(fi) {
				break durations // a test's opAcc with durations alone
			}
			if l := lagChunks[li][lj]; l >= 0 {
				fi[k] = d + l
				k++
			}
			lj++
		}
	}
	fi = fi[:k]
	op.fromIntended = nil
	if len(fi) > 0 {
		op.fromIntended = [][]int64{fi}
	}
	op.lags = lagChunks
	if op.okLagNone > 0 {
		kept := buf.take(n - int(op.okLagNone))[:0]
		for _, c := range lagChunks {
			for _, l := range c {
				if l >= 0 {
					kept = append(kept, l)
				}
			}
		}
		op.lags = [][]int64{kept}
	}
	op.lags = append(op.lags[:len(op.lags):len(op.lags)], chunks(op.lagDone, op.lag)...)
}

// deriveNeeds is how many values derive takes from its arena.
func (op *opAcc) deriveNeeds() int {
	n := 0
	for _, c := range chunks(op.okDone, op.ok) {
		n += len(c)
	}
	n -= int(op.okLagNone)
	if op.okLagNone > 0 {
		return 2 * n
	}
	return n
}

// arena hands out slices of one buffer, reused from stage to stage.
type arena struct {
	buf  []int64
	used int
}

// reset makes room for n values, all free.
func (a *arena) reset(n int) {
	if cap(a.buf) < n {
		a.buf = make([]int64, n)
	}
	a.buf, a.used = a.buf[:cap(a.buf)], 0
}

func (a *arena) take(n int) []int64 {
	s := a.buf[a.used : a.used+n : a.used+n]
	a.used += n
	return s
}

// stageAcc gathers one stage's rows inside its measured window.
type stageAcc struct {
	info       StageInfo
	mode       string
	startNS    int64 // stage start
	ws, we     int64 // measured window
	lastNS     int64
	ops        map[string]*opAcc
	trimmed    int64
	busyNS     float64 // Σ of the time requests ran inside the window, whenever they started (Little's law)
	iterations int64
	vuLast     map[int32]int64 // users outside vus' range
	vuEnd      map[int32]int64 // when the user's last request ended
	vus        []vuState       // users 0 … maxDenseVU-1, by number
	entries    []*opEntry      // the operations seen, in order of first row (opEntry)
	byName     map[string]*opEntry
	secs       *denseSeconds // the scenario's per-second accumulators (series.go)
	scenario   []*stageAcc   // the scenario's stages (collector.byScen), once looked up
	thinkSum   float64       // Σ pauses between a user's request ending and its next intended start, ns
	thinkN     int64
	activeSum  float64
	activeMax  int32 // open mode: most requests in flight (queued or sending) at an arrival
	activeN    int64
	bucketSum  [steadyBuckets]float64
	bucketN    [steadyBuckets]int64
	bucketCut  cutter                // which of bucketSum a time is in
	sliceCut   cutter                // which of overTime
	overTime   [timeSlices]timeSlice // the window in equal slices, for trends over time
	errDurs    map[string][]int64
	oom        int64
	oomText    string
	raw        map[string]map[string]int64 // op → error kind ("" all) → rows, warm-up included
	tokens     *tokenAcc                   // token figures and goodput (tokens.go)
}

// opEntry is what a stage keeps for one operation name: found once per
// row, by a short scan (a stage has a handful of operations) or a map past
// maxScanOps, instead of one map lookup per accumulator. Its counters go
// into the maps (raw, failureAcc.requests) at flush.
type opEntry struct {
	name    string
	raw     map[string]int64 // st.raw[name]
	rawAll  int64            // rows not yet added to raw[""]
	op      *opAcc           // st.ops[name]; nil until a row inside the window
	tok     *opTokens        // the token accumulator's (tokens.go); nil until one
	failReq int64            // rows for the failures table not yet in failureAcc.requests
}

// sameString reports whether a and b are the same string in memory (so
// equal); false says nothing.
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// maxScanOps is how many operations a stage scans for a row's before it
// looks them up in a map.
const maxScanOps = 8

// entry finds or makes the stage's entry for an operation.
func (st *stageAcc) entry(name string) *opEntry {
	if st.byName == nil {
		// A reader's strings are interned (ingest.go): the entry's name is
		// usually the row's very string, found without comparing bytes.
		for _, e := range st.entries {
			if sameString(e.name, name) {
				return e
			}
		}
		for _, e := range st.entries {
			if e.name == name {
				return e
			}
		}
	} else if e := st.byName[name]; e != nil {
		return e
	}
	raw := st.raw[name]
	if raw == nil {
		raw = map[string]int64{}
		st.raw[name] = raw
	}
	e := &opEntry{name: name, raw: raw, op: st.ops[name]}
	st.entries = append(st.entries, e)
	if st.byName != nil {
		st.byName[name] = e
	} else if len(st.entries) > maxScanOps {
		st.byName = make(map[string]*opEntry, len(st.entries))
		for _, e := range st.entries {
			st.byName[e.name] = e
		}
	}
	return e
}

// vuState is countIteration's memory of one user: its last iteration and
// when its last request ended.
type vuState struct {
	iter, end       int64
	hasIter, hasEnd bool
	// The user's first row here, for merging collectors exactly: its
	// iteration, and the intended start of its first row that was sent.
	firstIter, firstIntended int64
	hasFirst, hasFirstSent   bool
}

// maxDenseVU bounds the users kept in a slice by number; others (negative
// or larger numbers) go to maps.
const maxDenseVU = 1 << 20

// flush moves the counters kept per entry and per second into the maps
// the rest of analyze reads: before merging and before finishing.
func (c *collector) flush() {
	for _, k := range c.order {
		st := c.stages[k]
		for _, e := range st.entries {
			if e.rawAll > 0 {
				e.raw[""] += e.rawAll
				e.rawAll = 0
			}
			if e.failReq > 0 {
				c.failuresAcc().requests[[2]string{st.info.Scenario, e.name}] += e.failReq
				e.failReq = 0
			}
		}
	}
	c.flushSeconds()
}

// collector ingests result rows one at a time (collect, then close).
type collector struct {
	info     *RunInfo
	warm     WarmUp
	runStart int64
	stages   map[stageKey]*stageAcc
	order    []stageKey
	byScen   map[string][]*stageAcc // each scenario's stages, in run.json's order
	rng      *rand.Rand
	runIDs   map[string]bool

	lastKey stageKey
	last    *stageAcc

	failures *failureAcc                     // failures by message (failures.go)
	seconds  map[string]map[int64]*secondAcc // per-second series (series.go)
	dense    map[string]*denseSeconds        // the seconds not yet in seconds, per scenario
	norm     map[string]string               // normaliseMessage's answers (failures.go)
	lastRun  string
}

func newCollector(info *RunInfo, warm WarmUp) *collector {
	c := &collector{
		info: info, warm: warm,
		stages: map[stageKey]*stageAcc{},
		byScen: map[string][]*stageAcc{},
		rng:    rand.New(rand.NewPCG(1, 2)),
		runIDs: map[string]bool{},
		dense:  map[string]*denseSeconds{},
	}
	if t, err := parseTime(info.Started); err == nil {
		c.runStart = t.UnixNano()
	}
	for _, s := range info.Stages {
		start, _ := parseTime(s.Start)
		acc := &stageAcc{info: s, startNS: start.UnixNano(), ops: map[string]*opAcc{},
			vuLast: map[int32]int64{}, vuEnd: map[int32]int64{}, errDurs: map[string][]int64{}, we: math.MaxInt64,
			raw: map[string]map[string]int64{}}
		acc.mode = info.Profile.Scenarios[s.Scenario].Mode
		if acc.mode == "" {
			acc.mode = "closed"
		}
		acc.ws = acc.startNS
		if s.End != "" {
			end, _ := parseTime(s.End)
			acc.we = end.UnixNano()
			acc.ws += int64(warm.of(time.Duration(acc.we - acc.startNS)))
		}
		if c.runStart == 0 || acc.startNS < c.runStart {
			c.runStart = acc.startNS
		}
		if c.dense[s.Scenario] == nil {
			c.dense[s.Scenario] = &denseSeconds{}
		}
		acc.secs = c.dense[s.Scenario]
		k := stageKey{s.Scenario, int32(s.Stage)}
		c.stages[k] = acc
		c.order = append(c.order, k)
		c.byScen[s.Scenario] = append(c.byScen[s.Scenario], acc)
	}
	return c
}

// add takes one result row. It returns false when the row's scenario and
// stage are not in run.json.
func (c *collector) add(r *captures.Result) bool {
	k := stageKey{r.Scenario, r.Stage}
	st := c.last
	if st == nil || k.stage != c.lastKey.stage || !sameString(k.scenario, c.lastKey.scenario) && k.scenario != c.lastKey.scenario {
		st = c.stages[k]
		if st == nil {
			return false
		}
		c.last, c.lastKey = st, k
	}
	if !sameString(r.Run, c.lastRun) && r.Run != c.lastRun && r.Run != "" {
		c.runIDs[r.Run] = true
		c.lastRun = r.Run
	}
	t := r.StartNS
	if t == 0 {
		t = r.IntendedNS
	}
	if t > st.lastNS {
		st.lastNS = t
	}
	failed := r.ErrorKind != ""
	e := st.entry(r.Operation)
	c.addFailure(r, t, e)
	c.addSecond(r, t, st.secs)
	e.rawAll++ // every request, for count targets
	if failed {
		e.raw[r.ErrorKind]++
	}
	if r.ErrorKind != runspec.ErrDropped && r.StartNS > 0 {
		c.addBusy(r, st)
	}
	if t < st.ws || t >= st.we {
		st.trimmed++
		return true
	}
	op := e.op
	if op == nil {
		op = st.ops[r.Operation]
		if op == nil {
			op = &opAcc{errors: map[string]int64{}, errText: map[string]string{}}
			st.ops[r.Operation] = op
		}
		e.op = op
	}
	c.addTokens(st, r, failed, e)
	if r.ErrorKind == runspec.ErrCutOff {
		// In flight when the stage ended: it occupied its user, so it
		// counts for Little's law, but it has no outcome.
		op.cutOff++
		st.countIteration(r)
		return true
	}
	op.count++
	op.bytesIn += r.BytesIn
	if r.ErrorKind != runspec.ErrDropped {
		st.countIteration(r)
		if failed && r.StartNS > 0 && r.IntendedNS > 0 {
			op.lag = chunkAppend(&op.lagDone, op.lag, max(0, r.StartNS-r.IntendedNS))
		}
	}
	if r.ErrorKind != runspec.ErrDropped {
		st.addSlice(t, r.DurationNS, failed)
	}
	if failed {
		op.errors[r.ErrorKind]++
		if _, ok := op.errText[r.ErrorKind]; !ok && r.Error != "" {
			op.errText[r.ErrorKind] = truncate(r.Error, 300)
		}
		if r.ErrorKind != runspec.ErrDropped {
			st.errDurs[r.ErrorKind] = append(st.errDurs[r.ErrorKind], r.DurationNS)
		}
		// The replayer names out-of-memory answers; runs recorded before it
		// did have them as http_5xx with the text.
		if r.ErrorKind == runspec.ErrOutOfMemory || runspec.IsOutOfMemory(r.Error) {
			st.oom++
			if st.oomText == "" {
				st.oomText = truncate(r.Error, 300)
			}
		}
		return true
	}
	op.ok = chunkAppend(&op.okDone, op.ok, r.DurationNS)
	lag := int64(-1)
	if r.StartNS > 0 && r.IntendedNS > 0 {
		lag = max(0, r.StartNS-r.IntendedNS)
	} else {
		op.okLagNone++
	}
	op.okLag = chunkAppend(&op.okLagDone, op.okLag, lag)
	if r.TTFBNS > 0 {
		op.ttfb = chunkAppend(&op.ttfbDone, op.ttfb, r.TTFBNS)
	}
	if r.TTFTNS > 0 {
		op.ttft = chunkAppend(&op.ttftDone, op.ttft, r.TTFTNS)
	}
	if n := len(r.ChunkOffsetsNS); n > 1 {
		for i := 1; i < n; i++ {
			c.addITL(op, r.ChunkOffsetsNS[i]-r.ChunkOffsetsNS[i-1])
		}
		first := r.ChunkOffsetsNS[0]
		if r.TTFTNS > 0 {
			first = r.TTFTNS
		}
		if r.CompletionTokens > 1 && r.ChunkOffsetsNS[n-1] > first {
			op.tpot = chunkAppend(&op.tpotDone, op.tpot, (r.ChunkOffsetsNS[n-1]-first)/(r.CompletionTokens-1))
		}
	}
	if st.we != math.MaxInt64 && st.we > st.ws {
		b := st.bucketCut.part(t, st.ws, st.we, steadyBuckets)
		st.bucketSum[b] += float64(r.DurationNS)
		st.bucketN[b]++
	}
	return true
}

// cutter says which of k equal parts of a window [ws, we) a time t is in,
// min(max(⌊(t−ws)·k/(we−ws)⌋, 0), k−1), and remembers where the last part
// found begins and ends: rows come about in time order, so most of them
// need no division (two per row were a twentieth of collecting).
type cutter struct {
	lo, hi int64 // the times of part b: lo ≤ t < hi
	b      int
}

func (c *cutter) part(t, ws, we, k int64) int {
	if t >= c.lo && t < c.hi {
		return c.b
	}
	w := we - ws
	b := (t - ws) * k / w
	if b < 0 || b >= k || t < ws {
		return int(min(max(b, 0), k-1))
	}
	// ⌊x·k/w⌋ = b exactly for ⌈b·w/k⌉ ≤ x < ⌈(b+1)·w/k⌉ (x = t − ws ≥ 0).
	c.lo, c.hi, c.b = ws+ceilDiv(b*w, k), ws+ceilDiv((b+1)*w, k), int(b)
	return c.b
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// addSlice counts a measured request in the slice of the window it
// started in. A window without an end (interrupted) has no slices.
func (st *stageAcc) addSlice(t, durNS int64, failed bool) {
	if st.we == math.MaxInt64 || st.we <= st.ws {
		return
	}
	sl := &st.overTime[st.sliceCut.part(t, st.ws, st.we, timeSlices)]
	if failed {
		sl.errors++
		return
	}
	sl.ok++
	sl.sumNS += float64(durNS)
}

// addBusy adds the time a request ran inside each measured window of its
// scenario: a request started in the warm-up, or in the stage before, keeps
// its user busy in this window too, and one still running at the window's
// end counts up to the end. Counting whole durations of the requests
// started in the window instead would miss the users waiting in a queue
// of the target across the window's start, and blame the load generator
// for them.
func (c *collector) addBusy(r *captures.Result, in *stageAcc) {
	s, e := r.StartNS, r.StartNS+max(r.DurationNS, 0)
	if in.scenario == nil {
		in.scenario = c.byScen[r.Scenario]
	}
	for _, st := range in.scenario {
		if lo, hi := max(s, st.ws), min(e, st.we); hi > lo {
			st.busyNS += float64(hi - lo)
		}
	}
}

// countIteration counts distinct (user, iteration) pairs: think time comes
// once per iteration, whatever number of requests it made.
func (st *stageAcc) countIteration(r *captures.Result) {
	if r.ActiveUsers > 0 {
		st.activeSum += float64(r.ActiveUsers)
		st.activeN++
		st.activeMax = max(st.activeMax, r.ActiveUsers)
	}
	if r.VU >= 0 && r.VU < maxDenseVU {
		st.countDense(r)
		return
	}
	if last, ok := st.vuLast[r.VU]; !ok || last != r.Iteration || r.VU < 0 {
		st.iterations++
		st.vuLast[r.VU] = r.Iteration
	}
	// The think the generator actually paused: from the end of a user's
	// request to the intended start of its next. Rows of one user come in
	// order (it sends one request at a time).
	if r.VU >= 0 && r.StartNS > 0 {
		if end, ok := st.vuEnd[r.VU]; ok && r.IntendedNS >= end {
			st.thinkSum += float64(r.IntendedNS - end)
			st.thinkN++
		}
		st.vuEnd[r.VU] = r.StartNS + max(r.DurationNS, 0)
	}
}

// countDense is countIteration for a user numbered 0 … maxDenseVU-1: the
// same counts, kept in a slice by number.
func (st *stageAcc) countDense(r *captures.Result) {
	if int(r.VU) >= len(st.vus) {
		st.vus = append(st.vus, make([]vuState, int(r.VU)+1-len(st.vus))...)
		st.vus = st.vus[:cap(st.vus)]
	}
	u := &st.vus[r.VU]
	if !u.hasFirst {
		u.firstIter, u.hasFirst = r.Iteration, true
	}
	if !u.hasIter || u.iter != r.Iteration {
		st.iterations++
		u.iter, u.hasIter = r.Iteration, true
	}
	if r.StartNS > 0 {
		if !u.hasFirstSent {
			u.firstIntended, u.hasFirstSent = r.IntendedNS, true
		}
		if u.hasEnd && r.IntendedNS >= u.end {
			st.thinkSum += float64(r.IntendedNS - u.end)
			st.thinkN++
		}
		u.end, u.hasEnd = r.StartNS+max(r.DurationNS, 0), true
	}
}

func (c *collector) addITL(op *opAcc, gap int64) {
	op.itlSeen++
	if len(op.itl) < maxITL {
		if len(op.itl) == cap(op.itl) {
			// Doubling: append grows a large slice by a quarter, copying
			// the reservoir (up to 8 MiB) into fresh memory each time.
			grown := make([]int64, len(op.itl), min(max(2*cap(op.itl), minChunk), maxITL))
			copy(grown, op.itl)
			op.itl = grown
		}
		op.itl = append(op.itl, gap)
		return
	}
	if j := c.rng.Int64N(op.itlSeen); j < maxITL {
		op.itl[j] = gap
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Histogram of the timeline: bins of a factor 2^(1/4) from 0.1 ms, enough
// for a per-second p95 (the exact percentiles come from the rows).
const histBins = 112

func histBin(ns int64) int {
	if ns <= 100_000 {
		return 0
	}
	// The bin of the value's power of two and next eight bits, from a
	// table: such a sliver (1/256 of the power) holds at most one bin
	// edge, so the bin is that one or the next. Next to an edge the
	// logarithm itself decides, so that the answer is the formula's.
	e := bits.Len64(uint64(ns)) - 1
	m := ns
	if e > 8 {
		m = ns >> (e - 8)
	} else {
		m = ns << (8 - e)
	}
	b := int(histSliver[e][m&0xff])
	if b+1 < histBins && histEdges[b+1] <= ns {
		b++
	}
	if ns-histEdges[b] < 4 || b+1 < histBins && histEdges[b+1]-ns < 4 {
		return histBinLog(ns)
	}
	return b
}

// histSliver[e][m] is the bin of the smallest value whose power of two is
// 2^e and whose next eight bits are m.
var histSliver = func() (t [63][256]uint8) {
	for e := range 63 {
		for m := range 256 {
			v := int64(1)<<e | int64(m)<<e>>8
			b := 0
			for b+1 < histBins && histEdges[b+1] <= v {
				b++
			}
			t[e][m] = uint8(b)
		}
	}
	return t
}()

func histBinLog(ns int64) int {
	if ns <= 100_000 {
		return 0
	}
	b := int(4 * math.Log2(float64(ns)/100_000))
	return min(b, histBins-1)
}

// histEdges[b] is the smallest duration (ns) histBinLog puts in bin b or
// above; histEdges[0] is 0.
var histEdges = func() (e [histBins]int64) {
	for b := 1; b < histBins; b++ {
		lo, hi := int64(100_000), int64(1)<<62
		for lo < hi {
			mid := lo + (hi-lo)/2
			if histBinLog(mid) >= b {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		e[b] = lo
	}
	return e
}()

func histUpper(b int) float64 { return 0.1 * math.Pow(2, float64(b+1)/4) } // ms

func histQuantile(h *[histBins]uint32, p float64) float64 {
	var n uint64
	for _, v := range h {
		n += uint64(v)
	}
	if n == 0 {
		return math.NaN()
	}
	want := uint64(math.Ceil(p * float64(n)))
	var acc uint64
	for b, v := range h {
		acc += uint64(v)
		if acc >= want {
			return histUpper(b)
		}
	}
	return histUpper(histBins - 1)
}

// finish turns the accumulators into stages, in run.json's order.
func (c *collector) finish() []*Stage {
	c.flush()
	// Stages are independent and finishing one is mostly sorting: one
	// goroutine per CPU; each ends when the indices run out.
	out := make([]*Stage, len(c.order))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(1, len(c.order))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch []int64 // the sorts' and merges' buffer, reused from stage to stage
			var derived arena   // the stages' derived latencies (opAcc.derive), the same
			for i := range next {
				out[i] = c.stages[c.order[i]].finish(c.warm, &scratch, &derived)
			}
		}()
	}
	// The largest stages first, so that no goroutine is left sorting a
	// large one while the others have run out.
	rows := make([]int64, len(c.order))
	for i, k := range c.order {
		for _, op := range c.stages[k].ops {
			rows[i] += op.count
		}
	}
	byRows := make([]int, len(c.order))
	for i := range byRows {
		byRows[i] = i
	}
	slices.SortStableFunc(byRows, func(a, b int) int { return cmp.Compare(rows[b], rows[a]) })
	for _, i := range byRows {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// finish makes the stage's statistics; scratch is a buffer for the sorts
// and merges, derived one for the latencies derived from the durations,
// both kept for the next stage.
func (st *stageAcc) finish(warm WarmUp, scratch *[]int64, derived *arena) *Stage {
	s := &Stage{
		Scenario: st.info.Scenario, Stage: st.info.Stage, Name: st.info.Name,
		Users: st.info.Users, Start: st.info.Start, End: st.info.End,
		Trustworthy: true, Steady: true, Mode: st.mode,
		Operations: map[string]*OpStats{}, Resources: map[string]ResourceAgg{},
		startNS: st.startNS, raw: st.raw,
	}
	if s.Users == 0 && st.info.Rate > 0 {
		s.Users = int(math.Round(st.info.Rate))
		s.Rate = st.info.Rate
	}
	if st.we == math.MaxInt64 {
		// No end in run.json (interrupted): the window ends at the last row;
		// without a length no warm-up could be trimmed.
		st.we = st.lastNS + 1
		s.End = time.Unix(0, st.we).UTC().Format(time.RFC3339Nano)
		s.Notes = append(s.Notes, "run.json gives no end for this stage (interrupted?): its window ends at its last request and no warm-up was trimmed")
	}
	s.endNS = st.we
	s.WarmUpS = float64(st.ws-st.startNS) / 1e9
	s.WindowS = float64(st.we-st.ws) / 1e9
	names := make([]string, 0, len(st.ops))
	for name := range st.ops {
		names = append(names, name)
	}
	slices.Sort(names)
	all := &opAcc{errors: map[string]int64{}, errText: map[string]string{}}
	var ok [][]int64
	need := 0
	for _, name := range names {
		need += st.ops[name].deriveNeeds()
	}
	derived.reset(need)
	for _, name := range names {
		op := st.ops[name]
		all.addCounts(op)
		unsorted := chunks(op.okDone, op.ok)
		op.derive(unsorted, derived)
		op.ok, op.okDone = sortedOfBuf(unsorted, scratch), nil
		s.Operations[name] = op.baseStats(s.WindowS, true)
		ok = append(ok, op.ok)
	}
	// All operations together: the durations merged (detectors read them;
	// merging the sorted slices is linear where sorting their
	// concatenation again would not be); the rest selected by rank from
	// the operations' chunks, in the same passes as the operations' own
	// (latencies), without a merged or sorted copy.
	all.ok = mergeSortedBuf(ok, scratch)
	o := all.baseStats(s.WindowS, true)
	series := make([][][]int64, len(names))
	for _, ts := range tailSeries {
		for i, name := range names {
			series[i] = ts.of(st.ops[name])
		}
		each, above, allL, allAbove := latencies(series, ts.over)
		for i, name := range names {
			ts.set(s.Operations[name], each[i], above[i])
		}
		ts.set(o, allL, allAbove)
	}
	s.Operations[AllOps] = o
	st.tokens.fill(s)
	s.Steady = st.steady()
	if !s.Steady {
		s.Notes = append(s.Notes, "not steady: latency was still climbing at the stage's end (a queue still growing)")
	}
	return s
}

// maxSendLagNS is maxSendLagMS in ns: a request sent later than it is
// lagged.
const maxSendLagNS = int64(maxSendLagMS * 1e6)

// tailSeries are an operation's latency figures besides its durations:
// where it keeps each, where each goes in OpStats, and above what a value
// is counted (send lag: Lagged).
var tailSeries = []struct {
	of   func(*opAcc) [][]int64
	set  func(o *OpStats, l *Latency, above int64)
	over int64
}{
	{func(op *opAcc) [][]int64 { return chunks(op.ttfbDone, op.ttfb) }, func(o *OpStats, l *Latency, _ int64) { o.TTFBMS = l }, math.MaxInt64},
	{func(op *opAcc) [][]int64 { return chunks(op.ttftDone, op.ttft) }, func(o *OpStats, l *Latency, _ int64) { o.TTFTMS = l }, math.MaxInt64},
	{func(op *opAcc) [][]int64 { return [][]int64{op.itl} }, func(o *OpStats, l *Latency, _ int64) { o.ITLMS = l }, math.MaxInt64},
	{func(op *opAcc) [][]int64 { return chunks(op.tpotDone, op.tpot) }, func(o *OpStats, l *Latency, _ int64) { o.TPOTMS = l }, math.MaxInt64},
	{func(op *opAcc) [][]int64 { return op.lags }, func(o *OpStats, l *Latency, above int64) { o.SendLagMS, o.Lagged = l, above }, maxSendLagNS},
	{func(op *opAcc) [][]int64 { return op.fromIntended }, func(o *OpStats, l *Latency, _ int64) { o.FromIntendedMS = l }, math.MaxInt64},
}

// stats is one operation's statistics on its own.
func (op *opAcc) stats(window float64) *OpStats {
	var derived arena
	derived.reset(op.deriveNeeds())
	op.derive(chunks(op.okDone, op.ok), &derived)
	o := op.baseStats(window, false)
	for _, ts := range tailSeries {
		each, above, _, _ := latencies([][][]int64{ts.of(op)}, ts.over)
		ts.set(o, each[0], above[0])
	}
	return o
}

// baseStats are the operation's counts and durations (sorted into one
// slice first unless sorted): stats without tailSeries.
func (op *opAcc) baseStats(window float64, sorted bool) *OpStats {
	var errs int64
	for _, v := range op.errors {
		errs += v
	}
	// The durations in one sorted slice: detectors and figures read them.
	if !sorted {
		op.ok, op.okDone = sortedOf(chunks(op.okDone, op.ok)), nil
	}
	o := &OpStats{
		Count: op.count, CutOff: op.cutOff, BytesIn: op.bytesIn, Errors: op.errors, ErrorText: op.errText,
		LatencyMS: latencySorted(op.ok), Durations: op.ok,
	}
	if op.count > 0 {
		o.ErrorRate = float64(errs) / float64(op.count)
	}
	if window > 0 {
		completed := op.count - op.errors[runspec.ErrDropped]
		o.RPS = float64(completed) / window
		o.RPM = o.RPS * 60
		o.OKRPS = float64(len(op.ok)) / window
	}
	return o
}

// steady reports whether latency had stopped climbing: the mean of the last
// three tenths of the window is under 1.5× that of the first three, or the
// climb is not a trend (R² < 0.6).
func (st *stageAcc) steady() bool {
	var x, y []float64
	for i := range steadyBuckets {
		if st.bucketN[i] >= 5 {
			x = append(x, float64(i))
			y = append(y, st.bucketSum[i]/float64(st.bucketN[i]))
		}
	}
	if len(y) < 6 {
		return true
	}
	first := (y[0] + y[1] + y[2]) / 3
	last := (y[len(y)-1] + y[len(y)-2] + y[len(y)-3]) / 3
	_, b, r2 := linReg(x, y)
	return !(last > 1.5*first && b > 0 && r2 >= 0.6)
}

// mergeSorted merges sorted slices into one new sorted slice.
func mergeSorted(parts [][]int64) []int64 {
	var scratch []int64
	return mergeSortedBuf(parts, &scratch)
}

// mergeSortedBuf is mergeSorted with a scratch buffer for the rounds
// before the last, kept in *scratch (grown when short) for the next call.
// The parts are merged two by two, round after round, each merge of two
// a tight loop without a branch on the values (a comparison of
// interleaved durations is a coin toss the CPU mispredicts half the
// time): several times faster than picking the smallest head of every
// part for each value.
func mergeSortedBuf(parts [][]int64, scratch *[]int64) []int64 {
	runs := make([][]int64, 0, len(parts))
	n := 0
	for _, p := range parts {
		if len(p) > 0 {
			runs = append(runs, p)
			n += len(p)
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]int64, n)
	if len(runs) == 1 {
		copy(out, runs[0])
		return out
	}
	// Rounds ping-pong between out and the scratch buffer; the last round
	// must write out, so the first writes whichever the parity says.
	rounds := bits.Len(uint(len(runs) - 1)) // ⌈log2 len(runs)⌉
	var buf []int64
	if rounds > 1 {
		if cap(*scratch) < n {
			*scratch = make([]int64, n)
		}
		buf = (*scratch)[:n]
	}
	dst, other := out, buf
	if rounds%2 == 0 {
		dst, other = buf, out
	}
	for len(runs) > 1 {
		next := runs[:0:0]
		at := 0
		for i := 0; i < len(runs); i += 2 {
			if i+1 == len(runs) {
				m := copy(dst[at:], runs[i])
				next = append(next, dst[at:at+m])
				at += m
				break
			}
			m := len(runs[i]) + len(runs[i+1])
			merge2(dst[at:at+m], runs[i], runs[i+1])
			next = append(next, dst[at:at+m])
			at += m
		}
		runs = next
		dst, other = other, dst
	}
	return out
}

// merge2 merges the sorted a and b into out (len(a) + len(b) values).
// The loop picks the value and advances one index by the comparison's
// result, without a branch on it (the compiler makes conditional moves).
func merge2(out, a, b []int64) {
	i, j, k := 0, 0, 0
	for i < len(a) && j < len(b) && k < len(out) {
		x, y := a[i], b[j]
		v, step := y, 0
		if x <= y {
			v, step = x, 1
		}
		out[k] = v
		k++
		i += step
		j += 1 - step
	}
	k += copy(out[k:], a[i:])
	copy(out[k:], b[j:])
}
