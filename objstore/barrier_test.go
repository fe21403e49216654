package objstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadtape/loadtape/internal/s3test"
)

func TestBarrierOneInstant(t *testing.T) {
	s3test.Start(t, "runs")
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := Parse("s3://runs/job-b")
	ctx := context.Background()
	// A registration of another run under the same prefix does not count.
	if _, err := st.Barrier(ctx, BarrierOptions{Loc: loc, RunID: "other", Shard: 3, Shards: 3, Timeout: 10 * time.Millisecond}); err == nil {
		t.Fatal("a lone shard of 3 passed the barrier")
	}
	const n = 3
	var wg sync.WaitGroup
	got := make([]time.Time, n)
	errs := make([]error, n)
	var lastRegistered time.Time
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 150 * time.Millisecond) // shards come up one after another
			mu.Lock()
			if now := time.Now(); now.After(lastRegistered) {
				lastRegistered = now
			}
			mu.Unlock()
			got[i], errs[i] = st.Barrier(ctx, BarrierOptions{Loc: loc, RunID: "job-b", Shard: i + 1, Shards: n,
				Timeout: 10 * time.Second, Lead: 500 * time.Millisecond, Poll: 20 * time.Millisecond})
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("shard %d: %v", i+1, errs[i])
		}
		if !got[i].Equal(got[0]) {
			t.Errorf("shard %d starts at %v, shard 1 at %v", i+1, got[i], got[0])
		}
	}
	if d := got[0].Sub(lastRegistered); d < 400*time.Millisecond || d > 600*time.Millisecond {
		t.Errorf("the instant is %v after the last shard came up, want the 500 ms lead", d)
	}
}

func TestBarrierNamesTheMissing(t *testing.T) {
	s3test.Start(t, "runs")
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := Parse("s3://runs/job-m")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Barrier(ctx, BarrierOptions{Loc: loc, RunID: "job-m", Shard: []int{1, 3}[i], Shards: 4,
				Timeout: 2 * time.Second, Poll: 20 * time.Millisecond})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var be *BarrierError
		if !errors.As(err, &be) || !slices.Equal(be.Missing, []string{"2/4", "4/4"}) || !strings.Contains(err.Error(), "s3://runs/job-m") {
			t.Errorf("%v, want shards 2/4, 4/4 named missing", err)
		}
	}
	// A shard that counts another N is refused at once.
	_, err = st.Barrier(ctx, BarrierOptions{Loc: loc, RunID: "job-m", Shard: 2, Shards: 5, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "this shard is one of 5") {
		t.Errorf("mixed N: %v", err)
	}
}

// TestBarrierRunIDUsedOnce: a second run under a run id whose shards have
// registered is refused, naming the id, rather than started at once from
// the first run's instant.
func TestBarrierRunIDUsedOnce(t *testing.T) {
	srv := s3test.Start(t, "runs")
	if !srv.Real {
		t.Skip("the fake ignores If-None-Match; this needs SeaweedFS")
	}
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := Parse("s3://runs/job-once")
	ctx := context.Background()
	o := BarrierOptions{Loc: loc, RunID: "job-once", Shard: 1, Shards: 1, Timeout: 5 * time.Second, Poll: 20 * time.Millisecond}
	if _, err := st.Barrier(ctx, o); err != nil {
		t.Fatal(err)
	}
	_, err = st.Barrier(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "shard 1/1 of run job-once registered already") || !strings.Contains(err.Error(), "--run-id") {
		t.Errorf("the run id again: %v, want it refused", err)
	}
	o.RunID = "job-twice"
	if _, err := st.Barrier(ctx, o); err != nil {
		t.Errorf("a new run id: %v", err)
	}
}
