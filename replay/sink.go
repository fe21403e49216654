package replay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// rowWriter is where result rows end up: a *captures.Writer[Result] in a
// run, a slice in some tests.
type rowWriter interface {
	Write(rows ...captures.Result) error
	Close() error
}

// sink decouples sending from writing: put only appends to a slice under a
// short lock, and one goroutine swaps the slice out and hands it to the
// writer and the live statistics. A slow disk grows the slice; it never
// blocks a virtual user.
type sink struct {
	w       rowWriter
	observe func([]captures.Result) // live view and metrics; may be nil

	mu   sync.Mutex
	buf  []captures.Result
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	err  error // first write error, reported by close
	once sync.Once

	inflight *inflight // requests being sent (cutoff.go); may be nil
	// Once sealed, a row is dropped when seal wrote it already (cut) or
	// when it was due at or after the end (cutNS); any other row, such
	// as an open-mode arrival due before the end that its dispatcher or
	// worker reached late, is still the run's: as cut off if it was sent
	// only after the end.
	sealed atomic.Bool // set under mu; read without it by isSealed
	cut    map[*captures.Result]struct{}
	cutNS  int64
}

// sinkFlushEvery bounds how stale the live view and the files get.
const sinkFlushEvery = 200 * time.Millisecond

// sinkBatch is the buffered count that wakes the writer early.
const sinkBatch = 4096

func newSink(w rowWriter, observe func([]captures.Result)) *sink {
	s := &sink{w: w, observe: observe, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *sink) put(r *captures.Result) {
	s.mu.Lock()
	if s.sealed.Load() {
		due := r.IntendedNS
		if due == 0 {
			due = r.StartNS
		}
		if _, cut := s.cut[r]; cut || due >= s.cutNS {
			s.mu.Unlock()
			return
		}
		if r.StartNS >= s.cutNS && r.ErrorKind != runspec.ErrCutOff {
			r.ErrorKind, r.Error = runspec.ErrCutOff, "cut off: due before the run's end, sent after it"
		}
	}
	if s.inflight != nil {
		s.inflight.remove(r)
	}
	s.buf = append(s.buf, *r)
	n := len(s.buf)
	s.mu.Unlock()
	if n == sinkBatch {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// isSealed says whether the run's end has been written: a request not
// sent yet is not to be sent.
func (s *sink) isSealed() bool { return s.sealed.Load() }

// seal writes every request still in flight as cut off at at, for why.
// A row put before seal is kept; one in flight at seal is written by it,
// and dropped when its user puts it later, as is any row of a request
// due at or after at.
func (s *sink) seal(at time.Time, why string) {
	s.mu.Lock()
	s.sealed.Store(true)
	s.cutNS = at.UnixNano()
	if s.inflight != nil {
		// Under the sink's lock, so that no put slips between the record
		// and the cut: a row is either removed by its put or cut here.
		// Users waiting on the lock meanwhile are past the end anyway.
		var rows []captures.Result
		rows, s.cut = s.inflight.cutRows(at, why)
		s.buf = append(s.buf, rows...)
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// loop ends when close is called and the last rows are written.
func (s *sink) loop() {
	defer close(s.done)
	t := time.NewTicker(sinkFlushEvery)
	defer t.Stop()
	var spare []captures.Result
	for {
		stopping := false
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.stop:
			stopping = true
		}
		s.mu.Lock()
		batch := s.buf
		s.buf = spare[:0]
		s.mu.Unlock()
		if len(batch) > 0 {
			if s.observe != nil {
				s.observe(batch)
			}
			if err := s.w.Write(batch...); err != nil && s.err == nil {
				s.err = err
			}
		}
		// The writer copies rows into its own chunk, so the slice can be reused.
		clear(batch)
		spare = batch
		if stopping {
			return
		}
	}
}

// close writes what is buffered and closes the writer; safe to call twice.
func (s *sink) close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		if err := s.w.Close(); err != nil && s.err == nil {
			s.err = err
		}
	})
	return s.err
}
