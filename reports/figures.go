package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/loadtape/loadtape/analyze"
)

// Figure is one rendered figure, in both formats.
type Figure struct {
	Name     string // file stem under figures/
	Title    string
	Scenario string // "" for run-wide figures
	Kind     string // latency, throughput, cdf, errors, timeline
	SVG, PNG []byte
}

// cdfPoints is how many points a latency CDF is drawn with: quantiles of
// the exact distribution, so a million rows draw as fast as a hundred.
const cdfPoints = 200

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{255, 127, 14, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// figures draws every figure of a summary. The figures are independent
// and drawing them (PNG compression most of all) is the reports' main
// cost: they are drawn on one goroutine per CPU and kept in their order.
func figures(s *analyze.Summary) ([]Figure, error) {
	var jobs []func() (*Figure, error)
	logX, logWhy := cdfScale(s)
	cdf := func(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
		return cdfFigure(sc, stages, logX, logWhy)
	}
	errs := func(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
		return errorFigure(sc, stages, errorBound(s, sc.Name))
	}
	for _, sc := range s.Scenarios {
		stages := stagesOf(s, sc.Name)
		for _, f := range []func(*analyze.Scenario, []*analyze.Stage) (*Figure, error){latencyFigure, opLatencyFigure, throughputFigure, cdf, errs,
			tokenTTFTFigure, tokenTPOTFigure, tokenThroughputFigure, tokenTradeoffFigure} { // token figures: tokens_figures.go
			jobs = append(jobs, func() (*Figure, error) { return f(sc, stages) })
		}
	}
	if s.Comparison != nil {
		for _, sc := range s.Scenarios {
			jobs = append(jobs, func() (*Figure, error) { return compareFigure(s.Comparison, sc.Name) })
		}
	}
	if s.Timeline != nil {
		jobs = append(jobs, func() (*Figure, error) { return timelineFigure(s) })
	}
	figs := make([]*Figure, len(jobs))
	failed := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(1, len(jobs))) {
		wg.Add(1)
		go func() { // ends when the jobs run out
			defer wg.Done()
			for i := range next {
				figs[i], failed[i] = jobs[i]()
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	var out []Figure
	for i, fig := range figs {
		if failed[i] != nil {
			return nil, failed[i]
		}
		if fig != nil {
			out = append(out, *fig)
		}
	}
	return out, nil
}

func stagesOf(s *analyze.Summary, scenario string) []*analyze.Stage {
	var out []*analyze.Stage
	for _, st := range s.Stages {
		if st.Scenario == scenario {
			out = append(out, st)
		}
	}
	slices.SortStableFunc(out, func(a, b *analyze.Stage) int { return a.Users - b.Users })
	return out
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.X.Tick.Marker = cleanTicks{plot.DefaultTicks{}}
	p.Y.Tick.Marker = cleanTicks{plot.DefaultTicks{}}
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line with points, or only points for a single value.
func addLine(p *plot.Plot, name string, xy plotter.XYs, i int, dashed bool) error {
	if len(xy) == 0 {
		return nil
	}
	c := palette[i%len(palette)]
	l, pts, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	l.Color, pts.Color = c, c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	pts.Shape = draw.CircleGlyph{}
	p.Add(l, pts)
	p.Legend.Add(name, l, pts)
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// latencyFigure: p50, p95, p99 of all operations and the p95 of each
// operation, against users.
func latencyFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	p := newPlot(sc.Name+": latency against "+loadLabel(stages), "users", "latency (ms)")
	loadAxis(p, stages)
	i := 0
	var top float64
	for _, q := range []struct {
		name string
		get  func(analyze.Latency) float64
	}{{"p50 all", func(l analyze.Latency) float64 { return l.P50 }}, {"p95 all", func(l analyze.Latency) float64 { return l.P95 }}, {"p99 all", func(l analyze.Latency) float64 { return l.P99 }}} {
		var xy plotter.XYs
		for _, st := range stages {
			if v := q.get(st.Operations[analyze.AllOps].LatencyMS); finite(v) {
				xy = append(xy, plotter.XY{X: loadOf(st), Y: v})
				top = math.Max(top, v)
			}
		}
		if err := addLine(p, q.name, xy, i, false); err != nil {
			return nil, err
		}
		i++
	}
	ops := opNames(stages)
	if len(ops) > 1 {
		for _, op := range ops {
			var xy plotter.XYs
			for _, st := range stages {
				if o := st.Operations[op]; o != nil && finite(o.LatencyMS.P95) {
					xy = append(xy, plotter.XY{X: loadOf(st), Y: o.LatencyMS.P95})
					top = math.Max(top, o.LatencyMS.P95)
				}
			}
			if err := addLine(p, "p95 "+op, xy, i, true); err != nil {
				return nil, err
			}
			i++
		}
	}
	p.Y.Min = 0
	addGoal(p, sc.P95Goal, top)
	return render(p, "latency_"+slug(sc.Name), sc.Name+": latency percentiles against "+loadLabel(stages), sc.Name, "latency")
}

// throughputFigure: successful requests per second against users, with
// the fitted Universal Scalability Law.
func throughputFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	if len(sc.Points) == 0 {
		return nil, nil
	}
	p := newPlot(sc.Name+": throughput against "+loadLabel(stages), "users", "successful requests/s")
	loadAxis(p, stages)
	var xy plotter.XYs
	var maxN float64
	for _, pt := range sc.Points {
		xy = append(xy, plotter.XY{X: pt.Users, Y: pt.X})
		maxN = math.Max(maxN, pt.Users)
	}
	if err := addLine(p, "measured", xy, 0, false); err != nil {
		return nil, err
	}
	if f := sc.USL; f != nil {
		usl := plotter.NewFunction(f.X)
		usl.Color = palette[1]
		usl.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		usl.XMin, usl.XMax = 0, maxN*1.2
		usl.Samples = 100
		p.Add(usl)
		for k := 0; k <= 100; k++ { // the axis holds the whole fitted curve
			if y := f.X(usl.XMax * float64(k) / 100); finite(y) {
				p.Y.Max = math.Max(p.Y.Max, y*1.05)
			}
		}
		p.Legend.Add(fmt.Sprintf("USL fit σ=%s κ=%s", paramText(f.Sigma), paramText(f.Kappa)), usl)
	}
	if sc.KneeN > 0 {
		knee, err := plotter.NewScatter(plotter.XYs{{X: sc.KneeN, Y: kneeX(sc)}})
		if err != nil {
			return nil, err
		}
		knee.Shape = draw.RingGlyph{}
		knee.Radius = vg.Points(7)
		knee.Color = color.RGBA{200, 0, 0, 255}
		p.Add(knee)
		p.Legend.Add(fmt.Sprintf("knee at %s %s", tickText(sc.KneeN), loadLabel(stages)), knee)
	}
	p.Y.Min, p.X.Min = 0, 0
	return render(p, "throughput_"+slug(sc.Name), sc.Name+": throughput against "+loadLabel(stages)+" with the fitted USL", sc.Name, "throughput")
}

func kneeX(sc *analyze.Scenario) float64 {
	for _, pt := range sc.Points {
		if pt.Users == sc.KneeN {
			return pt.X
		}
	}
	return 0
}

// cdfFigure: the latency CDF of each stage, drawn from cdfPoints exact
// quantiles.
func cdfFigure(sc *analyze.Scenario, stages []*analyze.Stage, logX bool, logWhy string) (*Figure, error) {
	p := newPlot(sc.Name+": latency CDF per stage", "latency (ms)", "share of requests")
	lo, hi := math.Inf(1), 0.0
	for i, st := range stages {
		d := st.Operations[analyze.AllOps].Durations
		if len(d) == 0 {
			continue
		}
		var xy plotter.XYs
		for k := 0; k <= cdfPoints; k++ {
			q := float64(k) / cdfPoints
			v := analyze.Percentile(d, q) / 1e6
			xy = append(xy, plotter.XY{X: v, Y: q})
		}
		lo, hi = math.Min(lo, xy[0].X), math.Max(hi, xy[len(xy)-1].X)
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("stage %d (%s)", st.Stage, loadText(st)), l)
	}
	if hi == 0 {
		return nil, nil
	}
	title := sc.Name + ": latency CDF per stage, linear axis (" + logWhy + ")"
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
		title = sc.Name + ": latency CDF per stage, log axis (" + logWhy + ")"
	}
	p.Y.Min, p.Y.Max = 0, 1
	return render(p, "cdf_"+slug(sc.Name), title, sc.Name, "cdf")
}

// errorFigure: error rate against users, per error kind.
func errorFigure(sc *analyze.Scenario, stages []*analyze.Stage, bound float64) (*Figure, error) {
	p := newPlot(sc.Name+": errors against "+loadLabel(stages), "users", "error rate (%)")
	loadAxis(p, stages)
	var xy plotter.XYs
	kinds := map[string]bool{}
	top := 0.0
	for _, st := range stages {
		all := st.Operations[analyze.AllOps]
		xy = append(xy, plotter.XY{X: loadOf(st), Y: 100 * all.ErrorRate})
		top = math.Max(top, 100*all.ErrorRate)
		for k := range all.Errors {
			kinds[k] = true
		}
	}
	if err := addLine(p, "all errors", xy, 1, false); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) > 1 {
		for i, k := range names {
			var xy plotter.XYs
			for _, st := range stages {
				all := st.Operations[analyze.AllOps]
				if all.Count > 0 {
					xy = append(xy, plotter.XY{X: loadOf(st), Y: 100 * float64(all.Errors[k]) / float64(all.Count)})
				}
			}
			if err := addLine(p, k, xy, i+2, true); err != nil {
				return nil, err
			}
		}
	}
	p.Y.Min = 0
	if p.Y.Max < 1 {
		p.Y.Max = 1
	}
	addBound(p, "error_rate target "+tickText(bound)+" %", bound, top)
	return render(p, "errors_"+slug(sc.Name), sc.Name+": error rate against "+loadLabel(stages), sc.Name, "errors")
}

