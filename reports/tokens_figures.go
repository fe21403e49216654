package reports

import (
	"strings"

	"gonum.org/v1/plot/plotter"

	"github.com/loadtape/loadtape/analyze"
)

// The token figures of a scenario whose stages carried output tokens:
// TTFT and TPOT against users, output tokens/s against users, and the
// trade-off of the rate one user sees against the total as users grow.
// Each is nil for a scenario without token figures.

// tokenStages are the stages whose "all" row has token figures.
func tokenStages(stages []*analyze.Stage) []*analyze.Stage {
	var out []*analyze.Stage
	for _, st := range stages {
		if o := st.Operations[analyze.AllOps]; o != nil && o.Tokens != nil {
			out = append(out, st)
		}
	}
	return out
}

// tokenTTFTFigure and tokenTPOTFigure: TTFT, and TPOT, p50 and p95
// against users, apart so that each keeps its own scale: queueing shows in
// the first, a slower decode in the second.
func tokenTTFTFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	return tokenLatencyFigure(sc, stages, "TTFT", "time to first token", func(o *analyze.OpStats) *analyze.Latency { return o.TTFTMS })
}

func tokenTPOTFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	return tokenLatencyFigure(sc, stages, "TPOT", "time per output token", func(o *analyze.OpStats) *analyze.Latency { return o.TPOTMS })
}

func tokenLatencyFigure(sc *analyze.Scenario, stages []*analyze.Stage, short, long string, get func(*analyze.OpStats) *analyze.Latency) (*Figure, error) {
	ts := tokenStages(stages)
	var p50, p95 plotter.XYs
	for _, st := range ts {
		if l := get(st.Operations[analyze.AllOps]); l != nil && finite(l.P50) && finite(l.P95) {
			p50 = append(p50, plotter.XY{X: float64(st.Users), Y: l.P50})
			p95 = append(p95, plotter.XY{X: float64(st.Users), Y: l.P95})
		}
	}
	if len(p50) == 0 {
		return nil, nil
	}
	title := sc.Name + ": " + long + " (" + short + ") against " + loadLabel(ts)
	p := newPlot(title, "users", short+" ms")
	loadAxis(p, ts)
	if err := addLine(p, short+" p50", p50, 0, false); err != nil {
		return nil, err
	}
	if err := addLine(p, short+" p95", p95, 0, true); err != nil {
		return nil, err
	}
	p.Y.Min, p.X.Min = 0, 0
	kind := "tokens_" + strings.ToLower(short)
	return render(p, kind+"_"+slug(sc.Name), title, sc.Name, kind)
}

// tokenThroughputFigure: output tokens/s and its per-second peak against users.
func tokenThroughputFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	ts := tokenStages(stages)
	if len(ts) == 0 {
		return nil, nil
	}
	p := newPlot(sc.Name+": output tokens/s against "+loadLabel(ts), "users", "output tokens/s")
	loadAxis(p, ts)
	var mean, peak plotter.XYs
	for _, st := range ts {
		t := st.Operations[analyze.AllOps].Tokens
		mean = append(mean, plotter.XY{X: float64(st.Users), Y: t.OutputPerS})
		peak = append(peak, plotter.XY{X: float64(st.Users), Y: t.PeakOutputPerS})
	}
	if err := addLine(p, "output tokens/s", mean, 0, false); err != nil {
		return nil, err
	}
	if err := addLine(p, "peak second", peak, 1, true); err != nil {
		return nil, err
	}
	p.Y.Min, p.X.Min = 0, 0
	return render(p, "tokens_throughput_"+slug(sc.Name), sc.Name+": output tokens/s against "+loadLabel(ts)+", and the busiest second", sc.Name, "tokens_throughput")
}

// tokenTradeoffFigure: per stage, the output rate one request saw (p50)
// against the total output tokens/s: what more users cost each of them.
func tokenTradeoffFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	var xy plotter.XYs
	var labels []string
	for _, st := range tokenStages(stages) {
		t := st.Operations[analyze.AllOps].Tokens
		if t.PerRequest == nil || !finite(t.PerRequest.P50) {
			continue
		}
		xy = append(xy, plotter.XY{X: t.OutputPerS, Y: t.PerRequest.P50})
		labels = append(labels, tickText(float64(st.Users)))
	}
	if len(xy) < 2 {
		return nil, nil
	}
	p := newPlot(sc.Name+": output tokens/s per request against the total", "total output tokens/s", "output tokens/s per request (p50)")
	if err := addLine(p, "one point per stage", xy, 0, false); err != nil {
		return nil, err
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
	if err != nil {
		return nil, err
	}
	p.Add(l)
	p.Y.Min, p.X.Min = 0, 0
	return render(p, "tokens_tradeoff_"+slug(sc.Name), sc.Name+": output tokens/s one request saw against the total, labelled by "+loadLabel(stages), sc.Name, "tokens_tradeoff")
}
