package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Finding kinds the benchmark plants or accepts beside the planted one, as
// the analyser names them in summary.json. A control plants none: it must
// raise no finding.
const (
	KindSerialization  = "serialization"
	KindPlateau        = "throughput_plateau"
	KindRetrograde     = "retrograde"
	KindPool           = "pool_exhaustion"
	KindTail           = "tail_amplification"
	KindGPUSaturation  = "gpu_saturation"
	KindDegradation    = "degradation"
	KindQueueing       = "queueing"        // requests wait for a slot before their first token
	KindDecodeSlowdown = "decode_slowdown" // each decoding step slows as the batch fills
	KindLoadGen        = "load_generator_saturated"
	KindNone           = "" // a healthy or random-error control
)

// Target is one planted server and the load the benchmark puts on it.
type Target struct {
	Name   string // unique, used for directories: "pool-8x50ms"
	Family string // "single", "pool", "pool-timeout", "retrograde", ...
	// Planted is the finding kind the analyser must name; KindNone for a
	// control that must raise no finding at all.
	Planted string
	// Operation, when set, is the operation the finding must name (one
	// slow operation among fast ones).
	Operation string
	// Also are kinds that are true of the target beside the planted one
	// (a pool that refuses waiters plateaus first): not false alarms, and
	// not enough to be right.
	Also  []string
	Users []int         // closed-mode users of each stage, in order
	Stage time.Duration // each stage's length
	// Stress, when > 0, adds a last stage of that length at the most users
	// (like the built-in profile's stress stage, where degradation over time
	// shows).
	Stress time.Duration
	// Think is the mean pause between a user's requests, drawn uniformly
	// from [Think/2, 3·Think/2]; 0 for none.
	Think time.Duration
	// Mix weights operations by their recorded names; nil sends the
	// server's one operation.
	Mix map[string]float64
	// Classify holds profile classify rules as YAML flow maps, for a
	// server whose errors need naming (a pool that says "timed out").
	Classify []string
	// GPU scrapes the server's /metrics (DCGM names) during the replay.
	GPU bool
	// New builds the server; the benchmark calls it once per run.
	New func() Behaviour
	// Design says in words what was planted, for the report.
	Design string
}

// Duration is the replay's planned length.
func (t Target) Duration() time.Duration {
	return time.Duration(len(t.Users))*t.Stage + t.Stress
}

// Profile is the replay profile for the target's one scenario, aimed at
// service svc; ops are the operation names of the server's one operation
// when Mix is nil.
func (t Target) Profile(svc string, ops []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenarios:\n  %s:\n    service: %s\n    mode: closed\n    spawn_rate: 0\n", svc, svc)
	if t.Think > 0 {
		fmt.Fprintf(&b, "    think: {uniform: [%s, %s]}\n", yamlDur(t.Think/2), yamlDur(t.Think*3/2))
	}
	b.WriteString("    stages:\n")
	for _, u := range t.Users {
		fmt.Fprintf(&b, "      - {users: %d, duration: %s}\n", u, yamlDur(t.Stage))
	}
	if t.Stress > 0 {
		fmt.Fprintf(&b, "      - {users: %d, duration: %s, name: stress}\n", t.Users[len(t.Users)-1], yamlDur(t.Stress))
	}
	mix := t.Mix
	if mix == nil {
		mix = map[string]float64{}
		for _, op := range ops {
			mix[op] = 1
		}
	}
	names := make([]string, 0, len(mix))
	for n := range mix {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("    mix:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "      %q: %g\n", n, mix[n])
	}
	if len(t.Classify) > 0 {
		b.WriteString("classify:\n")
		for _, c := range t.Classify {
			fmt.Fprintf(&b, "  - %s\n", c)
		}
	}
	return b.String()
}

func yamlDur(d time.Duration) string {
	return fmt.Sprintf("%dms", d.Milliseconds())
}