// timelineFigure: RPS, p95, errors and GPU/CPU utilisation over the run,
// one panel each, per-bucket series already bounded by analyze.
func timelineFigure(s *analyze.Summary) (*Figure, error) {
	tl := s.Timeline
	if len(tl.Series) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(tl.Series))
	for n := range tl.Series {
		names = append(names, n)
	}
	slices.Sort(names)
	xlabel := "seconds since the run started (shaded: stages, numbered at the top)"
	bands := bandsOf(s)
	panels := []*plot.Plot{
		newPlot("requests per second", xlabel, "req/s"),
		newPlot(fmt.Sprintf("p95 latency per %gs bucket (histogram)", tl.BucketS), xlabel, "ms"),
		newPlot("errors per second", xlabel, "errors/s"),
		newPlot("utilisation", xlabel, "%"),
	}
	for i, p := range panels {
		b := bands
		b.label = i == 0
		p.Add(b) // first, so that the lines are drawn over the bands
	}
	toXY := func(v []analyze.XY) plotter.XYs {
		out := make(plotter.XYs, len(v))
		for i, p := range v {
			out[i] = plotter.XY{X: p.X, Y: p.Y}
		}
		return out
	}
	for i, n := range names {
		se := tl.Series[n]
		for j, v := range [][]analyze.XY{se.RPS, se.P95MS, se.Errors} {
			if len(v) == 0 {
				continue
			}
			l, err := plotter.NewLine(toXY(v))
			if err != nil {
				return nil, err
			}
			l.Color = palette[i%len(palette)]
			panels[j].Add(l)
			panels[j].Legend.Add(n, l)
		}
	}
	for i, v := range [][]analyze.XY{tl.GPUUtil, tl.CPUUtil} {
		if len(v) == 0 {
			continue
		}
		l, err := plotter.NewLine(toXY(v))
		if err != nil {
			return nil, err
		}
		l.Color = palette[(i+3)%len(palette)]
		panels[3].Add(l)
		panels[3].Legend.Add([]string{"GPU", "CPU"}[i], l)
	}
	for i, p := range panels {
		p.Y.Min = 0
		if i < len(panels)-1 {
			p.X.Label.Text = "" // the bottom panel names the shared axis
		}
	}
	const h = 9 * vg.Inch
	fig := &Figure{Name: "timeline", Title: "Timeline of the run: RPS, p95, errors, GPU and CPU utilisation; shaded bands are the stages", Kind: "timeline"}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(6), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	drawAll := func(c draw.Canvas) { drawGrid(grid, tiles, c, false) }
	var err error
	fig.SVG, fig.PNG, err = renderWith(figW, h, drawAll)
	return fig, err
}

