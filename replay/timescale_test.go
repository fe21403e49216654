package replay

import (
	"context"
	"testing"

	"github.com/loadtape/loadtape/runspec"
)

// TestOpenModeTimeScale: an open stage at --time-scale F lasts F × its
// duration and sends its rate ÷ F, so it holds as many arrivals as the
// unscaled stage and the service sees the same utilisation (analyze
// scales the rate bounds by 1/F to match).
func TestOpenModeTimeScale(t *testing.T) {
	up := newUpstream(t, 0)
	prof := mustProfile(t, `
scenarios:
  fast:
    service: gateway
    mode: open
    arrivals: constant
    stages: [{rate: 40, duration: 2s}]
    mix: {models.list: 1}
`)
	_, rows := runAndRead(t, context.Background(), Options{Exchanges: gatewayCapture(1, 3), Profile: prof,
		Targets: map[string]string{"gateway": up.URL}, Out: t.TempDir(), Seed: 5, TimeScale: 0.25})
	n := map[string]int{}
	for _, r := range rows {
		n[r.ErrorKind]++
	}
	// 40/s for 2 s is 80 arrivals; at 0.25 the stage lasts 0.5 s at 160/s.
	// Unscaled gaps would fit only 20 into the half second.
	if got := n[""] + n[runspec.ErrCutOff]; got != 80 || n[""] < 40 {
		t.Errorf("open stage of 40/s × 2 s at time scale 0.25: %v, want 80 rows, most of them successes", n)
	}
}
