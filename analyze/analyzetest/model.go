// Package analyzetest generates result and sample rows from known queueing
// models (a closed system of users who think, then queue for a server with
// parallel slots), so that tests of analyze and reports run on data whose
// bottleneck is known.
package analyzetest

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Model is a closed queueing system: users think, then send a request to a
// server with a number of parallel slots and a FIFO queue. Known models of
// the bottlenecks are made from it, and the detectors must name each.
type Model struct {
	Name     string
	Users    []int
	Servers  int
	Think    time.Duration // mean; drawn uniform on [0.5, 1.5]× it
	StageLen time.Duration
	// Service draws one service time; inSystem is the number of requests
	// in service or queued when it starts.
	Service func(r *rand.Rand, inSystem, users int) time.Duration
	Timeout time.Duration // a request still queued this long fails
	ErrKind string
	ErrText string
	// Fail, when set, makes a request fail with that kind and text.
	Fail func(r *rand.Rand, users int) (kind, text string)
	// GPU, when set, gives GPU utilisation from the busy slots.
	GPU         func(r *rand.Rand, busy, servers int) float64
	GPUMem      func(users int) float64 // GPU memory share in %, when set
	HostCPU     func(users int) float64 // host CPU %, when set; else it follows the busy slots
	HostSteal   func(users int) float64 // the hypervisor's steal of the host's CPU in %, sampled when set
	KVCache     func(users int) float64 // vLLM's KV-cache usage (0–1) scraped from the service, when set
	Lag         func(users int) time.Duration
	RealThink   time.Duration // think actually used, when it differs from the profile's
	ServiceName string        // the service name; default the model's name
	// PromGPU, when set, reports GPU utilisation as a DCGM metric scraped
	// from the service's own /metrics instead of NVML, as the demo's
	// simulated gateway does.
	PromGPU bool
	// Drift, when set, changes the service over a stage's time at its
	// constant load, as a leak or a growing collection does: service
	// times are multiplied by slowdown and a share errorShare of the
	// requests fail (http_5xx), since being the time since the stage began.
	Drift func(since time.Duration, users int) (slowdown, errorShare float64)
	// Lane, when set, sends a share of the requests to a narrower server
	// of their own with its own queue, as operation Lane.Operation.
	Lane *Lane
	// Stream, when set, makes the requests token streams (stream.go);
	// Service is then not used.
	Stream *Stream
}

// Lane is a second, narrower server inside the target that a share of
// the requests queue for: a tail lane, or one operation serialized while
// the others scale.
type Lane struct {
	Share     float64
	Servers   int
	Service   func(r *rand.Rand) time.Duration
	Operation string
}

// URL is the base URL run.json gives the model's service: a port of its
// own per name, so that scraped metrics can be told apart.
func (m Model) URL() string {
	h := fnv.New32a()
	h.Write([]byte(m.Name))
	return fmt.Sprintf("http://127.0.0.1:%d", 9000+h.Sum32()%900)
}

// Combine joins runs of several models made with the same seed into one
// run whose scenarios ran at the same time, as the demo runs them.
func Combine(id string, runs ...*Run) *Run {
	out := &Run{runspec.Run{ID: id, Started: runs[0].Started, Ended: runs[0].Ended, TimeScale: 1,
		Targets: map[string]string{}, Profile: runspec.Profile{Scenarios: map[string]runspec.Scenario{}}}}
	for _, r := range runs {
		for k, v := range r.Targets {
			out.Targets[k] = v
		}
		for k, v := range r.Profile.Scenarios {
			out.Profile.Scenarios[k] = v
		}
		out.Profile.Targets = append(out.Profile.Targets, r.Profile.Targets...)
		out.Stages = append(out.Stages, r.Stages...)
		out.Monitor = append(out.Monitor, r.Monitor...)
		if r.Ended > out.Ended {
			out.Ended = r.Ended
		}
	}
	return out
}

type event struct {
	t    int64
	kind int // 0 arrive, 1 done, 2 timeout, 3 sample
	user int
	req  *request
}