func render(p *plot.Plot, name, title, scenario, kind string) (*Figure, error) {
	w := legendWidth(p.Legend)
	svg, png, err := renderWith(figW, figH, func(c draw.Canvas) { drawBeside(p, c, w) })
	if err != nil {
		return nil, err
	}
	return &Figure{Name: name, Title: title, Scenario: scenario, Kind: kind, SVG: svg, PNG: png}, nil
}

// renderWith draws once as SVG and once as PNG (96 dpi).
func renderWith(w, h vg.Length, drawFn func(draw.Canvas)) (svg, png []byte, err error) {
	white := func(c draw.Canvas) { // the legend's strip too, not only the plot
		c.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: w, Y: 0}, {X: w, Y: h}, {X: 0, Y: h}})
		drawFn(c)
	}
	sc := vgsvg.New(w, h)
	white(draw.New(sc))
	var sb bytes.Buffer
	if _, err := sc.WriteTo(&sb); err != nil {
		return nil, nil, fmt.Errorf("reports: svg: %w", err)
	}
	ic := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))
	white(draw.New(ic))
	var pb bytes.Buffer
	// What vgimg.PngCanvas.WriteTo does (png.Encode), with the encoder's
	// buffers and compressor reused from figure to figure: the same bytes.
	if err := pngEncoder.Encode(&pb, ic.Image()); err != nil {
		return nil, nil, fmt.Errorf("reports: png: %w", err)
	}
	return sb.Bytes(), pb.Bytes(), nil
}

