package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// liveEvery is how often the live view redraws or logs.
const (
	liveEvery    = time.Second
	logEvery     = 10 * time.Second
	recentKeep   = 4096 // durations kept per stage for the live p95
	metricsGrace = 2 * time.Second
)

// live is the run's live view and metrics. It is fed by the sink's
// goroutine (observe) and read by its own ticker goroutine, so sending
// never waits for it.
type live struct {
	out    io.Writer
	tty    bool
	mu     sync.Mutex
	stats  map[string]*liveStage // "scenario/stage"
	series map[obsKey]*obsSeries
	runs   []*scenarioRun

	requests, errors, cutOff atomic.Int64

	reg      *prometheus.Registry
	reqs     *prometheus.CounterVec
	dur      *prometheus.HistogramVec
	lag      *prometheus.HistogramVec
	users    *prometheus.GaugeVec
	stageNow *prometheus.GaugeVec

	stopCh chan struct{}
	done   chan struct{}
	logMu  sync.Mutex
	prog   atomic.Pointer[mpb.Progress] // while bars are shown, lines go above them
}

type liveStage struct {
	count, errs int64
	lastCount   int64
	recent      []float64 // seconds, ring
	next        int
}

func newLive(out io.Writer, p *plan) *live {
	l := &live{out: out, stats: map[string]*liveStage{}, reg: prometheus.NewRegistry()}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			l.tty = true
		}
	}
	l.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loadtape_requests_total", Help: "Requests sent, by scenario, operation and error kind (empty: success)."}, []string{"scenario", "operation", "error_kind"})
	l.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loadtape_request_duration_seconds", Help: "Request duration to the last byte.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"scenario", "operation"})
	l.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loadtape_send_lag_seconds", Help: "Actual minus intended send time.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"scenario"})
	l.users = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loadtape_active_users", Help: "Virtual users active now (this shard)."}, []string{"scenario"})
	l.stageNow = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loadtape_stage", Help: "1-based stage now running."}, []string{"scenario"})
	l.reg.MustRegister(l.reqs, l.dur, l.lag, l.users, l.stageNow)
	return l
}

// obsKey and obsSeries cache the per-row lookups of observe: formatting a
// key and resolving Prometheus label values for every row would cost more
// than the rest of the bookkeeping.
type obsKey struct {
	scenario, operation, kind string
	stage                     int32
}

type obsSeries struct {
	stage *liveStage
	reqs  prometheus.Counter
	dur   prometheus.Observer
	lag   prometheus.Observer
}

// observe takes a batch of written rows (sink goroutine).
func (l *live) observe(rows []captures.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.series == nil {
		l.series = map[obsKey]*obsSeries{}
	}
	var errs int64
	for i := range rows {
		r := &rows[i]
		k := obsKey{r.Scenario, r.Operation, r.ErrorKind, r.Stage}
		se := l.series[k]
		if se == nil {
			key := fmt.Sprintf("%s/%d", r.Scenario, r.Stage)
			ls := l.stats[key]
			if ls == nil {
				ls = &liveStage{recent: make([]float64, 0, 256)}
				l.stats[key] = ls
			}
			se = &obsSeries{stage: ls, reqs: l.reqs.WithLabelValues(r.Scenario, r.Operation, r.ErrorKind),
				dur: l.dur.WithLabelValues(r.Scenario, r.Operation), lag: l.lag.WithLabelValues(r.Scenario)}
			l.series[k] = se
		}
		ls := se.stage
		ls.count++
		if r.ErrorKind != "" {
			ls.errs++
			errs++
			if r.ErrorKind == captures.ErrCutOff {
				l.cutOff.Add(1)
			}
		}
		sec := float64(r.DurationNS) / 1e9
		if len(ls.recent) < recentKeep {
			ls.recent = append(ls.recent, sec)
		} else {
			ls.recent[ls.next%recentKeep] = sec
			ls.next++
		}
		se.reqs.Inc()
		if r.ErrorKind != captures.ErrDropped {
			se.dur.Observe(sec)
			se.lag.Observe(float64(r.StartNS-r.IntendedNS) / 1e9)
		}
	}
	l.requests.Add(int64(len(rows)))
	l.errors.Add(errs)
}

