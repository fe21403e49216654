package proxy

// The recording queue: finished exchanges go from the proxy goroutines to
// one writer goroutine without the proxy ever waiting.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// enqueue hands a finished exchange to the writer goroutine without ever
// waiting: a full queue counts a drop.
func (r *Recorder) enqueue(x *exchange) {
	r.exchanges.Add(1)
	size := x.bytes()
	x.queued = size
	r.qmu.RLock()
	defer r.qmu.RUnlock()
	if r.qclosed || r.queuedBytes.Load()+size > r.opts.QueueBytes {
		r.dropped.Add(1)
		return
	}
	select {
	case r.q <- x:
		r.queuedBytes.Add(size)
	default:
		r.dropped.Add(1)
	}
}

func (x *exchange) bytes() int64 {
	n := int64(512)
	if x.reqBody != nil {
		body, _, _ := x.reqBody.snapshot()
		n += int64(len(body))
	}
	if x.resp != nil {
		n += int64(len(x.resp.buf) + len(x.resp.tail) + 8*len(x.resp.offsets))
	}
	return n
}

// recoverer is what the recorder reads of captures.Writer to report the
// rows it recovered from an earlier recording's write-ahead logs.
type recoverer interface {
	Recovered() ([]captures.Recovered, error)
}

// statser is what the recorder reads of captures.Writer to count rows: a
// row handed to the writer is written only once it is on disk.
type statser interface{ Stats() captures.WriterStats }

// counts are the Totals now. The writer's counts are read before the
// exchange count, so that every row they count is already an exchange.
func (r *Recorder) counts() Totals {
	var t Totals
	if s, ok := r.w.(statser); ok {
		st := s.Stats()
		t.Written = st.Rows + st.Logged
		t.Failed = st.Failed
	} else {
		t.Written = r.written.Load() // a test sink: handed over is written
	}
	t.Failed += r.failed.Load()
	t.Dropped = r.dropped.Load()
	t.Exchanges = r.exchanges.Load()
	t.Pending = max(0, t.Exchanges-t.Written-t.Dropped-t.Failed)
	return t
}

// writeLoop is the writer goroutine: it builds rows and writes them in
// batches. It ends when Shutdown closes the queue and the queue is empty.
func (r *Recorder) writeLoop() {
	defer close(r.writerDone)
	const batchMax = 512
	batch := make([]captures.Exchange, 0, batchMax)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var watch writeWatch
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := r.w.Write(batch...); err != nil {
			if r.failed.Add(int64(len(batch))) == int64(len(batch)) {
				r.log.Printf("error: capture write failed, rows are being lost: %v", err)
			}
		} else {
			r.written.Add(int64(len(batch)))
		}
		batch = make([]captures.Exchange, 0, batchMax)
	}
	for {
		select {
		case x, ok := <-r.q:
			if !ok {
				flush()
				return
			}
			r.queuedBytes.Add(-x.queued)
			batch = append(batch, r.row(x))
			if len(batch) >= batchMax {
				flush()
			}
		case <-tick.C:
			flush()
			watch.check(r)
		}
	}
}

// writeWatch says in the log when capture writes start failing and when
// they succeed again; serving goes on either way.
type writeWatch struct {
	errors  int64 // writer errors seen
	failing bool
	written int64 // rows on disk when the failures began
}

func (ww *writeWatch) check(r *Recorder) {
	s, ok := r.w.(statser)
	if !ok {
		return
	}
	st := s.Stats()
	switch {
	case st.Errors > ww.errors:
		if !ww.failing {
			r.log.Printf("error: capture writes are failing (%s); serving goes on; until a write works again, rows not yet on disk are counted as failed", st.LastError)
			ww.failing, ww.written = true, st.Rows+st.Logged
		}
		ww.errors = st.Errors
	case ww.failing && st.Rows+st.Logged > ww.written:
		r.log.Printf("capture writes succeed again; %d rows failed so far", st.Failed)
		ww.failing = false
	}
}

