package objstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// A start barrier without a coordinator: each shard of a run puts one
// object PREFIX/.barrier/RUN_ID/I-of-N holding the time it was ready, then
// lists that folder until all N are there. Every shard reads the same N
// times and so computes the same start instant, the latest of them plus
// lead, with no shard in charge. The instant is in the shards' own clocks,
// so they must agree as for --start-at (NTP); lead covers how long the
// last registration takes to be seen by every shard.

// BarrierOptions are one shard's part in a barrier.
type BarrierOptions struct {
	Loc     Location      // the run's prefix
	RunID   string        // the run's id: registrations of other runs do not count
	Shard   int           // 1-based
	Shards  int           // N
	Timeout time.Duration // how long to wait for the others
	Lead    time.Duration // added to the last registration
	Poll    time.Duration // listing interval; 0 = 200 ms
	Now     func() time.Time
}

// BarrierError names the shards that had not registered when the wait
// ended.
type BarrierError struct {
	Loc     string
	Missing []string // "I/N"
	Waited  time.Duration
}

func (e *BarrierError) Error() string {
	return fmt.Sprintf("start barrier %s: after %v, shard %s of the run had not registered", e.Loc, e.Waited.Round(time.Millisecond), strings.Join(e.Missing, ", "))
}

func (o BarrierOptions) folder() string {
	return o.Loc.key(".barrier/" + o.RunID + "/")
}

// Barrier registers this shard and returns the run's start instant once
// every shard has registered, or a *BarrierError when Timeout passes
// first.
func (s *Store) Barrier(ctx context.Context, o BarrierOptions) (time.Time, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	poll := o.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	began := now()
	mine := now().UTC().Format(time.RFC3339Nano)
	key := fmt.Sprintf("%s%d-of-%d", o.folder(), o.Shard, o.Shards)
	// Only if there is none yet (If-None-Match: *): a registration left by
	// an earlier run of this id would otherwise be counted, and the shards
	// would start at once, each on its own, from that run's instant.
	put := minio.PutObjectOptions{ContentType: "text/plain"}
	put.SetMatchETagExcept("*")
	if _, err := s.c.PutObject(ctx, o.Loc.Bucket, key, strings.NewReader(mine), int64(len(mine)), put); err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed" {
			return time.Time{}, fmt.Errorf("start barrier %s: shard %d/%d of run %s registered already (%s%s/%s): a run id is used once; give this run a new --run-id", o.Loc, o.Shard, o.Shards, o.RunID, Scheme, o.Loc.Bucket, key)
		}
		return time.Time{}, fmt.Errorf("start barrier: register %s%s/%s: %w", Scheme, o.Loc.Bucket, key, err)
	}
	deadline := began.Add(o.Timeout)
	got := map[int]time.Time{} // registrations are never rewritten: each is read once
	for {
		err := s.registered(ctx, o, got)
		if err != nil {
			return time.Time{}, err
		}
		if len(got) == o.Shards {
			var last time.Time
			for _, t := range got {
				if t.After(last) {
					last = t
				}
			}
			return last.Add(o.Lead), nil
		}
		if !now().Before(deadline) {
			var missing []string
			for i := 1; i <= o.Shards; i++ {
				if _, ok := got[i]; !ok {
					missing = append(missing, fmt.Sprintf("%d/%d", i, o.Shards))
				}
			}
			return time.Time{}, &BarrierError{Loc: o.Loc.String(), Missing: missing, Waited: now().Sub(began)}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// registered adds the run's registrations not in got yet: shard → ready
// time. One of another N is an error: the shards disagree on how many they
// are.
func (s *Store) registered(ctx context.Context, o BarrierOptions, got map[int]time.Time) error {
	var keys []string
	for obj := range s.c.ListObjects(ctx, o.Loc.Bucket, minio.ListObjectsOptions{Prefix: o.folder(), Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("start barrier: list %s: %w", o.Loc, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var i, n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(k, o.folder()), "%d-of-%d", &i, &n); err != nil {
			continue
		}
		if n != o.Shards {
			return fmt.Errorf("start barrier %s: shard %d/%d registered, but this shard is one of %d", o.Loc, i, n, o.Shards)
		}
		if _, ok := got[i]; ok {
			continue
		}
		r, err := s.c.GetObject(ctx, o.Loc.Bucket, k, minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("start barrier: read %s: %w", k, err)
		}
		b, err := io.ReadAll(io.LimitReader(r, 100))
		r.Close()
		if err != nil {
			return fmt.Errorf("start barrier: read %s: %w", k, err)
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("start barrier: %s holds %q, not a time", k, b)
		}
		got[i] = t
	}
	return nil
}