// logf prints a plain line, above the bars on a terminal.
func (l *live) logf(format string, args ...any) {
	if l.out == nil {
		return
	}
	if p := l.prog.Load(); p != nil {
		if _, err := fmt.Fprintf(p, format+"\n", args...); err == nil {
			return
		}
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	fmt.Fprintf(l.out, format+"\n", args...)
}

// snapshot returns a stage's count, errors, requests since the last call
// and p95 in seconds.
func (l *live) snapshot(scenario string, stage int) (count, errs, delta int64, p95 float64) {
	l.mu.Lock()
	ls := l.stats[fmt.Sprintf("%s/%d", scenario, stage)]
	if ls == nil {
		l.mu.Unlock()
		return 0, 0, 0, 0
	}
	count, errs, delta = ls.count, ls.errs, ls.count-ls.lastCount
	ls.lastCount = ls.count
	rec := append([]float64(nil), ls.recent...)
	l.mu.Unlock()
	if len(rec) > 0 {
		sort.Float64s(rec)
		p95 = rec[min(len(rec)-1, int(0.95*float64(len(rec))))]
	}
	return
}

// start begins the display goroutine; it ends on stop.
func (l *live) start(runs []*scenarioRun) {
	l.runs = runs
	for _, s := range runs {
		l.users.WithLabelValues(s.name).Set(0)
		l.stageNow.WithLabelValues(s.name).Set(1)
	}
	l.stopCh, l.done = make(chan struct{}), make(chan struct{})
	go l.loop()
}

func (l *live) stop() {
	if l.stopCh == nil {
		return
	}
	close(l.stopCh)
	<-l.done
}

func (l *live) loop() {
	defer close(l.done)
	var prog *mpb.Progress
	bars := map[string]*mpb.Bar{}
	texts := map[string]*atomic.Value{} // read by mpb's goroutine
	logged := map[string]bool{}
	if l.out != nil && l.tty {
		prog = mpb.New(mpb.WithOutput(l.out), mpb.WithWidth(30), mpb.WithRefreshRate(liveEvery/2))
		l.prog.Store(prog)
	}
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	lastLog := time.Time{}
	last := time.Now()
	for {
		stopping := false
		select {
		case <-tick.C:
		case <-l.stopCh:
			stopping = true
		}
		now := time.Now()
		dt := now.Sub(last).Seconds()
		last = now
		logNow := now.Sub(lastLog) >= logEvery || stopping
		for _, s := range l.runs {
			l.users.WithLabelValues(s.name).Set(float64(s.active.Load()))
			for k := range s.stages {
				st := &s.stages[k]
				if now.Before(st.start) {
					break
				}
				key := fmt.Sprintf("%s/%d", s.name, k+1)
				finished := !now.Before(st.end) || st.ctx.Err() != nil
				count, errs, delta, p95 := l.snapshot(s.name, k+1)
				if delta == 0 && finished && bars[key] == nil && prog != nil && count > 0 {
					continue
				}
				if !finished {
					l.stageNow.WithLabelValues(s.name).Set(float64(k + 1))
				}
				left := max(time.Until(st.end), 0).Round(time.Second)
				load := fmt.Sprintf("users %d", st.shardUsers)
				if s.sc.Mode == ModeOpen {
					load = fmt.Sprintf("rate %g/s", st.rate)
				}
				name := ""
				if n := s.sc.Stages[k].Name; n != "" {
					name = " (" + n + ")"
				}
				rps := float64(delta) / max(dt, 1e-3)
				if finished {
					// The last tick can come moments after the previous one
					// and carry the rows flushed at the stage's end: a
					// finished stage shows its average instead.
					rps = float64(count) / max(st.end.Sub(st.start).Seconds(), 1e-3)
				}
				stats := fmt.Sprintf("%s rps %.1f p95 %s errors %d/%d left %s", load, rps,
					time.Duration(p95*1e9).Round(time.Millisecond), errs, count, left)
				line := fmt.Sprintf("%s stage %d/%d%s: %s", s.name, k+1, len(s.stages), name, stats)
				if prog != nil {
					total := st.end.Sub(st.start).Milliseconds()
					b := bars[key]
					if b == nil && !finished {
						txt := &atomic.Value{}
						txt.Store(stats)
						texts[key] = txt
						b = prog.AddBar(total, mpb.PrependDecorators(decor.Name(fmt.Sprintf("%s %d/%d%s", s.name, k+1, len(s.stages), name))),
							mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return txt.Load().(string) })))
						bars[key] = b
					}
					if txt := texts[key]; txt != nil {
						txt.Store(stats)
					}
					if b != nil {
						if finished {
							b.SetCurrent(total)
						} else {
							b.SetCurrent(min(now.Sub(st.start).Milliseconds(), total))
						}
					}
				} else if logNow && (!finished || !logged[key]) {
					logged[key] = finished
					l.logf("%s", line)
				}
			}
		}
		if logNow {
			lastLog = now
		}
		if stopping {
			if prog != nil {
				l.prog.Store(nil)
				for _, b := range bars {
					b.Abort(false)
				}
				prog.Wait()
			}
			return
		}
	}
}

// serveMetrics serves /metrics at addr until the returned stop is called,
// which gives a last scrape a moment.
func (l *live) serveMetrics(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, badInput(fmt.Errorf("--metrics-addr %s: %w", addr, err))
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(l.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.logf("metrics: %v", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsGrace)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
