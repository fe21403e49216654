package diagnose

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Verdict is how the analyser did on one target.
type Verdict struct {
	// Right: the planted kind was named (on the planted operation when
	// the target has one); for a control, no finding at all.
	Right bool
	// Named are the distinct kinds of the target's findings, sorted.
	Named []string
	// FalseAlarms are the named kinds other than the planted one and the
	// target's Also (every named kind of a control).
	FalseAlarms []string
}

// Judge scores one outcome against its planted kind. A failed pipeline is
// never right.
func Judge(o Outcome) Verdict {
	var v Verdict
	for _, f := range o.Findings {
		if !slices.Contains(v.Named, f.Kind) {
			v.Named = append(v.Named, f.Kind)
		}
		if f.Kind != o.Target.Planted && !slices.Contains(o.Target.Also, f.Kind) && !slices.Contains(v.FalseAlarms, f.Kind) {
			v.FalseAlarms = append(v.FalseAlarms, f.Kind)
		}
		if o.Target.Planted != KindNone && f.Kind == o.Target.Planted &&
			(o.Target.Operation == "" || f.Operation == o.Target.Operation) {
			v.Right = true
		}
	}
	sort.Strings(v.Named)
	sort.Strings(v.FalseAlarms)
	if o.Err != "" {
		v.Right = false
	} else if o.Target.Planted == KindNone {
		v.Right = len(o.Findings) == 0
	}
	return v
}

// rowOrder is the order of planted kinds in the matrix; colOrder that of
// named kinds (others follow alphabetically).
var (
	rowOrder = []string{KindSerialization, KindPlateau, KindPool, KindRetrograde, KindTail, KindGPUSaturation, KindDegradation, KindNone}
	colOrder = []string{KindSerialization, KindPlateau, KindPool, KindRetrograde, KindTail, KindGPUSaturation, KindDegradation,
		KindQueueing, KindDecodeSlowdown, "timeouts", "gpu_memory_pressure", KindLoadGen}
)

const (
	colNothing = "(nothing)"
	colFailed  = "(failed)"
	rowControl = "none (control)"
)

func rowName(kind string) string {
	if kind == KindNone {
		return rowControl
	}
	return kind
}

// Matrix is the confusion matrix of a benchmark: planted kind × named
// kinds, with per-row totals.
type Matrix struct {
	Rows    []string // planted kinds present, in rowOrder
	Cols    []string // named kinds present, then (nothing), (failed)
	Cells   map[string]map[string]int
	Targets map[string]int // per row
	Right   map[string]int // per row
	Alarmed map[string]int // per row: targets with at least one false alarm
	// Totals.
	N, NRight, NAlarmed, NFailed int
	// ControlsAlarmed counts controls with any finding; LoadGen targets
	// with a load_generator_saturated finding.
	ControlsAlarmed, LoadGen int
}

// NewMatrix tallies outcomes.
func NewMatrix(outs []Outcome) *Matrix {
	m := &Matrix{Cells: map[string]map[string]int{}, Targets: map[string]int{}, Right: map[string]int{}, Alarmed: map[string]int{}}
	named := map[string]bool{}
	rows := map[string]bool{}
	for _, o := range outs {
		v := Judge(o)
		row := o.Target.Planted
		rows[row] = true
		if m.Cells[row] == nil {
			m.Cells[row] = map[string]int{}
		}
		m.N++
		m.Targets[row]++
		if v.Right {
			m.Right[row]++
			m.NRight++
		}
		if len(v.FalseAlarms) > 0 {
			m.Alarmed[row]++
			m.NAlarmed++
		}
		switch {
		case o.Err != "":
			m.Cells[row][colFailed]++
			m.NFailed++
		case len(v.Named) == 0:
			m.Cells[row][colNothing]++
		}
		for _, k := range v.Named {
			m.Cells[row][k]++
			named[k] = true
		}
		if row == KindNone && len(v.Named) > 0 {
			m.ControlsAlarmed++
		}
		if slices.Contains(v.Named, KindLoadGen) {
			m.LoadGen++
		}
	}
	for _, k := range rowOrder {
		if rows[k] {
			m.Rows = append(m.Rows, k)
		}
	}
	for _, k := range colOrder {
		if named[k] {
			m.Cols = append(m.Cols, k)
			delete(named, k)
		}
	}
	var rest []string
	for k := range named {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	m.Cols = append(m.Cols, rest...)
	m.Cols = append(m.Cols, colNothing, colFailed)
	return m
}

// Share is the share of targets named right.
func (m *Matrix) Share() float64 {
	if m.N == 0 {
		return 0
	}
	return float64(m.NRight) / float64(m.N)
}

// header and row cells of the matrix, shared by the text and Markdown forms.
func (m *Matrix) table() (head []string, rows [][]string) {
	head = append([]string{"planted \\ named"}, m.Cols...)
	head = append(head, "targets", "named right", "with false alarms")
	for _, r := range m.Rows {
		cells := []string{rowName(r)}
		for _, c := range m.Cols {
			n := m.Cells[r][c]
			s := "·"
			if n > 0 {
				s = fmt.Sprint(n)
			}
			cells = append(cells, s)
		}
		cells = append(cells, fmt.Sprint(m.Targets[r]), fmt.Sprint(m.Right[r]), fmt.Sprint(m.Alarmed[r]))
		rows = append(rows, cells)
	}
	return head, rows
}

func (m *Matrix) totals() string {
	return fmt.Sprintf("named right: %d of %d targets (%.1f %%); targets with a false alarm: %d; controls with any finding: %d; load_generator_saturated named on %d; pipeline failures: %d",
		m.NRight, m.N, 100*m.Share(), m.NAlarmed, m.ControlsAlarmed, m.LoadGen, m.NFailed)
}

// WriteText prints the matrix as aligned columns and the totals.
func (m *Matrix) WriteText(w io.Writer) error {
	head, rows := m.table()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, m.totals())
	return err
}

