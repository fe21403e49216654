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

// writeLoop is the writer goroutine: it builds rows and writes them in
// batches. It ends when Shutdown closes the queue and the queue is empty.
func (r *Recorder) writeLoop() {
	defer close(r.writerDone)
	const batchMax = 512
	batch := make([]captures.Exchange, 0, batchMax)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
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
		}
	}
}

// liveLoop prints the live line and keeps the counts in the capture's
// metadata. It ends when Shutdown closes liveStop.
func (r *Recorder) liveLoop() {
	defer close(r.liveDone)
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
			r.log.Printf("%d exchanges, %.1f/s, %d written, %d dropped, %d in flight", t.Exchanges, rps, t.Written, t.Dropped, r.inflight.Load())
			r.setMetadata(t)
		}
	}
}

func (r *Recorder) setMetadata(t Totals) {
	r.w.SetMetadata("loadtape.record.exchanges", fmt.Sprint(t.Exchanges))
	r.w.SetMetadata("loadtape.record.written", fmt.Sprint(t.Written))
	r.w.SetMetadata("loadtape.record.dropped", fmt.Sprint(t.Dropped))
	r.w.SetMetadata("loadtape.record.failed", fmt.Sprint(t.Failed))
}

// writeSummary writes capture.json beside the capture files: the counts a
// reader needs to judge whether the capture is complete.
func (r *Recorder) writeSummary(t Totals) error {
	s := struct {
		Schema  int       `json:"schema"`
		Started time.Time `json:"started"`
		Ended   time.Time `json:"ended"`
		Routes  []string  `json:"routes,omitempty"`
		Forward string    `json:"forward,omitempty"`
		Totals
	}{Schema: captures.SchemaVersion, Started: r.startedAt.UTC(), Ended: time.Now().UTC(), Forward: r.opts.Forward, Totals: t}
	for _, rt := range r.opts.Routes {
		s.Routes = append(s.Routes, rt.String())
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.opts.Out, "capture.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}
