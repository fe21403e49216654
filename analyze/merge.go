package analyze

import "slices"

// merge adds what o collected into c. Both were made from the same run
// info; o read rows after c's, so c's first examples stay first. A user's
// iteration split across the two is counted once and the pause between
// them counted, as one collector reading all the rows would (users
// numbered from maxDenseVU on excepted: theirs may count twice).
func (c *collector) merge(o *collector) {
	c.flush()
	o.flush()
	for id := range o.runIDs {
		c.runIDs[id] = true
	}
	for k, os := range o.stages {
		c.stages[k].merge(os, c)
	}
	c.mergeFailures(o)
	c.mergeSeconds(o)
}

func (st *stageAcc) merge(o *stageAcc, c *collector) {
	// Both were flushed; the entries may point at accumulators merging
	// replaces, so they are made again if rows come later.
	st.entries, st.byName = nil, nil
	st.lastNS = max(st.lastNS, o.lastNS)
	st.trimmed += o.trimmed
	st.busyNS += o.busyNS
	st.iterations += o.iterations
	st.thinkSum += o.thinkSum
	st.thinkN += o.thinkN
	st.mergeUsers(o)
	st.activeSum += o.activeSum
	st.activeN += o.activeN
	st.activeMax = max(st.activeMax, o.activeMax)
	for i := range st.bucketSum {
		st.bucketSum[i] += o.bucketSum[i]
		st.bucketN[i] += o.bucketN[i]
	}
	for i, sl := range o.overTime {
		st.overTime[i].ok += sl.ok
		st.overTime[i].errors += sl.errors
		st.overTime[i].sumNS += sl.sumNS
	}
	for k, d := range o.errDurs {
		st.errDurs[k] = append(st.errDurs[k], d...)
	}
	st.tokens = st.tokens.merge(o.tokens) // tokens.go
	st.oom += o.oom
	if st.oomText == "" {
		st.oomText = o.oomText
	}
	for op, kinds := range o.raw {
		if st.raw[op] == nil {
			st.raw[op] = kinds
			continue
		}
		addCounts(st.raw[op], kinds)
	}
	for name, oo := range o.ops {
		a := st.ops[name]
		if a == nil {
			st.ops[name] = oo
			continue
		}
		a.addCounts(oo)
		joinChunks(&a.okDone, &a.ok, oo.okDone, oo.ok)
		joinChunks(&a.ttfbDone, &a.ttfb, oo.ttfbDone, oo.ttfb)
		joinChunks(&a.ttftDone, &a.ttft, oo.ttftDone, oo.ttft)
		joinChunks(&a.tpotDone, &a.tpot, oo.tpotDone, oo.tpot)
		joinChunks(&a.lagDone, &a.lag, oo.lagDone, oo.lag)
		joinChunks(&a.okLagDone, &a.okLag, oo.okLagDone, oo.okLag)
		a.okLagNone += oo.okLagNone
		a.itlSeen += oo.itlSeen
		a.itl = append(a.itl, oo.itl...)
		if len(a.itl) > maxITL {
			// Two reservoirs joined: keep a uniform sample of the union.
			c.rng.Shuffle(len(a.itl), func(i, j int) { a.itl[i], a.itl[j] = a.itl[j], a.itl[i] })
			a.itl = slices.Clip(a.itl[:maxITL])
		}
	}
}

// addCounts adds o's request and error counts to op, keeping op's example
// message where both have one: what merging and the "all" row share.
func (op *opAcc) addCounts(o *opAcc) {
	op.count += o.count
	op.cutOff += o.cutOff
	op.bytesIn += o.bytesIn
	addCounts(op.errors, o.errors)
	for k, v := range o.errText {
		if _, ok := op.errText[k]; !ok {
			op.errText[k] = v
		}
	}
}

func addCounts(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}

// mergeUsers joins each user's rows in o to its rows in st: the first
// iteration o counted is not new if st's last was the same, and the pause
// from st's last request to o's first sent one is think time.
func (st *stageAcc) mergeUsers(o *stageAcc) {
	if len(st.vus) < len(o.vus) {
		st.vus = append(st.vus, make([]vuState, len(o.vus)-len(st.vus))...)
	}
	for i := range o.vus {
		ou, u := &o.vus[i], &st.vus[i]
		if ou.hasFirst && u.hasIter && u.iter == ou.firstIter {
			st.iterations--
		}
		if ou.hasFirstSent && u.hasEnd && ou.firstIntended >= u.end {
			st.thinkSum += float64(ou.firstIntended - u.end)
			st.thinkN++
		}
		if !u.hasFirst {
			u.firstIter, u.hasFirst = ou.firstIter, ou.hasFirst
		}
		if !u.hasFirstSent {
			u.firstIntended, u.hasFirstSent = ou.firstIntended, ou.hasFirstSent
		}
		if ou.hasIter {
			u.iter, u.hasIter = ou.iter, true
		}
		if ou.hasEnd {
			u.end, u.hasEnd = ou.end, true
		}
	}
}
