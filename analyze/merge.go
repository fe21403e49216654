package analyze

import "slices"

// merge adds what o collected into c. Both were made from the same run
// info; o read files after c's, so c's first examples stay first. A user's
// iteration split across the two file sets is counted twice, which moves
// Little's law by a request per file boundary.
func (c *collector) merge(o *collector) {
	for id := range o.runIDs {
		c.runIDs[id] = true
	}
	for k, os := range o.stages {
		c.stages[k].merge(os, c)
	}
	for name, ob := range o.timeline {
		m := c.timeline[name]
		if m == nil {
			c.timeline[name] = ob
			continue
		}
		for sec, b := range ob {
			a := m[sec]
			if a == nil {
				m[sec] = b
				continue
			}
			a.count += b.count
			a.errors += b.errors
			for i, v := range b.hist {
				a.hist[i] += v
			}
		}
	}
}

func (st *stageAcc) merge(o *stageAcc, c *collector) {
	st.lastNS = max(st.lastNS, o.lastNS)
	st.trimmed += o.trimmed
	st.busyNS += o.busyNS
	st.iterations += o.iterations
	st.activeSum += o.activeSum
	st.activeN += o.activeN
	st.activeMax = max(st.activeMax, o.activeMax)
	for i := range st.bucketSum {
		st.bucketSum[i] += o.bucketSum[i]
		st.bucketN[i] += o.bucketN[i]
	}
	for k, d := range o.errDurs {
		st.errDurs[k] = append(st.errDurs[k], d...)
	}
	st.oom += o.oom
	if st.oomText == "" {
		st.oomText = o.oomText
	}
	for op, kinds := range o.raw {
		m := st.raw[op]
		if m == nil {
			st.raw[op] = kinds
			continue
		}
		for k, v := range kinds {
			m[k] += v
		}
	}
	for name, oo := range o.ops {
		a := st.ops[name]
		if a == nil {
			st.ops[name] = oo
			continue
		}
		a.count += oo.count
		a.cutOff += oo.cutOff
		for k, v := range oo.errors {
			a.errors[k] += v
		}
		for k, v := range oo.errText {
			if _, ok := a.errText[k]; !ok {
				a.errText[k] = v
			}
		}
		a.ok = append(a.ok, oo.ok...)
		a.ttfb = append(a.ttfb, oo.ttfb...)
		a.ttft = append(a.ttft, oo.ttft...)
		a.tpot = append(a.tpot, oo.tpot...)
		a.lag = append(a.lag, oo.lag...)
		a.itlSeen += oo.itlSeen
		a.itl = append(a.itl, oo.itl...)
		if len(a.itl) > maxITL {
			// Two reservoirs joined: keep a uniform sample of the union.
			c.rng.Shuffle(len(a.itl), func(i, j int) { a.itl[i], a.itl[j] = a.itl[j], a.itl[i] })
			a.itl = slices.Clip(a.itl[:maxITL])
		}
	}
}
