package captures

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Inventory is what `loadtape inspect` reports about a set of files: each
// file, then what the rows hold across files.
type Inventory struct {
	Files []FileSummary `json:"files"`
	// Operations counts exchanges and results per service and operation.
	Operations []OperationCount `json:"operations"`
	// Sessions counts distinct exchange sessions per service.
	Sessions map[string]int `json:"sessions"`
	// StatusClasses counts rows (exchanges and results) by HTTP status
	// class: "2xx" ... "5xx", and "none" when no response came.
	StatusClasses map[string]int64 `json:"status_classes"`
	// ErrorKinds counts failed results by error_kind.
	ErrorKinds map[string]int64 `json:"error_kinds"`
	// Metrics counts samples per source and metric, e.g. "nvml/gpu_util".
	Metrics map[string]int64 `json:"metrics"`
	// FailedWhenRecorded counts exchanges that failed when recorded (see
	// FailedWhenRecorded), which replay leaves out of its pools by default.
	FailedWhenRecorded int64 `json:"failed_when_recorded"`
	// TruncatedRequests counts exchanges whose request body the recorder
	// cut at its body cap; replay leaves them out too.
	TruncatedRequests int64 `json:"truncated_requests"`
	// Errors holds one line per file that could not be read.
	Errors []string `json:"errors"`
	// Recoverable lists the write-ahead logs in the directories named:
	// rows on disk that a crashed writer never rolled into a file.
	Recoverable []WALSummary `json:"recoverable,omitempty"`
}

// WALSummary describes one write-ahead log (see WALInfo).
type WALSummary struct {
	Path      string `json:"path"`
	Kind      Kind   `json:"kind,omitempty"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
	TornBytes int64  `json:"torn_bytes,omitempty"`
	Live      bool   `json:"live,omitempty"`
	Rolled    bool   `json:"rolled,omitempty"`
	Error     string `json:"error,omitempty"`
}

// FileSummary describes one file.
type FileSummary struct {
	Path       string            `json:"path"`
	Kind       Kind              `json:"kind,omitempty"`
	Schema     int               `json:"schema,omitempty"`
	Rows       int64             `json:"rows"`
	Bytes      int64             `json:"bytes"`
	First      *time.Time        `json:"first,omitempty"` // earliest start_ns (t_ns)
	Last       *time.Time        `json:"last,omitempty"`  // latest start_ns + duration_ns (t_ns)
	Incomplete bool              `json:"incomplete,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Error      string            `json:"error,omitempty"`
}

// OperationCount is the number of exchanges and results of one operation,
// with what they hold.
type OperationCount struct {
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Exchanges int64  `json:"exchanges"`
	Results   int64  `json:"results"`
	// Recorded describes the exchanges, Replayed the results; nil when
	// there are none of that kind.
	Recorded *OperationStats `json:"recorded,omitempty"`
	Replayed *OperationStats `json:"replayed,omitempty"`
}

// OperationStats is what the rows of one operation and kind hold.
// Percentiles are nearest-rank (the smallest duration with at least that
// share of rows at or below it).
type OperationStats struct {
	StatusClasses map[string]int64 `json:"status_classes"`
	// Failed counts exchanges that failed when recorded (see
	// FailedWhenRecorded), which replay leaves out of its pools unless a
	// profile keeps them; or results with an error kind.
	Failed           int64            `json:"failed"`
	ErrorKinds       map[string]int64 `json:"error_kinds,omitempty"` // results
	P50MS            float64          `json:"p50_ms"`
	P95MS            float64          `json:"p95_ms"`
	Streams          int64            `json:"streams"` // streamed responses; results: token streams (a first token was seen)
	Models           map[string]int64 `json:"models,omitempty"`
	PromptTokens     int64            `json:"prompt_tokens"`
	CompletionTokens int64            `json:"completion_tokens"`

	durations []int64
}

func (s *OperationStats) add(status int32, durationNS int64, stream bool, model string, prompt, completion int64, failed bool) {
	if s.StatusClasses == nil {
		s.StatusClasses = map[string]int64{}
	}
	s.StatusClasses[statusClass(status)]++
	if failed {
		s.Failed++
	}
	s.durations = append(s.durations, durationNS)
	if stream {
		s.Streams++
	}
	if model != "" {
		if s.Models == nil {
			s.Models = map[string]int64{}
		}
		s.Models[model]++
	}
	s.PromptTokens += prompt
	s.CompletionTokens += completion
}

// close computes the percentiles and drops the durations.
func (s *OperationStats) close() {
	if s == nil || len(s.durations) == 0 {
		return
	}
	slices.Sort(s.durations)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s.durations)))) - 1
		return math.Round(float64(s.durations[max(0, i)])/1e5) / 10
	}
	s.P50MS, s.P95MS = rank(0.50), rank(0.95)
	s.durations = nil
}

