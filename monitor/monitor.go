// Package monitor samples resources while a run lasts: GPUs through NVML,
// the host's CPU, memory, disk and network through gopsutil, and any
// Prometheus text endpoint (a DCGM exporter, vLLM, the sim's /metrics). One
// goroutine ticks at the interval, asks every source, and writes long-format
// captures.Sample rows to samples-*.parquet in the run directory.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loadtape/loadtape/captures"
)

// DefaultEvery is the sampling interval when Options.Every is zero.
const DefaultEvery = time.Second

// ErrBadSource is returned for a --monitor spec that names no known source.
var ErrBadSource = errors.New("monitor: unknown source")

// Source is one thing to sample. Sample appends rows stamped t; a source
// that failed for good reports it once through Options.Log and returns nil
// from then on.
type Source interface {
	Info() SourceInfo
	Sample(ctx context.Context, t time.Time, out []captures.Sample) []captures.Sample
	Close()
}

// SourceInfo describes a source for run.json.
type SourceInfo struct {
	Source   string // nvml, host, prom
	URL      string // prom: the scrape URL
	HostPort string // prom: runspec.HostPortOf the URL, to match it with a target
}

// Options configure a Sampler.
type Options struct {
	Sources []string      // "nvml", "host", "prom=URL"
	Every   time.Duration // 0 = DefaultEvery
	Dir     string        // where samples-*.parquet go
	Log     func(format string, args ...any)
	// Writer replaces the Parquet writer (tests); nil = samples-*.parquet in Dir.
	Writer interface {
		Write(rows ...captures.Sample) error
		Close() error
	}
}

// Sampler runs the sources until Close.
type Sampler struct {
	sources []Source
	w       Options
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	once    sync.Once
}

// ParseSources turns --monitor specs (repeatable or comma lists) into
// sources. prom=URL needs an http(s) URL.
func ParseSources(specs []string, log func(string, ...any)) ([]Source, error) {
	var out []Source
	for _, spec := range specs {
		for _, s := range strings.Split(spec, ",") {
			s = strings.TrimSpace(s)
			name, arg, _ := strings.Cut(s, "=")
			switch name {
			case "":
			case "nvml":
				out = append(out, newNVML(log))
			case "host":
				out = append(out, newHost())
			case "prom":
				u, err := url.Parse(arg)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return nil, fmt.Errorf("--monitor %q: want prom=http://HOST:PORT/metrics", s)
				}
				out = append(out, newProm(u, log))
			default:
				return nil, fmt.Errorf("%w: --monitor %q (want nvml, host or prom=URL)", ErrBadSource, s)
			}
		}
	}
	return out, nil
}

// Start parses the sources and starts sampling; the first sample is taken
// at once. The goroutine ends when ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Sampler, error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	srcs, err := ParseSources(opts.Sources, opts.Log)
	if err != nil {
		return nil, err
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.Writer == nil {
		w, err := captures.NewWriter[captures.Sample](captures.WriterOptions{Dir: opts.Dir, Prefix: "samples"})
		if err != nil {
			return nil, err
		}
		opts.Writer = w
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{sources: srcs, w: opts, cancel: cancel, done: make(chan struct{})}
	go s.loop(ctx)
	return s, nil
}

func (s *Sampler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.w.Every)
	defer t.Stop()
	var rows []captures.Sample
	for {
		now := time.Now()
		rows = rows[:0]
		for _, src := range s.sources {
			rows = src.Sample(ctx, now, rows)
		}
		if len(rows) > 0 {
			if err := s.w.Writer.Write(rows...); err != nil && s.err == nil {
				s.err = err
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sources describes the sources for run.json.
func (s *Sampler) Sources() []SourceInfo {
	out := make([]SourceInfo, len(s.sources))
	for i, src := range s.sources {
		out[i] = src.Info()
	}
	return out
}

// Close stops sampling, closes the sources and the samples file; safe to
// call twice.
func (s *Sampler) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		for _, src := range s.sources {
			src.Close()
		}
		if err := s.w.Writer.Close(); err != nil && s.err == nil {
			s.err = err
		}
	})
	return s.err
}
