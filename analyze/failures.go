package analyze

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// Failure is one group of failed requests, as Locust's failures table has
// them: one scenario, operation, error kind and message (numbers, ids and
// hex run out of it, so that "timed out after 30.2 s" and "after 31.0 s"
// are one row). Every failed row of the run counts, warm-up included;
// requests cut off by a stage's end are not failures.
type Failure struct {
	Scenario  string  `json:"scenario"`
	Operation string  `json:"operation"`
	ErrorKind string  `json:"error_kind"`
	Message   string  `json:"message"` // normalised: <n>, <id>, <hex> stand for what varied
	Count     int64   `json:"count"`
	Share     float64 `json:"share"` // of the operation's requests in the run
	First     string  `json:"first"` // RFC 3339, when the first one started
	Last      string  `json:"last"`
	FirstS    float64 `json:"first_s"` // seconds from the run's start
	LastS     float64 `json:"last_s"`
	Example   string  `json:"example"` // the first message as it came, up to 300 bytes
}

// maxFailureGroups bounds the messages kept per scenario × operation ×
// error kind; the rest are counted under otherMessages.
const maxFailureGroups = 50

const otherMessages = "(other messages)"

type failureKey struct{ scenario, op, kind, msg string }

type failureGroup struct {
	count       int64
	first, last int64
	example     string
}

// failureAcc groups a run's failed rows by message and counts every
// operation's requests for the shares.
type failureAcc struct {
	groups   map[failureKey]*failureGroup
	perKind  map[failureKey]int // distinct messages per scenario × op × kind (msg "")
	requests map[[2]string]int64
}

// addFailure is the collector's hook for the failures table: it sees every
// row (t is when it started, or was meant to).
// e is the row's operation in its stage, which counts the requests until
// the collector flushes them into requests.
func (c *collector) addFailure(r *captures.Result, t int64, e *opEntry) {
	if r.ErrorKind == runspec.ErrCutOff {
		return
	}
	a := c.failuresAcc()
	e.failReq++
	if r.ErrorKind == "" {
		return
	}
	k := failureKey{r.Scenario, r.Operation, r.ErrorKind, c.normalised(r.Error)}
	g := a.groups[k]
	if g == nil {
		kk := failureKey{r.Scenario, r.Operation, r.ErrorKind, ""}
		if a.perKind[kk] >= maxFailureGroups {
			k.msg = otherMessages
			g = a.groups[k]
		}
		if g == nil {
			a.perKind[kk]++
			g = &failureGroup{first: t, last: t, example: truncate(r.Error, 300)}
			a.groups[k] = g
		}
	}
	g.count++
	g.first, g.last = min(g.first, t), max(g.last, t)
}

func (c *collector) failuresAcc() *failureAcc {
	if c.failures == nil {
		c.failures = &failureAcc{groups: map[failureKey]*failureGroup{}, perKind: map[failureKey]int{}, requests: map[[2]string]int64{}}
	}
	return c.failures
}

// maxNormalised bounds the messages whose normalised form is remembered:
// a failure repeated row after row is normalised once.
const maxNormalised = 4096

func (c *collector) normalised(msg string) string {
	if n, ok := c.norm[msg]; ok {
		return n
	}
	n := normaliseMessage(msg)
	if c.norm == nil {
		c.norm = map[string]string{}
	}
	if len(c.norm) < maxNormalised {
		c.norm[msg] = n
	}
	return n
}

// merge adds o's groups (read from later files) to a's.
func (a *failureAcc) merge(o *failureAcc) {
	for k, v := range o.requests {
		a.requests[k] += v
	}
	for k, og := range o.groups {
		g := a.groups[k]
		if g == nil {
			a.groups[k] = og
			continue
		}
		g.count += og.count
		g.first, g.last = min(g.first, og.first), max(g.last, og.last)
	}
}

// mergeFailures is merge's hook: o read the files after c's.
func (c *collector) mergeFailures(o *collector) {
	switch {
	case o.failures == nil:
	case c.failures == nil:
		c.failures = o.failures
	default:
		c.failures.merge(o.failures)
	}
}

// failuresOf lists the groups, most frequent first.
func (c *collector) failuresOf() []Failure {
	out := []Failure{}
	a := c.failures
	if a == nil {
		return out
	}
	at := func(ns int64) (string, float64) {
		return time.Unix(0, ns).UTC().Format(time.RFC3339Nano), round(float64(ns-c.runStart)/1e9, 3)
	}
	for k, g := range a.groups {
		f := Failure{Scenario: k.scenario, Operation: k.op, ErrorKind: k.kind, Message: k.msg, Count: g.count, Example: g.example}
		if n := a.requests[[2]string{k.scenario, k.op}]; n > 0 {
			f.Share = round(float64(g.count)/float64(n), 6)
		}
		f.First, f.FirstS = at(g.first)
		f.Last, f.LastS = at(g.last)
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Failure) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Scenario, b.Scenario), cmp.Compare(a.Operation, b.Operation),
			cmp.Compare(a.ErrorKind, b.ErrorKind), cmp.Compare(a.Message, b.Message))
	})
	return out
}

var (
	uuidRe = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	// ids like req_8f3a…, chatcmpl-AbC123…: a prefix, then 8 or more
	// letters and digits with at least one digit.
	idRe  = regexp.MustCompile(`\b([A-Za-z]+[-_])[A-Za-z0-9]*[0-9][A-Za-z0-9]{6,}\b`)
	hexRe = regexp.MustCompile(`\b(?:0x)?[0-9a-fA-F]{8,}\b`)
	// numbers: decimals, and integers of 4 or more digits (a status code
	// or a small count stays: "HTTP 404" is its own message).
	numRe = regexp.MustCompile(`\d+\.\d+|\d{4,}`)
	wsRe  = regexp.MustCompile(`\s+`)
)

// normaliseMessage makes the messages of one failure alike: what varies
// from request to request (ids, hex, timings, byte counts) becomes a
// placeholder, so that a failure repeated a thousand times is one row.
func normaliseMessage(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 1000 {
		s = s[:1000]
	}
	s = uuidRe.ReplaceAllString(s, "<id>")
	s = idRe.ReplaceAllString(s, "${1}<id>")
	s = hexRe.ReplaceAllStringFunc(s, func(m string) string {
		// Hex has digits and letters; all digits is a number, all
		// letters a word.
		if strings.ContainsAny(m, "0123456789") && strings.ContainsAny(m, "abcdefABCDEF") {
			return "<hex>"
		}
		return m
	})
	s = numRe.ReplaceAllString(s, "<n>")
	s = strings.TrimSpace(wsRe.ReplaceAllString(s, " "))
	return truncate(s, 200)
}

// includeFailed lists the scenarios whose profile kept the exchanges that
// failed when recorded, in name order.
func includeFailed(info *RunInfo) []string {
	var out []string
	for name, sc := range info.Profile.Scenarios {
		if sc.IncludeFailed {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
