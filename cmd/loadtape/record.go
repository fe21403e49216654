package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadtape/loadtape/proxy"
)

type recordFlags struct {
	routes       []string
	out          string
	forward      string
	mitmCA       string
	maxBody      string
	roll         time.Duration
	flush        time.Duration
	rules        string
	keepSecrets  bool
	drainTimeout time.Duration

	forwardAllow     []string
	forwardAuth      string
	forwardTo        []string
	firstByteTimeout time.Duration
	idleTimeout      time.Duration
}

func init() {
	var f recordFlags
	cmd := &cobra.Command{
		Use:   "record --route NAME@LISTEN=UPSTREAM ... --out DIR",
		Short: "Record live traffic through a proxy into capture files",
		Long: `record runs a recording proxy in front of the services of an AI stack. Each
--route listens on LISTEN and forwards to UPSTREAM, recording every exchange with
NAME as its service; --forward runs an HTTP proxy for clients that set
HTTP_PROXY (with --mitm-ca, HTTPS is intercepted with a CA made on first use).
Traffic passes through unchanged and streaming. Ctrl-C stops accepting, lets
in-flight exchanges finish (up to --drain-timeout) and closes the capture.
Rows are on disk within --flush (a write-ahead log beside each open file);
after a crash, the next record into the same directory turns what reached
disk into Parquet files. A full disk or another write error never stops
the traffic: rows are counted as failed until writes succeed again.`,
		Example: `  loadtape record --out captures/ \
    --route gateway@127.0.0.1:18000=http://127.0.0.1:8000 \
    --route rag@127.0.0.1:18002=http://127.0.0.1:8002 \
    --route mcp@127.0.0.1:18020=http://127.0.0.1:8020`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRecord(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.routes, "route", nil, "reverse route NAME@LISTEN=UPSTREAM (repeatable)")
	fl.StringVar(&f.out, "out", "", "capture directory, or s3://BUCKET/PREFIX (files uploaded as they roll) (required)")
	fl.StringVar(&f.forward, "forward", "", "listen address of a forward HTTP proxy")
	fl.StringVar(&f.mitmCA, "mitm-ca", "", "with --forward: intercept HTTPS using the CA in this directory (made on first use)")
	fl.StringVar(&f.maxBody, "max-body", "1MiB", "body bytes recorded per side; the client still gets everything")
	fl.DurationVar(&f.roll, "roll", proxy.DefaultRoll, "capture file roll interval: how often new rows become readable Parquet files")
	fl.DurationVar(&f.flush, "flush", proxy.DefaultFlush, "most time a row waits before it is on disk in the write-ahead log: what a crash can lose")
	fl.StringVar(&f.rules, "rules", "", "YAML rules: service, operation and session matchers, extra redactions")
	fl.BoolVar(&f.keepSecrets, "keep-secrets", false, "store credentials (headers, query parameters, body fields, token shapes) as they are instead of keyed redacted:<hmac> placeholders")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", proxy.DefaultDrainTimeout, "how long Ctrl-C lets in-flight exchanges finish")
	fl.StringSliceVar(&f.forwardAllow, "forward-allow", nil, "with --forward: client addresses that may use it (CIDR,...); needed, or --forward-auth, beyond loopback")
	fl.StringVar(&f.forwardAuth, "forward-auth", "", "with --forward: require Basic proxy authentication as USER:PASS")
	fl.StringSliceVar(&f.forwardTo, "forward-to", nil, "with --forward: the only destinations allowed (HOST:PORT,...), CONNECT included")
	fl.DurationVar(&f.firstByteTimeout, "first-byte-timeout", proxy.DefaultFirstByteTimeout, "longest wait for an upstream's response headers before the client gets 504 (0: none)")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", proxy.DefaultIdleTimeout, "longest silence between an upstream's body bytes before the response is broken off (0: none)")
	_ = cmd.MarkFlagRequired("out")
	rootCmd.AddCommand(cmd)
}

func runRecord(ctx context.Context, f recordFlags) error {
	opts := proxy.Options{
		Out:          f.out,
		Forward:      f.forward,
		MITMCADir:    f.mitmCA,
		Roll:         f.roll,
		Flush:        f.flush,
		KeepSecrets:  f.keepSecrets,
		DrainTimeout: f.drainTimeout,
		Log:          os.Stderr,
	}
	for _, s := range f.routes {
		rt, err := proxy.ParseRoute(s)
		if err != nil {
			return badInput(fmt.Errorf("--route: %w", err))
		}
		opts.Routes = append(opts.Routes, rt)
	}
	if len(opts.Routes) == 0 && opts.Forward == "" {
		return badInput(fmt.Errorf("record: give at least one --route NAME@LISTEN=UPSTREAM or --forward ADDR"))
	}
	mb, err := proxy.ParseSize(f.maxBody)
	if err != nil {
		return badInput(fmt.Errorf("--max-body: %w", err))
	}
	opts.MaxBody = mb
	if f.roll <= 0 || f.drainTimeout <= 0 || f.flush <= 0 {
		return badInput(fmt.Errorf("record: --roll, --flush and --drain-timeout must be positive"))
	}
	if err := forwardPolicy(&opts, f); err != nil {
		return badInput(err)
	}
	if f.rules != "" {
		if opts.Rules, err = proxy.LoadRules(f.rules); err != nil {
			return badInput(err)
		}
	}
	// An s3:// --out is written locally and uploaded as the files roll.
	out, finish, err := spooled(context.Background(), f.out)
	if err != nil {
		return err
	}
	opts.Out = out
	rec, err := proxy.New(opts)
	if err != nil {
		_ = finish()
		return badInput(err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	// Signals are caught before the listeners open: a Ctrl-C that comes
	// as soon as the proxy answers still stops it cleanly.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rec.Start(); err != nil {
		_ = finish()
		return badInput(err) // a port in use is the user's to fix
	}
	for name, addr := range rec.Addrs() {
		fmt.Fprintf(os.Stderr, "record: %s listening on %s\n", name, addr)
	}
	if ca := rec.CA(); ca != nil {
		fmt.Fprintf(os.Stderr, "record: intercepting HTTPS; clients must trust %s (see docs/record.md)\n", ca.CertFile)
	}
	fmt.Fprintf(os.Stderr, "record: writing to %s; Ctrl-C to stop\n", f.out)

	<-sigCtx.Done()
	stop() // a second signal now ends the process the default way
	fmt.Fprintf(os.Stderr, "record: stopping; draining for up to %s (Ctrl-C again to quit at once)\n", f.drainTimeout)
	if _, err := rec.Shutdown(context.Background()); err != nil {
		return errors.Join(err, finish())
	}
	return finish()
}

// forwardPolicy fills the forward proxy's policy and the upstream timeouts
// from the flags (a zero timeout means none).
func forwardPolicy(opts *proxy.Options, f recordFlags) error {
	if f.forward == "" && (len(f.forwardAllow) > 0 || f.forwardAuth != "" || len(f.forwardTo) > 0) {
		return fmt.Errorf("record: --forward-allow, --forward-auth and --forward-to need --forward")
	}
	var err error
	if opts.ForwardAllow, err = proxy.ParseCIDRs(f.forwardAllow); err != nil {
		return fmt.Errorf("--forward-allow: %w", err)
	}
	if opts.ForwardTo, err = proxy.ParseDestinations(f.forwardTo); err != nil {
		return fmt.Errorf("--forward-to: %w", err)
	}
	opts.ForwardAuth = f.forwardAuth
	if f.firstByteTimeout < 0 || f.idleTimeout < 0 {
		return fmt.Errorf("record: --first-byte-timeout and --idle-timeout must not be negative")
	}
	opts.FirstByteTimeout, opts.IdleTimeout = f.firstByteTimeout, f.idleTimeout
	if f.firstByteTimeout == 0 {
		opts.FirstByteTimeout = -1
	}
	if f.idleTimeout == 0 {
		opts.IdleTimeout = -1
	}
	return nil
}
