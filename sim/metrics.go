package sim

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// promText builds a Prometheus text exposition (format 0.0.4) by hand: the
// metric names must be exactly the DCGM exporter's and vLLM's, and a handful
// of gauges read under the services' own locks need no registry.
type promText struct {
	b    strings.Builder
	seen map[string]bool
}

func newPromText() *promText { return &promText{seen: map[string]bool{}} }

func (p *promText) sample(kind, name, help, labels string, v float64) {
	if !p.seen[name] {
		p.seen[name] = true
		fmt.Fprintf(&p.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	p.b.WriteString(name)
	if labels != "" {
		p.b.WriteString("{" + labels + "}")
	}
	p.b.WriteString(" " + strconv.FormatFloat(v, 'g', -1, 64) + "\n")
}

func (p *promText) gauge(name, help, labels string, v float64) {
	p.sample("gauge", name, help, labels, v)
}

func (p *promText) counter(name, help, labels string, v float64) {
	p.sample("counter", name, help, labels, v)
}

func (p *promText) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = io.WriteString(w, p.b.String())
}
