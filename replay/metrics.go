package replay

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsGrace is how long the endpoint stays up after the run, so that a
// scrape in progress can finish.
const metricsGrace = 2 * time.Second

// metrics is the run's Prometheus endpoint (--metrics-addr): counters and
// histograms fed with the written rows by the sink's goroutine, gauges
// read from the scenarios when scraped.
type metrics struct {
	reg  *prometheus.Registry
	reqs *prometheus.CounterVec
	dur  *prometheus.HistogramVec
	lag  *prometheus.HistogramVec
	tok  *tokenMetrics // metrics_tokens.go

	mu     sync.Mutex
	series map[metricKey]*metricSeries

	ended atomic.Bool // the run is over: what is served are its final values
	addr  string      // where serve listens
}

// metricKey and metricSeries cache the label lookups of observe: resolving
// Prometheus label values for every row would cost more than the rest of
// the bookkeeping.
type metricKey struct{ scenario, operation, kind string }

type metricSeries struct {
	reqs prometheus.Counter
	dur  prometheus.Observer
	lag  prometheus.Observer
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), series: map[metricKey]*metricSeries{}}
	m.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loadtape_requests_total", Help: "Requests sent, by scenario, operation and error kind (empty: success)."}, []string{"scenario", "operation", "error_kind"})
	m.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loadtape_request_duration_seconds", Help: "Request duration to the last byte.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"scenario", "operation"})
	m.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loadtape_send_lag_seconds", Help: "Actual minus intended send time.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"scenario"})
	m.reg.MustRegister(m.reqs, m.dur, m.lag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "loadtape_run_ended", Help: "1 once the run is over: the values served are its final ones (--metrics-linger)."},
			func() float64 {
				if m.ended.Load() {
					return 1
				}
				return 0
			}),
		// The load generator's own health, beside the load it makes: a
		// replayer short of CPU or garbage-collecting hard sends late.
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.tok = newTokenMetrics(m.reg)
	return m
}

// track registers the per-scenario gauges, computed at each scrape.
func (m *metrics) track(runs []*scenarioRun) {
	for _, s := range runs {
		labels := prometheus.Labels{"scenario": s.name}
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "loadtape_active_users", Help: "Virtual users active now (this shard).", ConstLabels: labels},
				func() float64 { return float64(s.active.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "loadtape_stage", Help: "1-based stage now running.", ConstLabels: labels},
				func() float64 { return float64(s.stageAt(time.Now())) }))
	}
}

// stageAt is the 1-based stage running at t: the last one started by then.
func (s *scenarioRun) stageAt(t time.Time) int {
	n := 1
	for k := range s.stages {
		if t.Before(s.stages[k].start) {
			break
		}
		n = k + 1
	}
	return n
}

// observe takes a batch of written rows (sink goroutine).
func (m *metrics) observe(rows []captures.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range rows {
		r := &rows[i]
		k := metricKey{r.Scenario, r.Operation, r.ErrorKind}
		se := m.series[k]
		if se == nil {
			se = &metricSeries{reqs: m.reqs.WithLabelValues(r.Scenario, r.Operation, r.ErrorKind),
				dur: m.dur.WithLabelValues(r.Scenario, r.Operation), lag: m.lag.WithLabelValues(r.Scenario)}
			m.series[k] = se
		}
		se.reqs.Inc()
		m.tok.observe(r)
		if r.ErrorKind != runspec.ErrDropped {
			se.dur.Observe(float64(r.DurationNS) / 1e9)
			se.lag.Observe(float64(r.StartNS-r.IntendedNS) / 1e9)
		}
	}
}

// serve serves /metrics, and an index page at /, at addr until the
// returned stop is called. Stop marks the run ended and keeps the final
// values up for linger (cut short when ctx is done: a signal), so that a
// scraper polling every 15 s still reads them, then gives a last scrape
// metricsGrace. Serving errors go to logf.
func (m *metrics) serve(ctx context.Context, addr string, linger time.Duration, logf func(string, ...any)) (stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, badInput(fmt.Errorf("--metrics-addr %s: %w", addr, err))
	}
	m.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/{$}", m.index)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// Ends when stop shuts the server down.
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("metrics: %v", err)
		}
	}()
	return func() error {
		m.ended.Store(true)
		if linger > 0 && ctx.Err() == nil {
			logf("metrics: the run's final values stay at http://%s/metrics for %s (a signal ends this)", m.addr, linger)
			t := time.NewTimer(linger)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		sctx, cancel := context.WithTimeout(context.Background(), metricsGrace)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}, nil
}

// index is the endpoint's front page: where the metrics are and, read from
// the registry at each request, every family served with its help.
func (m *metrics) index(w http.ResponseWriter, r *http.Request) {
	fams, err := m.reg.Gather()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	type row struct{ Name, Type, Help string }
	view := struct {
		Ended bool
		Rows  []row
	}{Ended: m.ended.Load()}
	for _, f := range fams {
		view.Rows = append(view.Rows, row{f.GetName(), f.GetType().String(), f.GetHelp()})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexPage.Execute(w, view); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

var indexPage = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>loadtape replay metrics</title></head>
<body style="font-family:sans-serif">
<h1>loadtape replay</h1>
<p>{{if .Ended}}The run is over: these are its final values.{{else}}The run is in progress.{{end}}
Prometheus metrics: <a href="/metrics">/metrics</a>.</p>
<table border="1" cellpadding="4" style="border-collapse:collapse">
<tr><th>metric</th><th>type</th><th>help</th></tr>
{{range .Rows}}<tr><td><code>{{.Name}}</code></td><td>{{.Type}}</td><td>{{.Help}}</td></tr>
{{end}}</table>
</body></html>
`))