// FailedWhenRecorded reports whether an exchange failed when it was
// recorded: an HTTP status of 400 and up, no response, an upstream error, or
// a client that gave up before the response ended. mcpStream says the
// exchange is an MCP client's standalone GET stream (a GET accepting
// text/event-stream on the path its service posts MCP messages to): the
// client ends that stream by going away, and a server without one answers
// 405, so neither is a failure. The replay pool applies the same rule.
func FailedWhenRecorded(e *Exchange, mcpStream bool) bool {
	if mcpStream && (e.Status == 405 || e.Status/100 == 2) {
		return false
	}
	return e.Status >= 400 || e.Status == 0 || e.Error != "" || e.ClientAborted
}

// acceptsEventStream reports whether a request's Accept header takes SSE.
func acceptsEventStream(hs []Header) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, "Accept") && strings.Contains(h.Value, "text/event-stream") {
			return true
		}
	}
	return false
}

// ErrNothingReadable is returned by Inspect when the paths held no file it
// could read.
var ErrNothingReadable = errors.New("no readable capture, result or sample file")

// Inspect reads paths (files, directories, globs) and summarises them. A
// file that cannot be read is listed with its error and the others are
// still summarised; the returned error joins those errors, one line per
// file, so that the caller can exit with the bad-input code. A path that
// holds no .parquet file (an empty directory, a directory named x.parquet)
// is such an error too, and so is a set of paths with nothing readable.
func Inspect(paths []string) (*Inventory, error) {
	var infos []FileInfo
	var errs []error
	var recoverable []WALSummary
	for _, p := range paths {
		fis, _ := List(p)
		wals := walSummaries(p)
		recoverable = append(recoverable, wals...)
		// A directory a crashed writer left holds only write-ahead logs:
		// listing what they can recover is the answer, not bad input.
		if len(fis) == 0 && len(wals) == 0 {
			err := fmt.Errorf("captures: %s: a directory holding no %s files", p, Ext)
			errs = append(errs, err)
			infos = append(infos, FileInfo{Path: p, Err: err})
		}
		infos = append(infos, fis...)
	}
	inv := &Inventory{Sessions: map[string]int{}, StatusClasses: map[string]int64{}, ErrorKinds: map[string]int64{}, Metrics: map[string]int64{}}
	type opKey struct{ service, operation string }
	ops := map[opKey]*OperationCount{}
	op := func(s, o string) *OperationCount {
		k := opKey{s, o}
		if ops[k] == nil {
			ops[k] = &OperationCount{Service: s, Operation: o}
		}
		return ops[k]
	}
	sessions := map[[2]string]bool{}
	readable := 0
	// A GET stream is an MCP one only if its service posted MCP messages to
	// its path, which a later file may show: decided after the last file.
	mcpPaths := map[[2]string]bool{}
	type maybeStream struct {
		o             *OperationCount
		service, path string
	}
	var streams []maybeStream
	for _, fi := range infos {
		fs := FileSummary{Path: fi.Path, Kind: fi.Kind, Schema: fi.Schema, Rows: fi.Rows, Bytes: fi.Bytes, Incomplete: fi.Incomplete, Metadata: fi.Metadata}
		if fs.Metadata != nil {
			delete(fs.Metadata, MetaKind)
			delete(fs.Metadata, MetaSchema)
			if len(fs.Metadata) == 0 {
				fs.Metadata = nil
			}
		}
		var first, last int64
		span := func(start, end int64) {
			if first == 0 || start < first {
				first = start
			}
			last = max(last, end)
		}
		err := fi.Err
		if err == nil && !fi.Incomplete {
			switch fi.Kind {
			case KindExchanges:
				err = scan[Exchange](fi.Path, []string{"start_ns", "duration_ns", "service", "operation", "session", "status",
					"stream", "model", "prompt_tokens", "completion_tokens", "error", "client_aborted",
					"method", "path", "req_headers", "req_truncated", "rpc_method"}, func(e *Exchange) {
					span(e.StartNS, e.StartNS+e.DurationNS)
					o := op(e.Service, e.Operation)
					o.Exchanges++
					if o.Recorded == nil {
						o.Recorded = &OperationStats{}
					}
					if e.RPCMethod != "" {
						mcpPaths[[2]string{e.Service, e.Path}] = true
					}
					failed := FailedWhenRecorded(e, false)
					if failed && !FailedWhenRecorded(e, true) && e.Method == "GET" && acceptsEventStream(e.ReqHeaders) {
						streams = append(streams, maybeStream{o, e.Service, e.Path})
						failed = false
					}
					o.Recorded.add(e.Status, e.DurationNS, e.Stream, e.Model, e.PromptTokens, e.CompletionTokens, failed)
					if failed {
						inv.FailedWhenRecorded++
					}
					if e.ReqTruncated {
						inv.TruncatedRequests++
					}
					sessions[[2]string{e.Service, e.Session}] = true
					inv.StatusClasses[statusClass(e.Status)]++
				})
			case KindResults:
				err = scan[Result](fi.Path, []string{"start_ns", "duration_ns", "service", "operation", "status", "error_kind",
					"ttft_ns", "prompt_tokens", "completion_tokens"}, func(r *Result) {
					span(r.StartNS, r.StartNS+r.DurationNS)
					o := op(r.Service, r.Operation)
					o.Results++
					if o.Replayed == nil {
						o.Replayed = &OperationStats{}
					}
					o.Replayed.add(r.Status, r.DurationNS, r.TTFTNS > 0, "", r.PromptTokens, r.CompletionTokens, r.ErrorKind != "")
					inv.StatusClasses[statusClass(r.Status)]++
					if r.ErrorKind != "" {
						inv.ErrorKinds[r.ErrorKind]++
						if o.Replayed.ErrorKinds == nil {
							o.Replayed.ErrorKinds = map[string]int64{}
						}
						o.Replayed.ErrorKinds[r.ErrorKind]++
					}
				})
			case KindSamples:
				err = scan[Sample](fi.Path, []string{"t_ns", "source", "metric"}, func(s *Sample) {
					span(s.TNS, s.TNS)
					inv.Metrics[s.Source+"/"+s.Metric]++
				})
			}
		}
		if err != nil {
			fs.Error = err.Error()
			inv.Errors = append(inv.Errors, fs.Error)
			if fi.Err == nil || !slices.Contains(errs, fi.Err) {
				errs = append(errs, err)
			}
		} else if !fi.Incomplete {
			readable++
			if last > 0 {
				f, l := time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
				fs.First, fs.Last = &f, &l
			}
		}
		inv.Files = append(inv.Files, fs)
	}
	for _, m := range streams {
		if !mcpPaths[[2]string{m.service, m.path}] {
			m.o.Recorded.Failed++
			inv.FailedWhenRecorded++
		}
	}
	for k := range sessions {
		inv.Sessions[k[0]]++
	}
	inv.Recoverable = recoverable
	for _, o := range ops {
		o.Recorded.close()
		o.Replayed.close()
		inv.Operations = append(inv.Operations, *o)
	}
	slices.SortFunc(inv.Operations, func(a, b OperationCount) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation))
	})
	if readable == 0 && len(inv.Recoverable) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("captures: %s: %w", strings.Join(paths, ", "), ErrNothingReadable))
	}
	return inv, errors.Join(errs...)
}

