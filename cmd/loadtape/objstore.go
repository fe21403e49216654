package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/loadtape/loadtape/objstore"
	"github.com/loadtape/loadtape/runspec"
)

// Object storage paths (s3://BUCKET/PREFIX) are staged through a local
// directory: inputs are downloaded before the command reads them, outputs
// are written locally and uploaded once whole, each file one object.

// stagedIn replaces each s3:// path by a local directory holding its
// objects. done removes the downloads.
func stagedIn(ctx context.Context, what string, paths []string) (local []string, done func(), err error) {
	var tmps []string
	done = func() {
		for _, d := range tmps {
			_ = os.RemoveAll(d)
		}
	}
	var st *objstore.Store
	for _, p := range paths {
		if !objstore.IsURL(p) {
			local = append(local, p)
			continue
		}
		loc, err := objstore.Parse(p)
		if err != nil {
			done()
			return nil, nil, badInput(fmt.Errorf("%s %w", what, err))
		}
		if st == nil {
			if st, err = objstore.FromEnv(); err != nil {
				done()
				return nil, nil, badInput(err)
			}
		}
		tmp, err := os.MkdirTemp("", "loadtape-s3-")
		if err != nil {
			done()
			return nil, nil, err
		}
		tmps = append(tmps, tmp)
		if _, err := st.Download(ctx, loc, tmp); err != nil {
			done()
			if errors.Is(err, objstore.ErrEmpty) || errors.Is(err, objstore.ErrNoBucket) {
				return nil, nil, badInput(fmt.Errorf("%s %w", what, err))
			}
			return nil, nil, err
		}
		local = append(local, tmp)
	}
	return local, done, nil
}

// runDirsIn expands each downloaded run location to its run directories:
// the location itself when it holds run.json, else each directory below
// it that does (the shards of a run under one prefix), in name order.
func runDirsIn(args, local []string) ([]string, error) {
	var out []string
	for i, dir := range local {
		if !objstore.IsURL(args[i]) {
			out = append(out, dir)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, runspec.FileName)); err == nil {
			out = append(out, dir)
			continue
		}
		var found []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == runspec.FileName {
				found = append(found, filepath.Dir(p))
			}
			return nil
		})
		if len(found) == 0 {
			return nil, badInput(fmt.Errorf("%s: no %s under it: want a run, or the shards of one", args[i], runspec.FileName))
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// stagedOut gives the local directory to write for out; publish uploads
// it when out is s3://, and discard (deferred by the caller) removes the
// local copy whatever happened. Unless force, an s3:// out must hold no
// objects yet, as a local --out must be empty.
func stagedOut(ctx context.Context, flag, out string, force bool) (local string, publish func() error, discard func(), err error) {
	if !objstore.IsURL(out) {
		return out, func() error { return nil }, func() {}, nil
	}
	loc, err := objstore.Parse(out)
	if err != nil {
		return "", nil, nil, badInput(fmt.Errorf("%s %w", flag, err))
	}
	st, err := objstore.FromEnv()
	if err != nil {
		return "", nil, nil, badInput(err)
	}
	used, err := st.Used(ctx, loc)
	if errors.Is(err, objstore.ErrNoBucket) {
		return "", nil, nil, badInput(fmt.Errorf("%s %w", flag, err))
	}
	if err != nil {
		return "", nil, nil, err
	}
	if used && !force {
		return "", nil, nil, badInput(fmt.Errorf("%s %s: not empty (objects are there); give a new prefix, or --force", flag, out))
	}
	tmp, err := os.MkdirTemp("", "loadtape-s3-out-")
	if err != nil {
		return "", nil, nil, err
	}
	local = filepath.Join(tmp, "out")
	return local, func() error {
		if used {
			if err := st.Clear(ctx, loc); err != nil {
				return err
			}
		}
		n, err := st.Upload(ctx, local, loc)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "uploaded %d files to %s\n", n, loc)
		return nil
	}, func() { _ = os.RemoveAll(tmp) }, nil
}

// barrierLead is how long after the last shard registered the run starts:
// time for every shard to see that registration (a listing or two) and
// for clocks NTP keeps within a few milliseconds.
const barrierLead = 2 * time.Second

