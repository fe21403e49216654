package replay

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// healthTimeout bounds each target's health check.
const healthTimeout = 5 * time.Second

// checkHealth asks each target's health endpoint (the scenario's `health`
// path, else /health when the capture has it) for a 2xx before anything is
// sent; a target without one must at least accept a TCP connection. A
// target that is down stops the run before any result is written.
func (p *plan) checkHealth(ctx context.Context, client *http.Client) error {
	done := map[string]bool{}
	for _, name := range p.scenarios {
		sc := p.profile.Scenarios[name]
		if done[sc.Service] {
			continue
		}
		done[sc.Service] = true
		t := p.targets[sc.Service]
		path := sc.Health
		if path == "" {
			path = p.pool.services[sc.Service].health
		}
		if err := probeHealth(ctx, client, t, path); err != nil {
			return fmt.Errorf("%w: service %q at %s: %v", ErrTargetDown, sc.Service, t.base, err)
		}
	}
	return nil
}

func probeHealth(ctx context.Context, client *http.Client, t *target, path string) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if path == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", runspec.HostPortOf(t.base))
		if err != nil {
			return err
		}
		return c.Close()
	}
	u := *t.base
	u.Path = t.base.Path + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s answered %s", u.Path, resp.Status)
	}
	return nil
}
