package captures

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	// Errors holds one line per file that could not be read.
	Errors []string `json:"errors"`
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

// OperationCount is the number of exchanges and results of one operation.
type OperationCount struct {
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Exchanges int64  `json:"exchanges"`
	Results   int64  `json:"results"`
}

// Inspect reads paths (files, directories, globs) and summarises them. A
// file that cannot be read is listed with its error and the others are
// still summarised; the returned error joins those errors, one line per
// file, so that the caller can exit with the bad-input code.
func Inspect(paths []string) (*Inventory, error) {
	infos, _ := List(paths...)
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
	var errs []error
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
				err = scan[Exchange](fi.Path, []string{"start_ns", "duration_ns", "service", "operation", "session", "status"}, func(e *Exchange) {
					span(e.StartNS, e.StartNS+e.DurationNS)
					op(e.Service, e.Operation).Exchanges++
					sessions[[2]string{e.Service, e.Session}] = true
					inv.StatusClasses[statusClass(e.Status)]++
				})
			case KindResults:
				err = scan[Result](fi.Path, []string{"start_ns", "duration_ns", "service", "operation", "status", "error_kind"}, func(r *Result) {
					span(r.StartNS, r.StartNS+r.DurationNS)
					op(r.Service, r.Operation).Results++
					inv.StatusClasses[statusClass(r.Status)]++
					if r.ErrorKind != "" {
						inv.ErrorKinds[r.ErrorKind]++
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
			errs = append(errs, err)
		} else if last > 0 {
			f, l := time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
			fs.First, fs.Last = &f, &l
		}
		inv.Files = append(inv.Files, fs)
	}
	for k := range sessions {
		inv.Sessions[k[0]]++
	}
	for _, o := range ops {
		inv.Operations = append(inv.Operations, *o)
	}
	slices.SortFunc(inv.Operations, func(a, b OperationCount) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation))
	})
	return inv, errors.Join(errs...)
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
	if len(inv.Operations) > 0 {
		fmt.Fprintln(tw, "\nSERVICE\tOPERATION\tEXCHANGES\tRESULTS")
		for _, o := range inv.Operations {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", o.Service, o.Operation, o.Exchanges, o.Results)
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
	line("error kinds", inv.ErrorKinds)
	line("samples", inv.Metrics)
	if len(incomplete) > 0 {
		fmt.Fprintf(w, "%d incomplete file(s): still being written, or left by a writer that crashed\n", len(incomplete))
	}
	for _, e := range inv.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
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