type request struct {
	lane         bool
	user, iter   int
	intended     int64
	start        int64
	done, queued bool
	failed       bool
	admitted     int64 // Stream: when it got a slot
	tokNS        int64 // Stream: its time per token
	prefill      int64 // Stream: its time to the first token once admitted
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

// Run is a simulated run's run.json: the run file type replay writes
// (runspec.Run), with the fields a simulated run fills in.
type Run struct{ runspec.Run }

// JSON is run.json's text.
func (r *Run) JSON() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// Epoch is when every simulated run starts.
var Epoch = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// Simulate runs the model through its stages (each starting empty) and
// returns run.json, the result rows and the samples (GPU when the model
// says, host CPU always). The same seed gives the same rows.
func Simulate(m Model, seed uint64) (*Run, []captures.Result, []captures.Sample) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if m.StageLen == 0 {
		m.StageLen = 20 * time.Second
	}
	service := m.Name
	if m.ServiceName != "" {
		service = m.ServiceName
	}
	think := &runspec.Think{Uniform: []runspec.Duration{runspec.Duration(m.Think / 2), runspec.Duration(m.Think * 3 / 2)}}
	info := &Run{runspec.Run{ID: "run-" + m.Name, Started: Epoch.Format(time.RFC3339Nano), TimeScale: 1,
		Targets: map[string]string{service: m.URL()},
		Profile: runspec.Profile{Scenarios: map[string]runspec.Scenario{m.Name: {Service: service, Mode: "closed", Think: think}}}}}
	info.Monitor = []runspec.Monitor{{Source: "host"}}
	if m.PromGPU {
		info.Monitor = append(info.Monitor, runspec.Monitor{Source: "prom", URL: m.URL() + "/metrics", Service: service})
	}
	var rows []captures.Result
	var samples []captures.Sample
	t0 := Epoch.UnixNano()
	for si, users := range m.Users {
		start := t0 + int64(si)*int64(m.StageLen)
		end := start + int64(m.StageLen)
		info.Stages = append(info.Stages, runspec.Stage{Scenario: m.Name, Stage: si + 1, Users: users,
			Start: time.Unix(0, start).UTC().Format(time.RFC3339Nano), End: time.Unix(0, end).UTC().Format(time.RFC3339Nano)})
		z := m.Think
		if m.RealThink > 0 {
			z = m.RealThink
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
			if m.Lag != nil {
				lag = int64(m.Lag(users))
			}
			op := "op"
			if req.lane {
				op = m.Lane.Operation
			}
			rows = append(rows, captures.Result{Run: info.ID, Scenario: m.Name, Stage: int32(si + 1), StageUsers: int32(users),
				VU: int32(req.user), Iteration: int64(req.iter), Operation: op, Service: service,
				IntendedNS: req.intended, StartNS: req.start + lag, DurationNS: t - req.start, TTFBNS: (t - req.start) / 2,
				Status: 200, ErrorKind: kind, Error: text, ActiveUsers: int32(users)})
			if m.Stream != nil {
				m.Stream.fill(&rows[len(rows)-1], req)
			}
		}
		startService := func(req *request, t int64) {
			busy++
			inService[req] = true
			var d int64
			if m.Stream != nil {
				d = m.Stream.start(rng, req, t, busy, users)
			} else {
				d = int64(m.Service(rng, busy+len(queue), users))
			}
			if m.Drift != nil {
				slow, _ := m.Drift(time.Duration(t-start), users)
				d = int64(float64(d) * slow)
			}
			heap.Push(&q, event{t: t + d, kind: 1, req: req})
		}
		laneBusy := 0
		var laneQueue []*request
		startLane := func(req *request, t int64) {
			laneBusy++
			inService[req] = true
			heap.Push(&q, event{t: t + int64(m.Lane.Service(rng)), kind: 1, req: req})
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
				if m.Lane != nil && rng.Float64() < m.Lane.Share {
					req.lane = true
					if laneBusy < m.Lane.Servers {
						startLane(req, e.t)
					} else {
						req.queued = true
						laneQueue = append(laneQueue, req)
					}
					continue
				}
				if busy < m.Servers {
					startService(req, e.t)
				} else {
					req.queued = true
					queue = append(queue, req)
					if m.Timeout > 0 {
						heap.Push(&q, event{t: e.t + int64(m.Timeout), kind: 2, req: req})
					}
				}
			case 1:
				if e.req.lane {
					laneBusy--
					delete(inService, e.req)
					emit(e.req, e.t, "", "")
					heap.Push(&q, event{t: e.t + drawThink(), kind: 0, user: e.req.user})
					if len(laneQueue) > 0 {
						next := laneQueue[0]
						laneQueue = laneQueue[1:]
						next.queued = false
						startLane(next, e.t)
					}
					continue
				}
				busy--
				delete(inService, e.req)
				kind, text := "", ""
				if m.Fail != nil {
					kind, text = m.Fail(rng, users)
				}
				if m.Drift != nil {
					if _, share := m.Drift(time.Duration(e.t-start), users); rng.Float64() < share {
						kind, text = runspec.ErrHTTP5xx, "HTTP 500: internal error"
					}
				}
				emit(e.req, e.t, kind, text)
				e.req.done = true
				heap.Push(&q, event{t: e.t + drawThink(), kind: 0, user: e.req.user})
				for len(queue) > 0 && busy < m.Servers {
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
				emit(e.req, e.t, m.ErrKind, m.ErrText)
				heap.Push(&q, event{t: e.t + drawThink(), kind: 0, user: e.req.user})
			case 3:
				switch {
				case m.GPU != nil && m.PromGPU:
					samples = append(samples, captures.Sample{TNS: e.t, Source: "prom", Device: m.URL() + "/metrics", Metric: `DCGM_FI_DEV_GPU_UTIL{gpu="0"}`, Value: m.GPU(rng, busy, m.Servers)})
				case m.GPU != nil:
					samples = append(samples, captures.Sample{TNS: e.t, Source: "nvml", Device: "0", Metric: "gpu_util", Value: m.GPU(rng, busy, m.Servers)})
				}
				if m.GPUMem != nil {
					samples = append(samples,
						captures.Sample{TNS: e.t, Source: "nvml", Device: "0", Metric: "gpu_mem_total_bytes", Value: 6 << 30},
						captures.Sample{TNS: e.t, Source: "nvml", Device: "0", Metric: "gpu_mem_used_bytes", Value: m.GPUMem(users) / 100 * (6 << 30)})
				}
				if m.KVCache != nil {
					samples = append(samples, captures.Sample{TNS: e.t, Source: "prom", Device: m.URL() + "/metrics", Metric: "vllm:gpu_cache_usage_perc", Value: m.KVCache(users)})
				}
				cpu := 20 + 60*float64(busy)/float64(max(m.Servers, 1)) + rng.Float64()
				if m.HostCPU != nil {
					cpu = m.HostCPU(users)
				}
				samples = append(samples, captures.Sample{TNS: e.t, Source: "host", Metric: "cpu_util", Value: cpu})
				if m.HostSteal != nil {
					samples = append(samples, captures.Sample{TNS: e.t, Source: "host", Metric: "cpu_steal", Value: m.HostSteal(users)})
				}
			}
		}
		for req := range inService {
			emit(req, end, runspec.ErrCutOff, "")
		}
		for _, req := range append(queue, laneQueue...) {
			emit(req, end, runspec.ErrCutOff, "")
		}
	}
	info.Ended = time.Unix(0, t0+int64(len(m.Users))*int64(m.StageLen)).UTC().Format(time.RFC3339Nano)
	return info, rows, samples
}

