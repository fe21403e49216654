package reports

import (
	"fmt"
	"image/color"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/loadtape/loadtape/analyze"
)

// Figures are as wide as the report's page (1,200 px less its padding, at
// 96 dpi) and set in a sans-serif: gonum/plot's default is a serif.
const figW, figH = 11.5 * vg.Inch, 4.2 * vg.Inch

// legendPad is the space between a plot and its legend beside it.
const legendPad = 6 * vg.Millimeter

func init() {
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
}

// legendWidth is how wide a legend is drawn.
func legendWidth(l plot.Legend) vg.Length {
	r := l.Rectangle(draw.Canvas{})
	return r.Max.X - r.Min.X
}

// drawBeside draws p with its legend to the right of the data, never on
// it: the plot gets the canvas less the legend's width.
func drawBeside(p *plot.Plot, c draw.Canvas, w vg.Length) {
	leg := p.Legend
	if w == 0 { // no entries
		p.Draw(c)
		return
	}
	pc := c
	pc.Max.X -= w + legendPad
	p.Legend = plot.NewLegend()
	p.Draw(pc)
	p.Legend = leg
	dc := p.DataCanvas(pc)
	lc := c
	lc.Min.X = pc.Max.X + legendPad
	lc.Min.Y, lc.Max.Y = dc.Min.Y, dc.Max.Y
	leg.Top, leg.Left, leg.XOffs, leg.YOffs = true, true, 0, 0
	leg.Draw(lc)
}

// tickText writes a tick's value with the digits it needs: 250, not
// 250.00; 0.25, not 0.250000.
func tickText(v float64) string {
	if v == 0 {
		return "0"
	}
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case a >= 1:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// cleanTicks relabels another ticker's major ticks with tickText.
type cleanTicks struct{ plot.Ticker }

func (t cleanTicks) Ticks(min, max float64) []plot.Tick {
	ticks := t.Ticker.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = tickText(ticks[i].Value)
		}
	}
	return ticks
}

// loadTicks puts the x axis's ticks at the stages' loads (users, or
// arrivals per second), leaving out a label too close to the one before.
type loadTicks []float64

func (t loadTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	last := math.Inf(-1)
	for _, v := range t {
		if v < min || v > max {
			continue
		}
		tk := plot.Tick{Value: v}
		if (v-last)/(max-min) >= 0.03 {
			tk.Label = tickText(v)
			last = v
		}
		out = append(out, tk)
	}
	if len(out) == 0 {
		return cleanTicks{plot.DefaultTicks{}}.Ticks(min, max)
	}
	return out
}

// loadAxis sets a figure's x axis to the stages' loads and names it by the
// scenario's mode.
func loadAxis(p *plot.Plot, stages []*analyze.Stage) {
	var loads []float64
	for _, st := range stages {
		loads = append(loads, loadOf(st))
	}
	p.X.Tick.Marker = loadTicks(loads)
	p.X.Label.Text = loadLabel(stages)
}

// loadLabel names the load axis: users, or arrivals per second in open
// mode.
func loadLabel(stages []*analyze.Stage) string {
	if len(stages) > 0 && stages[0].Mode == "open" {
		return "arrivals per second"
	}
	return "users"
}

// paramText writes a fitted parameter: one too small to matter is 0, not
// 5.35e-19.
func paramText(v float64) string {
	if math.Abs(v) < 5e-5 {
		return "0"
	}
	return num(v, "")
}

// bandColor shades every other stage on the timeline.
var bandColor = color.RGBA{235, 238, 242, 255}

// stageBands shades the stages' spans on the timeline (every other one)
// and, when labelled, numbers them at the top.
type stageBands struct {
	spans  [][2]float64 // seconds from the run's start
	labels []string
	label  bool
}

// Plot implements plot.Plotter.
func (b stageBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := text.Style{Font: font.From(plot.DefaultFont, 9), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop, Color: color.Gray{90}}
	for i, s := range b.spans {
		x0, x1 := max(trX(s[0]), c.Min.X), min(trX(s[1]), c.Max.X)
		if x1 <= x0 {
			continue
		}
		if i%2 == 0 {
			c.FillPolygon(bandColor, []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
		}
		if b.label && i < len(b.labels) {
			c.FillText(sty, vg.Point{X: (x0 + x1) / 2, Y: c.Max.Y - vg.Points(2)}, b.labels[i])
		}
	}
}

// bandsOf are the stages' spans on the run's clock, one band per distinct
// span (scenarios that share their stages' times share a band), labelled
// by stage number and, when one scenario or all agree, its load.
func bandsOf(s *analyze.Summary) stageBands {
	var b stageBands
	if s.Timeline == nil {
		return b
	}
	type band struct {
		span  [2]float64
		stage int
		loads map[string]bool
	}
	var bands []*band
	for _, st := range s.Stages {
		start, err1 := time.Parse(time.RFC3339Nano, st.Start)
		end, err2 := time.Parse(time.RFC3339Nano, st.End)
		if err1 != nil || err2 != nil {
			continue
		}
		span := [2]float64{float64(start.UnixNano()-s.Timeline.StartNS) / 1e9, float64(end.UnixNano()-s.Timeline.StartNS) / 1e9}
		var hit *band
		for _, x := range bands {
			if math.Abs(x.span[0]-span[0]) < 1 && math.Abs(x.span[1]-span[1]) < 1 {
				hit = x
			}
		}
		if hit == nil {
			hit = &band{span: span, stage: st.Stage, loads: map[string]bool{}}
			bands = append(bands, hit)
		}
		hit.loads[loadText(st)] = true
	}
	for _, x := range bands {
		b.spans = append(b.spans, x.span)
		l := fmt.Sprint(x.stage)
		if len(x.loads) == 1 {
			for k := range x.loads {
				l += ": " + k
			}
		}
		b.labels = append(b.labels, l)
	}
	return b
}

// logTicks labels a log axis at 1, 2 and 5 times the powers of ten in its
// range, so that a range within one decade (60 to 900 ms) still reads:
// gonum's LogTicks labels only the powers themselves.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	if min <= 0 {
		min = max / 1e6
	}
	var out []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		p := math.Pow(10, e)
		for m := 1; m <= 9; m++ {
			v := float64(m) * p
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = tickText(v)
			}
			out = append(out, t)
		}
	}
	return out
}

// loadOf is where a stage sits on a load axis: its users, or its arrival
// rate in open mode.
func loadOf(st *analyze.Stage) float64 {
	if st.Mode == "open" && st.Rate > 0 {
		return st.Rate
	}
	return float64(st.Users)
}
