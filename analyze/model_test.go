package analyze

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// model is a closed queueing system: users think, then send a request to a
// server with a number of parallel slots and a FIFO queue. Known models of
// the bottlenecks are made from it, and the detectors must name each.
type model struct {
	name     string
	users    []int
	servers  int
	think    time.Duration // mean; drawn uniform on [0.5, 1.5]× it
	stageLen time.Duration
	// service draws one service time; inSystem is the number of requests
	// in service or queued when it starts.
	service func(r *rand.Rand, inSystem, users int) time.Duration
	timeout time.Duration // a request still queued this long fails
	errKind string
	errText string
	// fail, when set, makes a request fail with that kind and text.
	fail func(r *rand.Rand, users int) (kind, text string)
	// gpu, when set, gives GPU utilisation from the busy slots.
	gpu      func(r *rand.Rand, busy, servers int) float64
	gpuMem   func(users int) float64 // GPU memory share in %, when set
	lag      func(users int) time.Duration
	realZ    time.Duration // think actually used, when it differs from the profile's
	service2 string        // the service name; default the model's name
}

type event struct {
	t    int64
	kind int // 0 arrive, 1 done, 2 timeout, 3 sample
	user int
	req  *request
}

type request struct {
	user, iter   int
	intended     int64
	start        int64
	done, queued bool
	failed       bool
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].t != e[j].t {
		return e[i].t < e[j].t
	}
	return e[i].kind < e[j].kind
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

var simEpoch = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// simulate runs the model through its stages (each starting empty) and
// returns run.json's view, the result rows and GPU samples.
func simulate(m model, seed uint64) (*RunInfo, []captures.Result, []captures.Sample) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if m.stageLen == 0 {
		m.stageLen = 20 * time.Second
	}
	service := m.name
	if m.service2 != "" {
		service = m.service2
	}
	info := &RunInfo{ID: "run-" + m.name, Started: simEpoch.Format(time.RFC3339Nano), TimeScale: 1,
		Targets: map[string]string{service: "http://127.0.0.1:9" + fmt.Sprint(len(m.name)) + "00"},
		Profile: ProfileInfo{Scenarios: map[string]ScenarioInfo{m.name: {Service: service, Mode: "closed",
			Think: []byte(fmt.Sprintf(`{"uniform": ["%s", "%s"]}`, m.think/2, m.think*3/2))}}}}
	var rows []captures.Result
	var samples []captures.Sample
	t0 := simEpoch.UnixNano()
	for si, users := range m.users {
		start := t0 + int64(si)*int64(m.stageLen)
		end := start + int64(m.stageLen)
		info.Stages = append(info.Stages, StageInfo{Scenario: m.name, Stage: si + 1, Users: users,
			Start: time.Unix(0, start).UTC().Format(time.RFC3339Nano), End: time.Unix(0, end).UTC().Format(time.RFC3339Nano)})
		z := m.think
		if m.realZ > 0 {
			z = m.realZ
		}
		drawThink := func() int64 { return int64(float64(z) * (0.5 + rng.Float64())) }
		var q events
		iter := make([]int, users)
		for u := range users {
			heap.Push(&q, event{t: start + drawThink(), kind: 0, user: u})
		}
		for t := start; t < end; t += int64(250 * time.Millisecond) {
			heap.Push(&q, event{t: t, kind: 3})
		}
		busy := 0
		var queue []*request
		inService := map[*request]bool{}
		emit := func(req *request, t int64, kind, text string) {
			var lag int64
			if m.lag != nil {
				lag = int64(m.lag(users))
			}
			rows = append(rows, captures.Result{Run: info.ID, Scenario: m.name, Stage: int32(si + 1), StageUsers: int32(users),
				VU: int32(req.user), Iteration: int64(req.iter), Operation: "op", Service: service,
				IntendedNS: req.intended, StartNS: req.start + lag, DurationNS: t - req.start, TTFBNS: (t - req.start) / 2,
				Status: 200, ErrorKind: kind, Error: text, ActiveUsers: int32(users)})
		}
		startService := func(req *request, t int64) {
			busy++
			inService[req] = true
			d := int64(m.service(rng, busy+len(queue), users))
			heap.Push(&q, event{t: t + d, kind: 1, req: req})
		}
		for q.Len() > 0 {
			e := heap.Pop(&q).(event)
			if e.t >= end {
				break
			}
			switch e.kind {
			case 0:
				req := &request{user: e.user, iter: iter[e.user], intended: e.t, start: e.t}
				iter[e.user]++
				if busy < m.servers {
					startService(req, e.t)
				} else {
					req.queued = true
					queue = append(queue, req)
					if m.timeout > 0 {
						heap.Push(&q, event{t: e.t + int64(m.timeout), kind: 2, req: req})
					}
				}
			case 1:
				busy--
				delete(inService, e.req)
				kind, text := "", ""
				if m.fail != nil {
					kind, text = m.fail(rng, users)
				}
				emit(e.req, e.t, kind, text)
				e.req.done = true
				heap.Push(&q, event{t: e.t + drawThink(), kind: 0, user: e.req.user})
				for len(queue) > 0 && busy < m.servers {
					next := queue[0]
					queue = queue[1:]
					next.queued = false
					startService(next, e.t)
				}
			case 2:
				if !e.req.queued {
					continue
				}
				for i, r := range queue {
					if r == e.req {
						queue = append(queue[:i], queue[i+1:]...)
						break
					}
				}
				e.req.queued, e.req.done = false, true
				emit(e.req, e.t, m.errKind, m.errText)
				heap.Push(&q, event{t: e.t + drawThink(), kind: 0, user: e.req.user})
			case 3:
				if m.gpu != nil {
					samples = append(samples, captures.Sample{TNS: e.t, Source: "nvml", Device: "0", Metric: "gpu_util", Value: m.gpu(rng, busy, m.servers)})
				}
				if m.gpuMem != nil {
					samples = append(samples,
						captures.Sample{TNS: e.t, Source: "nvml", Device: "0", Metric: "gpu_mem_total_bytes", Value: 6 << 30},
						captures.Sample{TNS: e.t, Source: "nvml", Device: "0", Metric: "gpu_mem_used_bytes", Value: m.gpuMem(users) / 100 * (6 << 30)})
				}
				samples = append(samples, captures.Sample{TNS: e.t, Source: "host", Metric: "cpu_util", Value: 20 + 60*float64(busy)/float64(max(m.servers, 1)) + rng.Float64()})
			}
		}
		for req := range inService {
			emit(req, end, captures.ErrCutOff, "")
		}
		for _, req := range queue {
			emit(req, end, captures.ErrCutOff, "")
		}
	}
	info.Ended = time.Unix(0, t0+int64(len(m.users))*int64(m.stageLen)).UTC().Format(time.RFC3339Nano)
	return info, rows, samples
}