// barrierOf gives replay's start barrier for --barrier (nil without one):
// the shards of the run register under that prefix and start together.
func barrierOf(raw, runID, shard, startAt string, timeout time.Duration) (func(context.Context) (time.Time, error), error) {
	if raw == "" {
		return nil, nil
	}
	loc, err := objstore.Parse(raw)
	if err != nil {
		return nil, badInput(fmt.Errorf("--barrier %w", err))
	}
	var i, n int
	if _, err := fmt.Sscanf(shard, "%d/%d", &i, &n); err != nil {
		return nil, badInput(fmt.Errorf("--barrier: --shard %q: want I/N", shard))
	}
	switch {
	case startAt != "":
		return nil, badInput(errors.New("--barrier and --start-at: give one; the barrier picks the instant itself"))
	case runID == "":
		return nil, badInput(errors.New("--barrier needs --run-id: the shards of one run register under it"))
	case timeout <= 0:
		return nil, badInput(fmt.Errorf("--barrier-timeout %v: want a duration > 0", timeout))
	}
	st, err := objstore.FromEnv()
	if err != nil {
		return nil, badInput(err)
	}
	return func(ctx context.Context) (time.Time, error) {
		return st.Barrier(ctx, objstore.BarrierOptions{Loc: loc, RunID: runID, Shard: i, Shards: n, Timeout: timeout, Lead: barrierLead})
	}, nil
}

// shownAs maps a path under a download of stagedIn back to the s3:// name
// it came from, for what a command prints; other paths stay.
func shownAs(args, local []string) func(string) string {
	return func(p string) string {
		for i, a := range args {
			if objstore.IsURL(a) && (p == local[i] || strings.HasPrefix(p, local[i]+string(filepath.Separator))) {
				return strings.TrimSuffix(a, "/") + filepath.ToSlash(strings.TrimPrefix(p, local[i]))
			}
		}
		return p
	}
}

// spooled gives record a local directory for an s3:// --out and uploads
// its finished files (never .inprogress files or write-ahead logs) every
// spoolEvery while the recorder runs, so a capture reaches the store as it
// rolls; finish uploads what is left and removes the local copy once all
// of it is in the store (a failed upload leaves it, named in the error).
func spooled(ctx context.Context, out string) (local string, finish func() error, err error) {
	if !objstore.IsURL(out) {
		return out, func() error { return nil }, nil
	}
	loc, err := objstore.Parse(out)
	if err != nil {
		return "", nil, badInput(fmt.Errorf("--out %w", err))
	}
	st, err := objstore.FromEnv()
	if err != nil {
		return "", nil, badInput(err)
	}
	// A missing bucket is refused before recording, not at the first roll.
	if _, err := st.Used(ctx, loc); errors.Is(err, objstore.ErrNoBucket) {
		return "", nil, badInput(fmt.Errorf("--out %w", err))
	} else if err != nil {
		return "", nil, err
	}
	tmp, err := os.MkdirTemp("", "loadtape-s3-record-")
	if err != nil {
		return "", nil, err
	}
	sent := map[string]string{} // relative path → size and mtime uploaded
	var mu sync.Mutex
	syncOnce := func() error {
		mu.Lock()
		defer mu.Unlock()
		return filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, ".inprogress") || strings.HasSuffix(p, ".wal") {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return nil // gone since the listing: a rename in progress
			}
			rel, _ := filepath.Rel(tmp, p)
			stamp := fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
			if sent[rel] == stamp {
				return nil
			}
			if err := st.Put(ctx, loc, filepath.ToSlash(rel), p); err != nil {
				return err
			}
			sent[rel] = stamp
			return nil
		})
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(spoolEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := syncOnce(); err != nil {
					fmt.Fprintf(os.Stderr, "record: upload to %s: %v (retried at the next roll)\n", loc, err)
				}
			}
		}
	}()
	return tmp, func() error {
		close(done)
		<-stopped
		if err := syncOnce(); err != nil {
			return fmt.Errorf("record: %v; the capture is still in %s", err, tmp)
		}
		fmt.Fprintf(os.Stderr, "record: %d files in %s\n", len(sent), loc)
		return os.RemoveAll(tmp)
	}, nil
}

// spoolEvery is how often record uploads the files finished since.
var spoolEvery = 2 * time.Second