// Around is a service time of base plus an exponential spread.
func Around(base, spread time.Duration) func(*rand.Rand, int, int) time.Duration {
	return func(r *rand.Rand, _, _ int) time.Duration {
		return base + time.Duration(r.ExpFloat64()*float64(spread))
	}
}

// The known models.
var (
	// Serialized is one worker: latency linear in users, throughput flat.
	Serialized = Model{Name: "mcp", Users: []int{1, 5, 10, 20}, Servers: 1, Think: 200 * time.Millisecond,
		Service: Around(40*time.Millisecond, 10*time.Millisecond)}
	// Pool is ten connections with a 300 ms wait: errors from 50 users.
	Pool = Model{Name: "rag", Users: []int{2, 5, 25, 50}, Servers: 10, Think: 100 * time.Millisecond,
		Service: Around(80*time.Millisecond, 20*time.Millisecond), Timeout: 300 * time.Millisecond,
		ErrKind: runspec.ErrTimeout, ErrText: "pool timeout: no connection within 300ms"}
	// Retrograde is four workers whose work grows with the queue.
	Retrograde = Model{Name: "retro", Users: []int{1, 4, 8, 16, 32}, Servers: 4, Think: 100 * time.Millisecond,
		Service: func(r *rand.Rand, n, _ int) time.Duration {
			return time.Duration(float64(50*time.Millisecond) * (1 + 0.08*float64(n-1)) * (0.9 + 0.2*r.Float64()))
		}}
	// Quadratic is a server whose work per request grows with the square
	// of the requests in it: throughput peaks at 4 users and falls to a
	// quarter of it while latency grows over 100×, and the one-user
	// latency is small enough that peak throughput times it stays near 1.
	Quadratic = Model{Name: "quad", Users: []int{1, 4, 8, 16, 32}, Servers: 1000, Think: 10 * time.Millisecond,
		Service: func(r *rand.Rand, n, _ int) time.Duration {
			return time.Duration(float64(4*time.Millisecond) * (1 + 0.15*float64(n*n)) * (0.9 + 0.2*r.Float64()))
		}}
	// Healthy is a wide server: no queueing at any load tried.
	Healthy = Model{Name: "gateway", Users: []int{1, 5, 10, 20}, Servers: 1000, Think: 200 * time.Millisecond,
		Service: Around(40*time.Millisecond, 10*time.Millisecond)}
	// GPUBound is a batch of eight on a GPU that is busy when they are.
	GPUBound = Model{Name: "gateway", Users: []int{1, 4, 16, 32, 64}, Servers: 8, Think: 100 * time.Millisecond,
		Service: Around(75*time.Millisecond, 5*time.Millisecond),
		GPU: func(r *rand.Rand, busy, servers int) float64 {
			return math.Min(100, 30+70*float64(busy)/float64(servers)+2*r.Float64())
		}}
	// CPUBound is the same eight slots with the GPU idling at 25 %.
	CPUBound = Model{Name: "gateway", Users: []int{1, 4, 16, 32, 64}, Servers: 8, Think: 100 * time.Millisecond,
		Service: Around(75*time.Millisecond, 5*time.Millisecond),
		GPU:     func(r *rand.Rand, _, _ int) float64 { return 24 + 2*r.Float64() }}
)