// Service time shapes.
func around(base, spread time.Duration) func(*rand.Rand, int, int) time.Duration {
	return func(r *rand.Rand, _, _ int) time.Duration {
		return base + time.Duration(r.ExpFloat64()*float64(spread))
	}
}

var (
	serialized = model{name: "mcp", users: []int{1, 5, 10, 20}, servers: 1, think: 200 * time.Millisecond,
		service: around(40*time.Millisecond, 10*time.Millisecond)}
	pool = model{name: "rag", users: []int{2, 5, 25, 50}, servers: 10, think: 100 * time.Millisecond,
		service: around(80*time.Millisecond, 20*time.Millisecond), timeout: 300 * time.Millisecond,
		errKind: captures.ErrTimeout, errText: "pool timeout: no connection within 300ms"}
	retrograde = model{name: "retro", users: []int{1, 4, 8, 16, 32}, servers: 4, think: 100 * time.Millisecond,
		service: func(r *rand.Rand, n, _ int) time.Duration {
			return time.Duration(float64(50*time.Millisecond) * (1 + 0.08*float64(n-1)) * (0.9 + 0.2*r.Float64()))
		}}
	healthy = model{name: "gateway", users: []int{1, 5, 10, 20}, servers: 1000, think: 200 * time.Millisecond,
		service: around(40*time.Millisecond, 10*time.Millisecond)}
	gpuBound = model{name: "gateway", users: []int{1, 4, 16, 32, 64}, servers: 8, think: 100 * time.Millisecond,
		service: around(75*time.Millisecond, 5*time.Millisecond),
		gpu: func(r *rand.Rand, busy, servers int) float64 {
			return math.Min(100, 30+70*float64(busy)/float64(servers)+2*r.Float64())
		}}
	cpuBound = model{name: "gateway", users: []int{1, 4, 16, 32, 64}, servers: 8, think: 100 * time.Millisecond,
		service: around(75*time.Millisecond, 5*time.Millisecond),
		gpu:     func(r *rand.Rand, _, _ int) float64 { return 24 + 2*r.Float64() }}
)
