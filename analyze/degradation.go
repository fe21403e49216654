package analyze

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// KindDegradation: latency or the error rate grows with time inside a
// stage whose load stays the same, as a leak, a collection that grows or a
// cache that fills shows in a long stress stage.
const KindDegradation Kind = "degradation"

// Thresholds of the degradation detector; docs/analyze.md explains each.
const (
	degradeP         = 0.001 // one-sided Mann-Kendall p-value of a trend: one stage in a thousand of a stationary service
	degradeGrowth    = 0.25  // and latency grew at least this share of its median over the window
	degradeErrRise   = 0.02  // or the error rate rose at least 2 points from the first third to the last
	degradeMinPoints = 12    // slices with enough requests for the test
	degradeMinOK     = 3     // successes a slice needs for its mean latency
	degradeMinReqs   = 5     // requests a slice needs for its error rate
)

// DegradationEvidence backs degradation: the stage, the trend's slope per
// minute and its significance.
type DegradationEvidence struct {
	Stage          int     `json:"stage"`
	Users          int     `json:"users"`
	Metric         string  `json:"metric"`           // mean_latency_ms or error_rate_pct
	SlopePerMinute float64 `json:"slope_per_minute"` // Theil–Sen slope of the metric, its unit per minute
	First          float64 `json:"first"`            // the metric over the first third of the window
	Last           float64 `json:"last"`             // and over the last third
	MannKendallZ   float64 `json:"mann_kendall_z"`
	PValue         pValue  `json:"p_value"` // one-sided: the chance of so strong a rise without a trend
	Slices         int     `json:"slices"`
	WindowS        float64 `json:"window_s"`
	StagesAffected []int   `json:"stages_affected"` // users of every stage with a trend
}

func (*DegradationEvidence) evidence() {}

// pValue is a probability written with three significant digits: rounded
// to four decimals, as other evidence numbers are, a strong trend's p-value
// would read 0.
type pValue float64

func (p pValue) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(p), 'g', 3, 64), nil
}

func init() {
	register(detector{name: "degradation", detect: func(sc *scenarioCtx) detected { return found(detectDegradation(sc)) },
		kinds: []kindSpec{{kind: KindDegradation, rank: 75}}})
}

// detectDegradation tests each stage's slices for a rising trend of mean
// latency and of the error rate (Mann-Kendall, a rank test that needs no
// distribution and shrugs off outliers), and keeps those that are both
// significant and large enough to matter. The stage with the strongest
// trend is the finding's; the others are listed.
//
// A rise that stops while the same load goes on is the stage settling (a
// queue filling, a batch growing, a cache warming to its steady state),
// not degradation: a stage whose next stage holds the same load with no
// trend of its own is left out.
func detectDegradation(sc *scenarioCtx) *Finding {
	trends := make(map[int]*DegradationEvidence, len(sc.stages)) // by stage number
	for _, st := range sc.stages {
		trends[st.Stage.Stage] = stageTrend(st)
	}
	var best *DegradationEvidence
	var affected []int
	for _, st := range sc.stages {
		ev := trends[st.Stage.Stage]
		if ev == nil || settles(sc, st, trends) {
			continue
		}
		affected = append(affected, st.Users)
		if best == nil || ev.PValue < best.PValue || (ev.PValue == best.PValue && ev.Last/ev.First > best.Last/best.First) {
			best = ev
		}
	}
	if best == nil {
		return nil
	}
	best.StagesAffected = affected
	what := fmt.Sprintf("mean latency grew from %.0f ms to %.0f ms (%+.1f ms per minute)", best.First, best.Last, best.SlopePerMinute)
	if best.Metric == "error_rate_pct" {
		what = fmt.Sprintf("the error rate grew from %.1f %% to %.1f %% (%+.2f points per minute)", best.First, best.Last, best.SlopePerMinute)
	}
	return &Finding{Kind: KindDegradation, Scenario: sc.name, Operation: AllOps, Severity: SeverityMedium,
		Summary: fmt.Sprintf("%s degrades with time at constant load: in the %d-user stage %s over %.0f s (Mann-Kendall p = %.2g).",
			sc.name, best.Users, what, best.WindowS, best.PValue),
		Action:   "Look for state that grows while the load stays the same: a memory or connection leak, a collection or index that grows with every request, a cache that fills, log or temp files; rerun a long stage and watch the service's memory and queue lengths.",
		Evidence: best}
}

// settles says whether the stage after st holds st's load without a trend.
func settles(sc *scenarioCtx, st stageData, trends map[int]*DegradationEvidence) bool {
	for _, next := range sc.stages {
		if next.Stage.Stage == st.Stage.Stage+1 {
			return next.Users == st.Users && next.Rate == st.Rate && len(next.overTime) >= degradeMinPoints && trends[next.Stage.Stage] == nil
		}
	}
	return false
}

