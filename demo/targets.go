package demo

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/loadtape/loadtape/replay"
)

// latencyMetric matches the target metrics measured in time.
var latencyMetric = regexp.MustCompile(`^((ttft|ttfb|itl|tpot|send_lag)_)?(p50|p90|p95|p99|avg|min|max)$`)

// scaleTargets rewrites the profile's targets for a time-compressed run
// against the sim: its service times are multiplied by scale, so latency
// bounds are too, and rate bounds are divided by it. The verdicts are then
// the ones an unscaled run of the plan would get; the bounds in the report
// are the scaled ones, and run.json records the scale.
func scaleTargets(p *replay.Profile, scale float64) {
	if scale == 1 {
		return
	}
	for _, t := range p.Targets {
		metric, _ := t["metric"].(string)
		for _, key := range []string{"max", "min"} {
			v, ok := t[key]
			if !ok {
				continue
			}
			switch {
			case latencyMetric.MatchString(metric):
				t[key] = scaleDuration(v, scale)
			case metric == "rps" || metric == "rpm":
				t[key] = scaleNumber(v, 1/scale)
			}
		}
	}
}

// scaleDuration multiplies a bound written as a duration ("2s") or as a
// number of milliseconds.
func scaleDuration(v any, f float64) any {
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return scaleNumber(x, f)
		}
		return time.Duration(float64(d) * f).String()
	default:
		return scaleNumber(v, f)
	}
}

// scaleNumber multiplies a numeric bound; what is not a number is left for
// the analyser to reject with its own message.
func scaleNumber(v any, f float64) any {
	switch x := v.(type) {
	case int:
		return float64(x) * f
	case int64:
		return float64(x) * f
	case uint64:
		return float64(x) * f
	case float64:
		return x * f
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return x
		}
		return strconv.FormatFloat(n*f, 'g', 6, 64)
	default:
		return v
	}
}
