package replay

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// The waker keeps the kernel timer armed for the earliest due time ahead:
// a later kick leaves it alone, an earlier one re-arms it, and after it
// fired it moves on to the next due time, or disarms when none is left.
func TestWakerArmsForTheEarliestDueTime(t *testing.T) {
	t.Parallel()
	var armed []time.Duration
	w := &waker{epoch: time.Now().Add(-time.Hour), set: func(d time.Duration) { armed = append(armed, d) }}
	now := time.Now()
	w.kick(now.Add(300 * time.Millisecond))
	w.kick(now.Add(500 * time.Millisecond)) // later: no re-arm
	w.kick(now.Add(200 * time.Millisecond)) // earlier: re-armed
	if len(armed) != 2 {
		t.Fatalf("armed %d times (%v), want 2: once, then again for the earlier kick", len(armed), armed)
	}
	near := func(got, want time.Duration) bool { return got > want-50*time.Millisecond && got <= want+kickLate }
	if !near(armed[0], 300*time.Millisecond) || !near(armed[1], 200*time.Millisecond) {
		t.Fatalf("armed for %v, want about 300 ms then 200 ms from now", armed)
	}
	// Pretend the first two due times passed: the timer fired.
	w.epoch = w.epoch.Add(-350 * time.Millisecond)
	w.fired()
	if len(w.due) != 1 || !near(armed[2], 150*time.Millisecond) {
		t.Fatalf("after firing: %d due times left, armed for %v; want 1 left, armed about 150 ms ahead", len(w.due), armed[2:])
	}
	w.epoch = w.epoch.Add(-time.Second)
	w.fired()
	if len(w.due) != 0 || armed[3] != 0 {
		t.Fatalf("after the last: %d due times left, armed %v; want none left and the timer disarmed (0)", len(w.due), armed[3])
	}
	var nilWaker *waker // no kernel timer: kicking does nothing
	nilWaker.kick(now)
}

// The pacer never returns before the due time (a request sent early would
// be a lag hidden as a negative one), and returns at once for a time that
// passed: a late dispatcher sends what is due, and the arrivals after it
// keep their own times.
func TestPacerIsNeverEarly(t *testing.T) {
	t.Parallel()
	p := newPacer()
	ctx := context.Background()
	for i := range 200 {
		at := time.Now().Add(time.Duration(i%7) * 97 * time.Microsecond)
		if !p.wait(ctx, at) {
			t.Fatal("wait: false with a live context")
		}
		if now := time.Now(); now.Before(at) {
			t.Fatalf("wait %d returned %v before its due time", i, at.Sub(now))
		}
	}
	past := time.Now().Add(-time.Second)
	t0 := time.Now()
	p.wait(ctx, past)
	if d := time.Since(t0); d > 50*time.Millisecond {
		t.Errorf("a due time that passed waited %v, want no wait", d)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if p.wait(stopped, time.Now().Add(time.Hour)) {
		t.Error("wait: true with an ended context")
	}
}

// At a few thousand arrivals a second a short wait spins instead of
// sleeping on a Go timer, which an idle process wakes a millisecond late;
// at tens of thousands it does not, since a spin there would take a core.
func TestPacerSpinsShortWaitsOnlyAtLowRates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		gap  time.Duration
		spin bool
	}{{200 * time.Microsecond, true}, {40 * time.Microsecond, false}} {
		p := newPacer()
		at := time.Now().Add(time.Millisecond)
		for range 8 * gapMean { // settle the moving mean on tc.gap
			p.wait(ctx, at)
			at = at.Add(tc.gap)
		}
		if p.gap < tc.gap*9/10 || p.gap > tc.gap*11/10 {
			t.Fatalf("gap %v: moving mean %v", tc.gap, p.gap)
		}
		if got := p.gap >= spinGap; got != tc.spin {
			t.Errorf("gaps of %v: spins short waits %v, want %v", tc.gap, got, tc.spin)
		}
	}
}

// At 5,000 Poisson arrivals a second the mean gap must stay above spinGap
// nearly all the time: while it dips under, the short waits sleep on Go's
// timer alone and wake up to a millisecond late. A mean over 8 gaps dipped
// under about a sixth of the time.
func TestPacerGapMeanIsSteadyUnderPoissonArrivals(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	p := &pacer{}
	at := time.Unix(0, 0)
	const n, mean = 20000, 200 * time.Microsecond
	under := 0
	for i := range n {
		at = at.Add(time.Duration(rng.ExpFloat64() * float64(mean)))
		p.observe(at)
		if i >= 8*gapMean && p.gap < spinGap {
			under++
		}
	}
	if share := float64(under) / (n - 8*gapMean); share > 0.01 {
		t.Errorf("mean gap under spinGap for %.1f %% of Poisson arrivals at %v, want under 1 %%", 100*share, mean)
	}
}
