package replay

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadtape/loadtape/captures"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

const (
	liveEvery  = time.Second      // how often the live view redraws
	logEvery   = 10 * time.Second // how often it logs off a terminal
	recentKeep = 4096             // durations kept per stage for the live p95
)

// live is the run's live view: progress bars on a terminal, plain lines
// every logEvery otherwise. It is fed by the sink's goroutine (observe) and
// drawn by its own ticker goroutine, so sending never waits for it. A nil
// *live shows nothing.
type live struct {
	out   io.Writer
	tty   bool
	mu    sync.Mutex
	stats map[stageKey]*liveStage
	runs  []*scenarioRun

	stopCh chan struct{}
	done   chan struct{}
	logMu  sync.Mutex
	prog   atomic.Pointer[mpb.Progress] // while bars are shown, lines go above them
}

type stageKey struct {
	scenario string
	stage    int32 // 1-based
}

type liveStage struct {
	count, errs int64
	lastCount   int64
	recent      []float64 // seconds, ring
	tokens      int64     // output tokens of successes (metrics_tokens.go)
	lastTokens  int64
	next        int
}

// newLive returns the live view writing to out; nil when out is nil.
func newLive(out io.Writer) *live {
	if out == nil {
		return nil
	}
	l := &live{out: out, stats: map[stageKey]*liveStage{}}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			l.tty = true
		}
	}
	return l
}

// observe takes a batch of written rows (sink goroutine).
func (l *live) observe(rows []captures.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var key stageKey
	var ls *liveStage
	for i := range rows {
		r := &rows[i]
		if k := (stageKey{r.Scenario, r.Stage}); ls == nil || k != key {
			key = k
			if ls = l.stats[k]; ls == nil {
				ls = &liveStage{recent: make([]float64, 0, 256)}
				l.stats[k] = ls
			}
		}
		ls.count++
		if r.ErrorKind != "" {
			ls.errs++
		}
		n, _ := outputTokens(r)
		ls.tokens += n
		sec := float64(r.DurationNS) / 1e9
		if len(ls.recent) < recentKeep {
			ls.recent = append(ls.recent, sec)
		} else {
			ls.recent[ls.next%recentKeep] = sec
			ls.next++
		}
	}
}

// logf prints a plain line, above the bars on a terminal.
func (l *live) logf(format string, args ...any) {
	if l == nil {
		return
	}
	if p := l.prog.Load(); p != nil {
		if _, err := fmt.Fprintf(p, format+"\n", args...); err == nil {
			return
		}
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	fmt.Fprintf(l.out, format+"\n", args...)
}

// snapshot returns a stage's count, errors, requests since the last call
// and p95 in seconds.
func (l *live) snapshot(scenario string, stage int) (count, errs, delta int64, p95 float64) {
	l.mu.Lock()
	ls := l.stats[stageKey{scenario, int32(stage)}]
	if ls == nil {
		l.mu.Unlock()
		return 0, 0, 0, 0
	}
	count, errs, delta = ls.count, ls.errs, ls.count-ls.lastCount
	ls.lastCount = ls.count
	rec := append([]float64(nil), ls.recent...)
	l.mu.Unlock()
	if len(rec) > 0 {
		sort.Float64s(rec)
		p95 = rec[min(len(rec)-1, int(0.95*float64(len(rec))))]
	}
	return
}

// start begins the display goroutine; it ends on stop.
func (l *live) start(runs []*scenarioRun) {
	if l == nil {
		return
	}
	l.runs = runs
	l.stopCh, l.done = make(chan struct{}), make(chan struct{})
	go l.loop()
}

// stop draws the last state and waits for the display goroutine.
func (l *live) stop() error {
	if l == nil || l.stopCh == nil {
		return nil
	}
	close(l.stopCh)
	<-l.done
	return nil
}

func (l *live) loop() {
	defer close(l.done)
	var prog *mpb.Progress
	bars := map[string]*mpb.Bar{}
	texts := map[string]*atomic.Value{} // read by mpb's goroutine
	logged := map[string]bool{}
	if l.tty {
		prog = mpb.New(mpb.WithOutput(l.out), mpb.WithWidth(30), mpb.WithRefreshRate(liveEvery/2))
		l.prog.Store(prog)
	}
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	lastLog := time.Time{}
	last := time.Now()
	for {
		stopping := false
		select {
		case <-tick.C:
		case <-l.stopCh:
			stopping = true
		}
		now := time.Now()
		dt := now.Sub(last).Seconds()
		last = now
		logNow := now.Sub(lastLog) >= logEvery || stopping
		for _, s := range l.runs {
			for k := range s.stages {
				st := &s.stages[k]
				if now.Before(st.start) {
					break
				}
				key := fmt.Sprintf("%s/%d", s.name, k+1)
				finished := !now.Before(st.end) || st.ctx.Err() != nil
				count, errs, delta, p95 := l.snapshot(s.name, k+1)
				if delta == 0 && finished && bars[key] == nil && prog != nil && count > 0 {
					continue
				}
				left := max(time.Until(st.end), 0).Round(time.Second)
				load := fmt.Sprintf("users %d", st.shardUsers)
				if s.sc.Mode == ModeOpen {
					load = fmt.Sprintf("rate %g/s", st.rate)
				}
				name := ""
				if n := s.sc.Stages[k].Name; n != "" {
					name = " (" + n + ")"
				}
				rps := float64(delta) / max(dt, 1e-3)
				if finished {
					// The last tick can come moments after the previous one
					// and carry the rows flushed at the stage's end: a
					// finished stage shows its average instead.
					rps = float64(count) / max(st.end.Sub(st.start).Seconds(), 1e-3)
				}
				stats := fmt.Sprintf("%s rps %.1f%s p95 %s errors %d/%d left %s", load, rps,
					l.tokensText(s.name, k+1, dt, finished, st.end.Sub(st.start)), time.Duration(p95*1e9).Round(time.Millisecond), errs, count, left)
				line := fmt.Sprintf("%s stage %d/%d%s: %s", s.name, k+1, len(s.stages), name, stats)
				if prog != nil {
					total := st.end.Sub(st.start).Milliseconds()
					b := bars[key]
					if b == nil && !finished {
						txt := &atomic.Value{}
						txt.Store(stats)
						texts[key] = txt
						b = prog.AddBar(total, mpb.PrependDecorators(decor.Name(fmt.Sprintf("%s %d/%d%s", s.name, k+1, len(s.stages), name))),
							mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return txt.Load().(string) })))
						bars[key] = b
					}
					if txt := texts[key]; txt != nil {
						txt.Store(stats)
					}
					if b != nil {
						if finished {
							b.SetCurrent(total)
						} else {
							b.SetCurrent(min(now.Sub(st.start).Milliseconds(), total))
						}
					}
				} else if logNow && (!finished || !logged[key]) {
					logged[key] = finished
					l.logf("%s", line)
				}
			}
		}
		if logNow {
			lastLog = now
		}
		if stopping {
			if prog != nil {
				l.prog.Store(nil)
				for _, b := range bars {
					b.Abort(false)
				}
				prog.Wait()
			}
			return
		}
	}
}
