package replay

import (
	"sort"
	"time"
)

// ArrivalsAsRecorded is the open-mode `arrivals` value that sends the
// service's captured exchanges at their recorded times, `speed` times as
// fast (GoReplay's `|200%` is speed 2).
const ArrivalsAsRecorded = "as_recorded"

// recordedTimeline is the captured exchanges of a scenario in recorded
// order, each with its offset from the first, and the length of one pass.
type recordedTimeline struct {
	entries []*entry
	offsets []time.Duration // after speed and time scale
	period  time.Duration   // one pass: the span plus a median gap, so passes join like the recording
}

// timeline orders the pool's exchanges of the scenario's mix operations
// (every operation when the mix is empty) by recorded start. Offsets are
// divided by speed and multiplied by the time scale.
func (s *scenarioRun) timeline() recordedTimeline {
	var tl recordedTimeline
	ops := s.ops
	if len(ops) == 0 {
		ops = sortedKeys(s.sp.ops)
	}
	for _, op := range ops {
		tl.entries = append(tl.entries, s.sp.ops[op]...)
	}
	sort.SliceStable(tl.entries, func(i, j int) bool { return less(tl.entries[i].ex, tl.entries[j].ex) })
	if len(tl.entries) == 0 {
		return tl
	}
	speed := s.sc.Speed
	if speed <= 0 {
		speed = 1
	}
	f := s.rp.scale / speed
	t0 := tl.entries[0].ex.StartNS
	var gaps []time.Duration
	for k, e := range tl.entries {
		tl.offsets = append(tl.offsets, time.Duration(float64(e.ex.StartNS-t0)*f))
		if k > 0 {
			gaps = append(gaps, tl.offsets[k]-tl.offsets[k-1])
		}
	}
	gap := median(gaps)
	if gap <= 0 {
		gap = time.Duration(float64(time.Second) * f)
	}
	tl.period = tl.offsets[len(tl.offsets)-1] + gap
	return tl
}

// runAsRecorded sends the recorded timeline from the scenario's start:
// exchange j of pass p is due at start + p·period + offset j, whatever the
// responses do, and the passes repeat until the last stage ends. Each
// arrival belongs to the stage it falls in; shard I of N sends arrivals
// I-1, I-1+N, ... of the whole sequence.
func (s *scenarioRun) runAsRecorded(o *openRun) {
	tl := s.timeline()
	shard, of := s.rp.shard.i-1, s.rp.shard.n
	t0 := s.stages[0].start
	var i int64
	for k := range s.stages {
		st := &s.stages[k]
		for len(tl.entries) > 0 {
			j := int(i % int64(len(tl.entries)))
			at := t0.Add(time.Duration(i/int64(len(tl.entries)))*tl.period + tl.offsets[j])
			if !at.Before(st.end) {
				break
			}
			if int(i%int64(of)) == shard {
				e := tl.entries[j]
				if !o.arrive(st, i, at, e.ex.Operation, e, 0) {
					break
				}
			}
			i++
		}
		<-st.ctx.Done()
		if s.rp.ctx.Err() != nil {
			break
		}
	}
}