// stageTrend is the stage's trend, or nil when it has none worth a finding.
// Latency is tried first: a leak slows requests before it fails them.
func stageTrend(st stageData) *DegradationEvidence {
	n := len(st.overTime)
	if n == 0 || st.WindowS <= 0 {
		return nil
	}
	slice := st.WindowS / float64(n)
	var t, lat, te, rate []float64
	for i, sl := range st.overTime {
		mid := (float64(i) + 0.5) * slice
		if sl.ok >= degradeMinOK {
			t, lat = append(t, mid), append(lat, sl.sumNS/float64(sl.ok)/1e6)
		}
		if all := sl.ok + sl.errors; all >= degradeMinReqs {
			te, rate = append(te, mid), append(rate, 100*float64(sl.errors)/float64(all))
		}
	}
	ev := func(metric string, t, y []float64, z, p float64) *DegradationEvidence {
		k := max(1, len(y)/3)
		return &DegradationEvidence{Stage: st.Stage.Stage, Users: st.Users, Metric: metric, SlopePerMinute: 60 * theilSen(t, y),
			First: mean(y[:k]), Last: mean(y[len(y)-k:]), MannKendallZ: z, PValue: pValue(p), Slices: len(y), WindowS: st.WindowS}
	}
	if len(lat) >= degradeMinPoints {
		z, p := mannKendall(lat)
		grew := theilSen(t, lat) * (t[len(t)-1] - t[0])
		if p < degradeP && grew >= degradeGrowth*median(lat) {
			return ev("mean_latency_ms", t, lat, z, p)
		}
	}
	if len(rate) >= degradeMinPoints {
		z, p := mannKendall(rate)
		e := ev("error_rate_pct", te, rate, z, p)
		if p < degradeP && e.Last-e.First >= 100*degradeErrRise && e.Last >= 2*e.First {
			return e
		}
	}
	return nil
}

// mannKendall is the Mann-Kendall trend test of y in order: the statistic
// S = Σ_{i<j} sgn(y_j − y_i), its normal score Z (continuity-corrected,
// the variance corrected for ties and for serial correlation) and the
// one-sided p-value of a rise.
//
// The plain test takes the slices as independent. A queue near saturation
// is not: its length wanders for seconds, so neighbouring slices' latencies
// move together and a stationary stage shows runs that the plain test
// calls a trend (one 5-user stage of a single worker in fifteen seeds, at
// p = 0.0004). Hamed and Rao's correction (1998) widens the variance by the
// effective sample size that the detrended series' rank autocorrelation
// gives, counting only the lags whose correlation is significant; a
// negative correlation is not allowed to narrow it.
func mannKendall(y []float64) (z, p float64) {
	n := len(y)
	var s float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			switch {
			case y[j] > y[i]:
				s++
			case y[j] < y[i]:
				s--
			}
		}
	}
	nf := float64(n)
	v := nf * (nf - 1) * (2*nf + 5)
	sorted := slices.Clone(y)
	slices.Sort(sorted)
	for i := 0; i < n; {
		j := i
		for j < n && sorted[j] == sorted[i] {
			j++
		}
		if tf := float64(j - i); tf > 1 {
			v -= tf * (tf - 1) * (2*tf + 5)
		}
		i = j
	}
	v = v / 18 * serialCorrection(y)
	if v <= 0 {
		return 0, 1
	}
	switch {
	case s > 0:
		z = (s - 1) / math.Sqrt(v)
	case s < 0:
		z = (s + 1) / math.Sqrt(v)
	}
	return z, 0.5 * math.Erfc(z/math.Sqrt2)
}

// serialCorrection is Hamed and Rao's n/n*: 1 + 2/(n(n−1)(n−2)) ·
// Σ (n−k)(n−k−1)(n−k−2) ρ_k over the lags k whose rank autocorrelation ρ_k
// of the series, its Theil–Sen trend taken out, lies outside the 95 %
// band of an independent series, (−1 ± 1.96·√(n−k−1))/(n−k); at least 1.
func serialCorrection(y []float64) float64 {
	n := len(y)
	if n < 3 {
		return 1
	}
	idx := make([]float64, n)
	for i := range idx {
		idx[i] = float64(i)
	}
	b := theilSen(idx, y)
	res := make([]float64, n)
	for i, v := range y {
		res[i] = v - b*float64(i)
	}
	r := midRanks(res)
	m := mean(r)
	var den float64
	for _, v := range r {
		den += (v - m) * (v - m)
	}
	if den == 0 {
		return 1
	}
	nf := float64(n)
	sum := 0.0
	for k := 1; k < n-2; k++ {
		var num float64
		for i := 0; i+k < n; i++ {
			num += (r[i] - m) * (r[i+k] - m)
		}
		rho := num / den
		nk := float64(n - k)
		band := 1.96 * math.Sqrt(nk-1)
		if rho > (-1+band)/nk || rho < (-1-band)/nk {
			sum += nk * (nk - 1) * (nk - 2) * rho
		}
	}
	return max(1, 1+2*sum/(nf*(nf-1)*(nf-2)))
}

// theilSen is the median of the pairwise slopes of y against t: a slope
// that outliers do not move.
func theilSen(t, y []float64) float64 {
	var sl []float64
	for i := range t {
		for j := i + 1; j < len(t); j++ {
			if t[j] != t[i] {
				sl = append(sl, (y[j]-y[i])/(t[j]-t[i]))
			}
		}
	}
	if len(sl) == 0 {
		return 0
	}
	return median(sl)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}
