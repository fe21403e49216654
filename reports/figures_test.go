package reports

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	svgText = regexp.MustCompile(`<text x="([-0-9.]+)" y="[-0-9.]+"[^>]*>([^<]*)</text>`)
	// An axis line: a horizontal black stroke 0.5 wide.
	svgHLine = regexp.MustCompile(`<path d="M([-0-9.]+),([-0-9.]+)L([-0-9.]+),([-0-9.]+)" style="fill:none;stroke:#000000;stroke-width:0.5"`)
	float    = func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
)

// axisRight is the right end of the longest horizontal axis line of an
// SVG figure: the data area's right edge.
func axisRight(svg string) float64 {
	right, longest := 0.0, 0.0
	for _, m := range svgHLine.FindAllStringSubmatch(svg, -1) {
		x0, y0, x1, y1 := float(m[1]), float(m[2]), float(m[3]), float(m[4])
		if y0 != y1 {
			continue
		}
		if l := math.Abs(x1 - x0); l >= longest {
			longest, right = l, math.Max(right, math.Max(x0, x1))
		}
	}
	return right
}

// No legend sits on the data: in every figure, read from the SVG's
// geometry, each legend entry's text starts right of the data area.
func TestLegendsBesideTheData(t *testing.T) {
	t.Parallel()
	s := demoLike(t)
	figs, err := figures(s)
	if err != nil {
		t.Fatal(err)
	}
	legend := map[string][]string{
		"latency":    {"p50 all", "p95 all", "p99 all"},
		"throughput": {"measured", "USL fit"},
		"cdf":        {"stage 1 ("},
		"errors":     {"all errors"},
		"timeline":   {"gateway", "rag", "mcp", "GPU"},
	}
	checked := 0
	for _, f := range figs {
		want := legend[f.Kind]
		if want == nil {
			continue
		}
		svg := string(f.SVG)
		right := axisRight(svg)
		if right == 0 {
			t.Fatalf("%s: no axis line found in the SVG", f.Name)
		}
		for _, entry := range want {
			found := false
			for _, m := range svgText.FindAllStringSubmatch(svg, -1) {
				if !strings.HasPrefix(m[2], entry) {
					continue
				}
				found = true
				if x := float(m[1]); x < right {
					t.Errorf("%s: legend entry %q at x=%v, inside the data area (which ends at x=%v)", f.Name, m[2], x, right)
				}
			}
			if !found {
				t.Errorf("%s: no legend entry %q", f.Name, entry)
			}
		}
		checked++
	}
	if checked < 13 {
		t.Errorf("checked %d figures, want the 4 per scenario and the timeline", checked)
	}
}

// Figures are set in a sans-serif and their numbers have the digits they
// need: no 250.00 tick, no σ=5.35e-19.
func TestFigureText(t *testing.T) {
	t.Parallel()
	figs, err := figures(demoLike(t))
	if err != nil {
		t.Fatal(err)
	}
	trailing := regexp.MustCompile(`^-?\d+\.\d*0$`)
	for _, f := range figs {
		svg := string(f.SVG)
		if strings.Contains(svg, "Liberation Serif") || !strings.Contains(svg, "Liberation Sans") {
			t.Errorf("%s: not set in Liberation Sans", f.Name)
		}
		for _, m := range svgText.FindAllStringSubmatch(svg, -1) {
			if trailing.MatchString(m[2]) || strings.Contains(m[2], "e-1") {
				t.Errorf("%s: number %q printed with digits it does not need", f.Name, m[2])
			}
		}
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{250, "250"}, {0.25, "0.25"}, {1e-7, "1e-07"}, {2.5e6, "2.5e+06"}, {12.5, "12.5"}} {
		if got := tickText(c.v); got != c.want {
			t.Errorf("tickText(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := paramText(5.35e-19); got != "0" {
		t.Errorf("paramText(5.35e-19) = %q, want 0", got)
	}
}

// Ticks sit at the stages' loads, and a label too close to the previous
// one is left out.
func TestLoadTicks(t *testing.T) {
	t.Parallel()
	ticks := loadTicks{1, 2, 10, 50, 100}.Ticks(0, 100)
	var labels []string
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
	}
	if want := []string{"1", "", "10", "50", "100"}; strings.Join(labels, ",") != strings.Join(want, ",") {
		t.Errorf("labels %q, want %q", labels, want)
	}
}