// liveLoop prints the live line, keeps the counts in the capture's metadata
// and capture.json up to date. It ends when Shutdown closes liveStop.
func (r *Recorder) liveLoop() {
	defer close(r.liveDone)
	if rw, ok := r.w.(recoverer); ok {
		rcs, err := rw.Recovered()
		var rows int64
		for _, rc := range rcs {
			rows += rc.Rows
			if rc.TornBytes > 0 {
				r.log.Printf("recovered %s: %d rows; a torn tail of %d bytes (the last write before the crash) was dropped", rc.WAL, rc.Rows, rc.TornBytes)
			}
		}
		if rows > 0 {
			r.log.Printf("recovered %d rows from %d write-ahead log(s) left in %s by a recording that did not stop cleanly", rows, len(rcs), r.opts.Out)
		}
		if err != nil {
			r.log.Printf("warning: %v", err)
		}
	}
	// A failed update is said once until one succeeds again.
	summaryFailed := false
	save := func(t Totals) {
		err := r.saveSummary(t, false)
		if err != nil && !summaryFailed {
			r.log.Printf("warning: capture.json not updated, the last whole one stays: %v", err)
		}
		summaryFailed = err != nil
	}
	save(r.Totals())
	if r.opts.LiveEvery < 0 {
		<-r.liveStop
		return
	}
	tick := time.NewTicker(r.opts.LiveEvery)
	defer tick.Stop()
	var last int64
	lastT := time.Now()
	for {
		select {
		case <-r.liveStop:
			return
		case now := <-tick.C:
			t := r.Totals()
			rps := float64(t.Exchanges-last) / now.Sub(lastT).Seconds()
			last, lastT = t.Exchanges, now
			r.log.Printf("%d exchanges, %.1f/s, %d written, %d pending, %d dropped, %d failed, %d in flight", t.Exchanges, rps, t.Written, t.Pending, t.Dropped, t.Failed, r.inflight.Load())
			r.setMetadata(t)
			save(t)
		}
	}
}

// rollMetadata is the counts for the footer of a file about to be renamed,
// given the writer's counts with that file written.
func (r *Recorder) rollMetadata(st captures.WriterStats) map[string]string {
	var t Totals
	t.Written = st.Rows + st.Logged
	t.Failed = st.Failed + r.failed.Load()
	t.Dropped = r.dropped.Load()
	t.Exchanges = r.exchanges.Load()
	t.Pending = max(0, t.Exchanges-t.Written-t.Dropped-t.Failed)
	return metadataOf(t)
}

func metadataOf(t Totals) map[string]string {
	return map[string]string{
		"loadtape.record.exchanges": fmt.Sprint(t.Exchanges),
		"loadtape.record.written":   fmt.Sprint(t.Written),
		"loadtape.record.pending":   fmt.Sprint(t.Pending),
		"loadtape.record.dropped":   fmt.Sprint(t.Dropped),
		"loadtape.record.failed":    fmt.Sprint(t.Failed),
	}
}

// setMetadata keeps the counts in the writer's metadata, which the
// write-ahead logs carry, so that a recovered file holds the counts of
// the last live line before the crash.
func (r *Recorder) setMetadata(t Totals) {
	for k, v := range metadataOf(t) {
		r.w.SetMetadata(k, v)
	}
}

// writeSummary writes the final capture.json.
func (r *Recorder) writeSummary(t Totals) error { return r.saveSummary(t, true) }

// saveSummary writes capture.json beside the capture files: the counts a
// reader needs to judge whether the capture is complete. While recording
// it is rewritten at every live line, without "ended". It is always a
// whole file: written to a temporary file, fsynced and renamed over the
// old one, so a crash or a full disk leaves the previous version.
func (r *Recorder) saveSummary(t Totals, final bool) error {
	if r.opts.Out == "" {
		return nil
	}
	s := struct {
		Schema  int        `json:"schema"`
		Started time.Time  `json:"started"`
		Updated time.Time  `json:"updated"`
		Ended   *time.Time `json:"ended,omitempty"` // absent while recording, or after a crash
		Routes  []string   `json:"routes,omitempty"`
		Forward string     `json:"forward,omitempty"`
		Totals
		// Recovered rows came from the write-ahead logs of an earlier
		// recording into this directory that did not stop cleanly: they
		// are in the directory's files but not in this recording's counts.
		Recovered int64 `json:"recovered,omitempty"`
	}{Schema: captures.SchemaVersion, Started: r.startedAt.UTC(), Updated: time.Now().UTC(), Forward: r.opts.Forward, Totals: t}
	if rw, ok := r.w.(recoverer); ok {
		rcs, _ := rw.Recovered()
		for _, rc := range rcs {
			s.Recovered += rc.Rows
		}
	}
	if final {
		s.Ended = &s.Updated
	}
	for _, rt := range r.opts.Routes {
		s.Routes = append(s.Routes, rt.String())
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(r.opts.Out, "capture.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path by data: a temporary file in the same
// directory, fsynced, renamed, the directory fsynced.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
