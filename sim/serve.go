package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// ServeOptions are the settings of `loadtape sim`.
type ServeOptions struct {
	// Addrs to listen on (DefaultAddrs: the default ports).
	Addrs Addrs
	// ConfigPath is a YAML file read over the base config ("" for none).
	ConfigPath string
	// Healthy starts from HealthyConfig instead of DefaultConfig.
	Healthy bool
	// TimeScale, when > 0, replaces the config's time scale.
	TimeScale float64
	// JSON writes the URLs as one JSON object on one line, for programs
	// that start the sim (the demo runs it in a process of its own).
	JSON bool
}

// Serve starts the suite, writes its URLs to out, and serves until ctx
// ends. A bad config or flag is an error wrapping ErrConfig.
func Serve(ctx context.Context, opts ServeOptions, out io.Writer) error {
	cfg, source := DefaultConfig(), "default"
	if opts.Healthy {
		cfg, source = HealthyConfig(), "healthy"
	}
	if opts.ConfigPath != "" {
		data, err := os.ReadFile(opts.ConfigPath)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if cfg, err = parseOver(cfg, opts.ConfigPath, data); err != nil {
			return err
		}
		source += " + " + opts.ConfigPath
	}
	if opts.TimeScale < 0 {
		return fmt.Errorf("%w: --time-scale must be > 0, got %v", ErrConfig, opts.TimeScale)
	}
	if opts.TimeScale > 0 {
		cfg.TimeScale = opts.TimeScale
	}
	s, err := Start(ctx, cfg, opts.Addrs)
	if err != nil {
		return err
	}
	if opts.JSON {
		if err := json.NewEncoder(out).Encode(s.URLs()); err != nil {
			s.Close()
			return err
		}
	} else {
		printURLs(out, s.URLs(), source, cfg.TimeScale)
	}
	<-ctx.Done()
	return s.Close()
}

// printURLs is the text a person reads: each service and what it serves.
func printURLs(out io.Writer, u map[string]string, source string, scale float64) {
	fmt.Fprintf(out, "loadtape sim: config %s, time scale %g\n", source, scale)
	if v, ok := u["gateway"]; ok {
		fmt.Fprintf(out, "  gateway  %s  (POST /v1/chat/completions, GET /v1/models, /health, /metrics)\n", v)
	}
	if v, ok := u["rag"]; ok {
		fmt.Fprintf(out, "  rag      %s  (POST /index, POST /query, GET /health, /metrics, /stats)\n", v)
	}
	if v, ok := u["mcp"]; ok {
		fmt.Fprintf(out, "  mcp      %s%s  (Streamable HTTP; GET /health, /metrics, /stats)\n", v, MCPPath)
	}
	fmt.Fprintln(out, "Ctrl-C stops.")
}
