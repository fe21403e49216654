package replay

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// Shards of one run on several machines: each gets the same profile, seed
// and run id (--run-id), its own slice of the users (--shard I/N, or
// --shards N with the index an Indexed Job gives each pod), and one common
// start instant (--start-at) at which every shard lays its stages on the
// clock. run.json keeps the instant and how late the shard actually began,
// so analyze can say how far apart the shards started.

// JobIndexEnv is the variable a Kubernetes Indexed Job sets in each pod:
// the pod's completion index, 0 to completions−1.
const JobIndexEnv = "JOB_COMPLETION_INDEX"

// ResolveShard gives the --shard value a run uses. With shards = 0 it is
// shard as given. With shards = N > 0 and shard not given (explicit =
// false), the shard is JOB_COMPLETION_INDEX+1 of N; with shard given too,
// its N must be shards. Every error is bad input.
func ResolveShard(shard string, explicit bool, shards int, getenv func(string) string) (string, error) {
	switch {
	case shards < 0:
		return "", badInput(fmt.Errorf("--shards %d: want the number of shards, at least 1", shards))
	case shards == 0:
		return shard, nil
	case explicit:
		sh, err := parseShard(shard)
		if err != nil {
			return "", err
		}
		if sh.n != shards {
			return "", badInput(fmt.Errorf("--shard %s and --shards %d disagree on the number of shards", shard, shards))
		}
		return shard, nil
	}
	raw := getenv(JobIndexEnv)
	if raw == "" {
		return "", badInput(fmt.Errorf("--shards %d: %s is not set (a Kubernetes Indexed Job sets it in each pod); elsewhere give --shard I/%d", shards, JobIndexEnv, shards))
	}
	idx, err := strconv.Atoi(raw)
	if err != nil || idx < 0 || idx >= shards {
		return "", badInput(fmt.Errorf("--shards %d: %s=%q: want an index from 0 to %d", shards, JobIndexEnv, raw, shards-1))
	}
	return fmt.Sprintf("%d/%d", idx+1, shards), nil
}

// ParseStartAt reads --start-at: an RFC 3339 instant, which must still be
// ahead at now. Empty is no barrier (the zero time).
func ParseStartAt(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badInput(fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", s))
	}
	return at, checkStartAt(at, now)
}

// checkStartAt refuses a start instant already past: shards told to start
// together cannot, when one of them began late.
func checkStartAt(at, now time.Time) error {
	if at.IsZero() || at.After(now) {
		return nil
	}
	return badInput(fmt.Errorf("--start-at %s is %v in the past; give an instant ahead of every shard's start (it must read its captures and check targets first)",
		at.UTC().Format(time.RFC3339Nano), now.Sub(at).Round(time.Millisecond)))
}

var runIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkRunID: a run id names the run in run.json, in every result row and
// (for shards on object storage) in a path, so it keeps to path-safe text.
func checkRunID(id string) error {
	if id == "" || runIDRe.MatchString(id) {
		return nil
	}
	return badInput(fmt.Errorf("--run-id %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", id))
}

// awaitStart waits for the start instant at (the zero time: none) and
// returns the time the stages start from: the moment the wait ended. The
// run's end (a signal, --max-run) ends the wait early. An instant that
// passed while the run was being prepared is logged and not waited for;
// the start record says how late the shard was.
func awaitStart(ctx context.Context, at time.Time, logf func(string, ...any)) time.Time {
	if at.IsZero() {
		return time.Now()
	}
	if d := time.Until(at); d <= 0 {
		logf("--start-at %s passed %v before this shard was ready: starting now", at.UTC().Format(time.RFC3339Nano), (-d).Round(time.Millisecond))
		return time.Now()
	}
	logf("waiting for --start-at %s (%v)", at.UTC().Format(time.RFC3339Nano), time.Until(at).Round(time.Millisecond))
	sleepUntil(ctx, at)
	began := time.Now()
	logf("started %v after --start-at", began.Sub(at).Round(time.Microsecond))
	return began
}

// startRecord is run.json's record of a start instant: nil without one.
func startRecord(at, began time.Time) *runspec.Start {
	if at.IsZero() {
		return nil
	}
	return &runspec.Start{At: at.UTC().Format(time.RFC3339Nano), Began: began.UTC().Format(time.RFC3339Nano),
		SkewMS: float64(began.Sub(at).Microseconds()) / 1000}
}

// checkShardRun checks the run id and start instant before anything is
// sent.
func checkShardRun(opts Options, now time.Time) error {
	if err := checkRunID(opts.RunID); err != nil {
		return err
	}
	return checkStartAt(opts.StartAt, now)
}

// startInstant is the instant the stages start from: --start-at, or the
// one the barrier gives once every shard is ready (kept in opts for
// run.json's start record).
func startInstant(ctx context.Context, opts *Options, logf func(string, ...any)) (time.Time, error) {
	if opts.Barrier == nil {
		return opts.StartAt, nil
	}
	logf("start barrier: waiting for the run's other shards")
	at, err := opts.Barrier(ctx)
	if err != nil {
		return time.Time{}, err
	}
	opts.StartAt = at
	return at, nil
}