// walSummaries lists what the write-ahead logs in directory p could
// recover, reading only; a path that is not a directory has none.
func walSummaries(p string) []WALSummary {
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		return nil
	}
	wals, _ := WALs(p)
	var out []WALSummary
	for _, wi := range wals {
		ws := WALSummary{Path: wi.Path, Kind: wi.Kind, Rows: wi.Rows, Bytes: wi.Bytes, TornBytes: wi.TornBytes, Live: wi.Live, Rolled: wi.Rolled}
		if wi.Err != nil {
			ws.Error = wi.Err.Error()
		}
		out = append(out, ws)
	}
	return out
}

// scan reads the given columns of one file and calls f for every row.
func scan[T Row](path string, cols []string, f func(*T)) error {
	r, err := NewReader[T]([]string{path}, ReaderOptions{Columns: cols})
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		b := r.Batch()
		for i := range b {
			f(&b[i])
		}
	}
	return r.Err()
}

func statusClass(s int32) string {
	if s <= 0 {
		return "none"
	}
	return fmt.Sprintf("%dxx", s/100)
}

// WriteJSON writes the inventory as indented JSON.
func (inv *Inventory) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

// WriteText writes the inventory as tables a person reads.
func (inv *Inventory) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tKIND\tROWS\tBYTES\tFIRST\tLAST")
	var incomplete []FileSummary
	for _, f := range inv.Files {
		switch {
		case f.Incomplete:
			incomplete = append(incomplete, f)
		case f.Error != "":
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\n", f.Path, "unreadable", humanBytes(f.Bytes))
		default:
			first, last := "-", "-"
			if f.First != nil {
				first, last = f.First.Format(time.RFC3339Nano), f.Last.Format(time.RFC3339Nano)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", f.Path, f.Kind, f.Rows, humanBytes(f.Bytes), first, last)
		}
	}
	for _, f := range incomplete {
		fmt.Fprintf(tw, "%s\tincomplete\t-\t%s\t-\t-\n", f.Path, humanBytes(f.Bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var rec, rep []OperationCount
	for _, o := range inv.Operations {
		if o.Recorded != nil {
			rec = append(rec, o)
		}
		if o.Replayed != nil {
			rep = append(rep, o)
		}
	}
	if len(rec) > 0 {
		fmt.Fprintln(tw, "\nrecorded exchanges, per service and operation:\nSERVICE\tOPERATION\tEXCHANGES\tSTATUS\tFAILED\tP50\tP95\tSTREAMS\tMODELS\tTOKENS IN/OUT")
		for _, o := range rec {
			s := o.Recorded
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", o.Service, o.Operation, o.Exchanges, countList(s.StatusClasses, 0),
				s.Failed, ms(s.P50MS), ms(s.P95MS), s.Streams, countList(s.Models, 3), tokens(s))
		}
	}
	if len(rep) > 0 {
		fmt.Fprintln(tw, "\nreplayed requests (results), per service and operation:\nSERVICE\tOPERATION\tRESULTS\tSTATUS\tERRORS\tP50\tP95\tSTREAMS\tERROR KINDS\tTOKENS IN/OUT")
		for _, o := range rep {
			s := o.Replayed
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", o.Service, o.Operation, o.Results, countList(s.StatusClasses, 0),
				s.Failed, ms(s.P50MS), ms(s.P95MS), s.Streams, countList(s.ErrorKinds, 3), tokens(s))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	line := func(title string, m map[string]int64) {
		if len(m) == 0 {
			return
		}
		parts := make([]string, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		fmt.Fprintf(w, "%s: %s\n", title, strings.Join(parts, ", "))
	}
	if len(inv.Sessions) > 0 {
		fmt.Fprintln(w)
		s := make(map[string]int64, len(inv.Sessions))
		total := int64(0)
		for k, v := range inv.Sessions {
			s[k] = int64(v)
			total += int64(v)
		}
		line(fmt.Sprintf("sessions: %d", total), s)
	}
	line("status classes", inv.StatusClasses)
	if inv.FailedWhenRecorded > 0 {
		fmt.Fprintf(w, "%d exchange(s) failed when recorded (HTTP 400 and up, no response, or the client gave up): replay leaves them out unless a profile sets include_failed\n", inv.FailedWhenRecorded)
	}
	if inv.TruncatedRequests > 0 {
		fmt.Fprintf(w, "%d exchange(s) with a request body cut at the recorder's --max-body: replay leaves them out\n", inv.TruncatedRequests)
	}
	line("error kinds", inv.ErrorKinds)
	line("samples", inv.Metrics)
	if len(incomplete) > 0 {
		fmt.Fprintf(w, "%d incomplete file(s): still being written, or left by a writer that crashed\n", len(incomplete))
	}
	for _, l := range inv.Recoverable {
		switch {
		case l.Error != "":
			fmt.Fprintf(w, "write-ahead log %s: %s\n", l.Path, l.Error)
		case l.Live:
			fmt.Fprintf(w, "write-ahead log %s: %d %s rows so far, its writer is running\n", l.Path, l.Rows, l.Kind)
		case l.Rolled:
			fmt.Fprintf(w, "write-ahead log %s: its rows are already in the .parquet file; the next writer deletes it\n", l.Path)
		default:
			torn := ""
			if l.TornBytes > 0 {
				torn = fmt.Sprintf("; a torn tail of %s is dropped", humanBytes(l.TornBytes))
			}
			fmt.Fprintf(w, "write-ahead log %s: %d %s rows recoverable%s; the next writer into this directory (loadtape record) recovers them\n", l.Path, l.Rows, l.Kind, torn)
		}
	}
	for _, e := range inv.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}

// countList writes counts as "2xx 95, 4xx 1", largest first, at most n
// entries (0: all) and "+k more".
func countList(m map[string]int64, n int) string {
	if len(m) == 0 {
		return "-"
	}
	ks := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	if n == 0 || n > len(ks) {
		n = len(ks)
	}
	parts := make([]string, 0, n+1)
	for _, k := range ks[:n] {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(ks) > n {
		parts = append(parts, fmt.Sprintf("+%d more", len(ks)-n))
	}
	return strings.Join(parts, ", ")
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%gms", v)
}

func tokens(s *OperationStats) string {
	if s.PromptTokens == 0 && s.CompletionTokens == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", s.PromptTokens, s.CompletionTokens)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