// pngEncoder is png.Encode's encoder with a pool of its buffers, for
// figures drawn on several goroutines at once.
var pngEncoder = png.Encoder{BufferPool: &pngBuffers{}}

type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	if e, ok := b.p.Get().(*png.EncoderBuffer); ok {
		return e
	}
	return nil
}

func (b *pngBuffers) Put(e *png.EncoderBuffer) { b.p.Put(e) }

func opNames(stages []*analyze.Stage) []string {
	set := map[string]bool{}
	for _, st := range stages {
		for k := range st.Operations {
			if k != analyze.AllOps {
				set[k] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// slug makes a scenario name safe in a file name.
func slug(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// compareFigure: p50 and p95 of all operations against users, base run
// dashed, new run solid.
func compareFigure(c *analyze.Comparison, scenario string) (*Figure, error) {
	var b50, b95, n50, n95 plotter.XYs
	for _, o := range c.Operations {
		if o.Scenario != scenario || o.Operation != analyze.AllOps {
			continue
		}
		u := float64(o.Users)
		b50, b95 = append(b50, plotter.XY{X: u, Y: o.P50.Base}), append(b95, plotter.XY{X: u, Y: o.P95.Base})
		n50, n95 = append(n50, plotter.XY{X: u, Y: o.P50.New}), append(n95, plotter.XY{X: u, Y: o.P95.New})
	}
	if len(b50) == 0 {
		return nil, nil
	}
	p := newPlot(scenario+": base against new", "users", "latency (ms)")
	var users loadTicks
	for _, xy := range n50 {
		users = append(users, xy.X)
	}
	p.X.Tick.Marker = users
	for i, l := range []struct {
		name   string
		xy     plotter.XYs
		dashed bool
	}{{"p50 base", b50, true}, {"p95 base", b95, true}, {"p50 new", n50, false}, {"p95 new", n95, false}} {
		if err := addLine(p, l.name, l.xy, i%2, l.dashed); err != nil {
			return nil, err
		}
	}
	p.Y.Min = 0
	return render(p, "compare_"+slug(scenario), scenario+": latency of the base run (dashed) and the new run", scenario, "compare")
}

// opLatencyFigure: small multiples, one panel per operation with its p50,
// p95 and p99 against users.
func opLatencyFigure(sc *analyze.Scenario, stages []*analyze.Stage) (*Figure, error) {
	ops := opNames(stages)
	if len(ops) < 2 {
		return nil, nil
	}
	var panels []*plot.Plot
	for _, op := range ops {
		p := newPlot(op, loadLabel(stages), "ms")
		loadAxis(p, stages)
		p.Title.TextStyle.Font.Size = vg.Points(10)
		for i, q := range []struct {
			name string
			get  func(analyze.Latency) float64
		}{{"p50", func(l analyze.Latency) float64 { return l.P50 }}, {"p95", func(l analyze.Latency) float64 { return l.P95 }}, {"p99", func(l analyze.Latency) float64 { return l.P99 }}} {
			var xy plotter.XYs
			for _, st := range stages {
				if o := st.Operations[op]; o != nil && finite(q.get(o.LatencyMS)) {
					xy = append(xy, plotter.XY{X: loadOf(st), Y: q.get(o.LatencyMS)})
				}
			}
			if err := addLine(p, q.name, xy, i, false); err != nil {
				return nil, err
			}
		}
		p.Y.Min = 0
		panels = append(panels, p)
	}
	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	h := vg.Length(rows) * 2.6 * vg.Inch
	drawAll := func(c draw.Canvas) {
		grid := make([][]*plot.Plot, rows)
		for i := range grid {
			grid[i] = make([]*plot.Plot, cols)
		}
		for i, p := range panels {
			grid[i/cols][i%cols] = p
		}
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(8), PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
		drawGrid(grid, tiles, c, true)
	}
	svg, png, err := renderWith(figW, h, drawAll)
	if err != nil {
		return nil, err
	}
	return &Figure{Name: "latency_ops_" + slug(sc.Name), Title: sc.Name + ": latency percentiles against users, per operation",
		Scenario: sc.Name, Kind: "latency_ops", SVG: svg, PNG: png}, nil
}

// cdfScale picks one x scale for every scenario's CDF, so that they read
// alike: log when some scenario's latencies span more than 20 times (its
// fast requests would be a vertical line on a linear axis), else linear.
func cdfScale(s *analyze.Summary) (bool, string) {
	var spread float64
	var widest string
	for _, st := range s.Stages {
		d := st.Operations[analyze.AllOps]
		if d == nil || len(d.Durations) == 0 || d.Durations[0] <= 0 {
			continue
		}
		lo := float64(d.Durations[0])
		for _, o := range s.Stages {
			if o.Scenario != st.Scenario {
				continue
			}
			if od := o.Operations[analyze.AllOps]; od != nil && len(od.Durations) > 0 {
				if r := float64(od.Durations[len(od.Durations)-1]) / lo; r > spread {
					spread, widest = r, st.Scenario
				}
			}
		}
	}
	if spread > 20 {
		return true, fmt.Sprintf("latencies span %s× in %s", tickText(math.Round(spread)), widest)
	}
	return false, fmt.Sprintf("latencies span at most %s×", tickText(math.Round(math.Max(spread, 1))))
}

// addGoal draws a target's bound as a line when it lies near the data
// (up to 1.5 times the highest point) and otherwise says in the legend
// where it is, so that a 2,000 ms bound does not flatten a 60 ms axis.
func addGoal(p *plot.Plot, goal, top float64) {
	addBound(p, "p95 target "+tickText(goal)+" ms", goal, top)
}

// addBound draws a bound at y = goal near the data, or names it as above
// the axis.
func addBound(p *plot.Plot, name string, goal, top float64) {
	if goal <= 0 {
		return
	}
	if top > 0 && goal > 1.5*top {
		p.Legend.Add(name + ": above this axis")
		return
	}
	l := plotter.NewFunction(func(float64) float64 { return goal })
	l.Color = color.RGBA{200, 0, 0, 255}
	l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(l)
	p.Legend.Add(name, l)
	p.Y.Max = math.Max(p.Y.Max, goal*1.05)
}

// drawGrid draws aligned panels with their legends to the right of the
// grid, never on the data: one legend per row, or, when shared (every
// panel has the same entries), the first panel's once at the top.
func drawGrid(grid [][]*plot.Plot, tiles draw.Tiles, c draw.Canvas, shared bool) {
	var w vg.Length
	for _, row := range grid {
		for _, p := range row {
			if p != nil {
				w = max(w, legendWidth(p.Legend))
			}
		}
	}
	inner := c
	if w > 0 {
		inner.Max.X -= w + legendPad
	}
	legends := make([][]plot.Legend, len(grid))
	for i, row := range grid {
		legends[i] = make([]plot.Legend, len(row))
		for j, p := range row {
			if p != nil {
				legends[i][j], p.Legend = p.Legend, plot.NewLegend()
			}
		}
	}
	cs := plot.Align(grid, tiles, inner)
	for i, row := range grid {
		for j, p := range row {
			if p == nil {
				continue
			}
			p.Draw(cs[i][j])
			p.Legend = legends[i][j]
			if w == 0 || j != 0 || (shared && i != 0) {
				continue
			}
			dc := p.DataCanvas(cs[i][j])
			lc := c
			lc.Min.X = inner.Max.X + legendPad
			lc.Min.Y, lc.Max.Y = dc.Min.Y, dc.Max.Y
			if shared {
				lc.Min.Y = c.Min.Y
			}
			leg := legends[i][j]
			leg.Top, leg.Left, leg.XOffs, leg.YOffs = true, true, 0, 0
			leg.Draw(lc)
		}
	}
}

// errorBound is a scenario's error_rate bound over all its operations and
// kinds, in %, or 0 when it has none.
func errorBound(s *analyze.Summary, scenario string) float64 {
	for _, t := range s.Targets {
		if t.Scenario == scenario && t.Metric == "error_rate" && t.ErrorKind == "" && (t.Operation == "" || t.Operation == analyze.AllOps) && t.Max {
			return t.Bound
		}
	}
	return 0
}
