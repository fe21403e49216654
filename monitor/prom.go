package monitor

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// promSource scrapes a Prometheus text endpoint. Metric names stay as they
// are; labels are folded into the name ({gpu="0"}) so series stay apart;
// histograms and summaries give their _sum and _count. Device is the URL.
type promSource struct {
	u      *url.URL
	client *http.Client
	log    func(string, ...any)
	failed bool // a failure was reported; say again only after a success
}

func newProm(u *url.URL, log func(string, ...any)) *promSource {
	return &promSource{u: u, client: &http.Client{Timeout: 2 * time.Second}, log: log}
}

func (p *promSource) Info() SourceInfo {
	return SourceInfo{Source: "prom", URL: p.u.String(), HostPort: runspec.HostPortOf(p.u)}
}

func (p *promSource) Sample(ctx context.Context, t time.Time, out []captures.Sample) []captures.Sample {
	fams, err := p.scrape(ctx)
	if err != nil {
		if !p.failed && ctx.Err() == nil {
			p.log("monitor: prom %s: %v", p.u, err)
		}
		p.failed = true
		return out
	}
	p.failed = false
	return appendFamilies(out, t.UnixNano(), p.u.String(), fams)
}

func (p *promSource) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape answered %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// appendFamilies flattens metric families into sample rows, sorted by name
// for stable output.
func appendFamilies(out []captures.Sample, ts int64, dev string, fams map[string]*dto.MetricFamily) []captures.Sample {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	add := func(name string, v float64) {
		if !math.IsNaN(v) {
			out = append(out, captures.Sample{TNS: ts, Source: "prom", Device: dev, Metric: name, Value: v})
		}
	}
	for _, n := range names {
		for _, m := range fams[n].GetMetric() {
			name := n + labels(m.GetLabel())
			switch {
			case m.Gauge != nil:
				add(name, m.GetGauge().GetValue())
			case m.Counter != nil:
				add(name, m.GetCounter().GetValue())
			case m.Untyped != nil:
				add(name, m.GetUntyped().GetValue())
			case m.Histogram != nil:
				add(n+"_sum"+labels(m.GetLabel()), m.GetHistogram().GetSampleSum())
				add(n+"_count"+labels(m.GetLabel()), float64(m.GetHistogram().GetSampleCount()))
			case m.Summary != nil:
				add(n+"_sum"+labels(m.GetLabel()), m.GetSummary().GetSampleSum())
				add(n+"_count"+labels(m.GetLabel()), float64(m.GetSummary().GetSampleCount()))
			}
		}
	}
	return out
}

func labels(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (p *promSource) Close() { p.client.CloseIdleConnections() }
