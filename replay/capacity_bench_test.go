package replay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstreamEnv makes the test binary a slow upstream in a process of its
// own (TestHelperSlowUpstream), so that a benchmark's memory figures are
// the replayer's alone.
const upstreamEnv = "LOADTAPE_REPLAY_SLOW_UPSTREAM"

// TestHelperSlowUpstream is not a test: started by startSlowUpstream with
// upstreamEnv set to a delay, it prints its address, answers every request
// after that delay and exits when its standard input closes.
func TestHelperSlowUpstream(t *testing.T) {
	d := os.Getenv(upstreamEnv)
	if d == "" {
		t.Skip("helper process for BenchmarkMemoryPerUser")
	}
	delay, err := time.ParseDuration(d)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { // ends when the client closes the connection
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				cl := 0
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 {
						break
					}
					if len(line) > 16 && bytes.EqualFold(line[:15], []byte("content-length:")) {
						cl, _ = strconv.Atoi(strings.TrimSpace(string(line[15:])))
					}
				}
				if _, err := r.Discard(cl); err != nil {
					return
				}
				time.Sleep(delay)
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}

// startSlowUpstream starts the helper process and returns its URL.
func startSlowUpstream(b *testing.B, delay time.Duration) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSlowUpstream$")
	cmd.Env = append(os.Environ(), upstreamEnv+"="+delay.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return "http://" + strings.TrimSpace(addr)
}

// BenchmarkMemoryPerUser measures what one closed-model user costs the
// replaying process at its worst: every user waiting on its own response
// at once (the upstream, in another process, answers after 2 s), so each
// holds its goroutine and a connection of its own. It reports the peak RSS
// at 1,000 and at 4,000 users and the difference per user, the figure
// behind userMemory.
func BenchmarkMemoryPerUser(b *testing.B) {
	up := startSlowUpstream(b, 2*time.Second)
	xs := gatewayCapture(20, 9)
	peakAt := func(users int) int64 {
		prof := mustProfile(b, fmt.Sprintf(`
scenarios:
  many:
    service: gateway
    stages: [{users: %d, duration: 5s}]
    mix: {chat.completions: 70, models.list: 20, health: 10}
`, users))
		stop := make(chan struct{})
		done := make(chan struct{})
		var peak atomic.Int64
		go func() {
			defer close(done)
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				if rss := rssBytes(); rss > peak.Load() {
					peak.Store(rss)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		info, err := Run(context.Background(), Options{Exchanges: xs, Profile: prof, Targets: map[string]string{"gateway": up},
			Out: b.TempDir(), resultWriter: &memWriter{}})
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		if info.Errors > info.CutOff {
			b.Fatalf("%d users: %d errors besides cut-offs", users, info.Errors-info.CutOff)
		}
		return peak.Load()
	}
	for i := 0; i < b.N; i++ {
		lo := peakAt(1000)
		hi := peakAt(4000)
		b.ReportMetric(float64(lo)/(1<<20), "peak-RSS-MB-1000")
		b.ReportMetric(float64(hi)/(1<<20), "peak-RSS-MB-4000")
		b.ReportMetric(float64(hi-lo)/3000/1024, "KiB/user")
	}
}