// WriteMarkdown writes the matrix, the totals and one line per target.
func WriteMarkdown(w io.Writer, m *Matrix, outs []Outcome) error {
	head, rows := m.table()
	var b strings.Builder
	mdRow := func(cells []string) {
		for i := range cells {
			cells[i] = strings.ReplaceAll(cells[i], "|", "\\|")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	mdRow(slices.Clone(head))
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
		if i > 0 {
			sep[i] = "--:"
		}
	}
	b.WriteString("|" + strings.Join(sep, "|") + "|\n")
	for _, r := range rows {
		mdRow(r)
	}
	b.WriteString("\nA cell counts the targets of a planted kind (row) on which the analyser named a kind (column); a target can name several. " +
		"A control is right when it raises no finding at all. A false alarm is any named kind other than the planted one, except kinds also true of the server: `throughput_plateau` on a pool that refuses waiters (its queue plateaus before the first waiter gives up) and on the busy-GPU batch servers; `queueing` and `decode_slowdown` on the batch servers (requests wait for a slot; each step slows as the batch fills).\n\n")
	b.WriteString("**" + m.totals() + "**\n\n")
	b.WriteString("| family | targets | named right | with false alarms | kinds named (targets) |\n|---|--:|--:|--:|---|\n")
	for _, f := range families(outs) {
		mdRow([]string{f.name, fmt.Sprint(f.n), fmt.Sprint(f.right), fmt.Sprint(f.alarmed), f.kinds()})
	}
	b.WriteString("\n")
	b.WriteString("| target | planted | named | right | what was planted | successful req/s by users (p50 ms); ! untrustworthy | load |\n|---|---|---|---|---|---|--:|\n")
	for _, o := range outs {
		v := Judge(o)
		planted := rowName(o.Target.Planted)
		if o.Target.Operation != "" {
			planted += " on `" + o.Target.Operation + "`"
		}
		named := strings.Join(v.Named, ", ")
		if o.Err != "" {
			named = "pipeline failed: " + firstLine(o.Err)
		} else if named == "" {
			named = "nothing"
		}
		right := "no"
		if v.Right {
			right = "yes"
		}
		mdRow([]string{o.Target.Name, planted, named, right, o.Target.Design, curve(o.Stages), o.Load})
	}
	var missed []Outcome
	for _, o := range outs {
		if !Judge(o).Right {
			missed = append(missed, o)
		}
	}
	if len(missed) > 0 {
		b.WriteString("\n## What the analyser said where it missed\n\n")
		for _, o := range missed {
			fmt.Fprintf(&b, "- **%s** (planted %s):", o.Target.Name, rowName(o.Target.Planted))
			if o.Err != "" {
				fmt.Fprintf(&b, " the pipeline failed: %s\n", firstLine(o.Err))
				continue
			}
			if len(o.Findings) == 0 {
				b.WriteString(" no finding\n")
				continue
			}
			b.WriteString("\n")
			for _, f := range o.Findings {
				op := ""
				if f.Operation != "" && f.Operation != "all" {
					op = " on `" + f.Operation + "`"
				}
				fmt.Fprintf(&b, "  - `%s`%s: %s\n", f.Kind, op, clip(f.Summary, 400))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// curve shows the stages as "users: req/s (p50)", an untrustworthy stage
// marked with !.
func curve(st []StageFacts) string {
	parts := make([]string, 0, len(st))
	for _, s := range st {
		mark := ""
		if !s.Trustworthy {
			mark = "!"
		}
		p := fmt.Sprintf("%d%s: %.0f (%.0f)", s.Users, mark, s.OKRPS, s.P50MS)
		if s.ErrorRate >= 0.005 {
			p += fmt.Sprintf(" %.0f%% err", 100*s.ErrorRate)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// family is one family's tally, for the per-family table.
type family struct {
	name              string
	n, right, alarmed int
	named             map[string]int
}

func (f family) kinds() string {
	ks := make([]string, 0, len(f.named))
	for k := range f.named {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("%s (%d)", k, f.named[k])
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// families tallies outcomes per family, in the order they ran.
func families(outs []Outcome) []family {
	var fs []family
	at := map[string]int{}
	for _, o := range outs {
		i, ok := at[o.Target.Family]
		if !ok {
			i = len(fs)
			at[o.Target.Family] = i
			fs = append(fs, family{name: o.Target.Family, named: map[string]int{}})
		}
		v := Judge(o)
		fs[i].n++
		if v.Right {
			fs[i].right++
		}
		if len(v.FalseAlarms) > 0 {
			fs[i].alarmed++
		}
		for _, k := range v.Named {
			fs[i].named[k]++
		}
	}
	return fs
}
