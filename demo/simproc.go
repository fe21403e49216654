package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// simProcess is the sim running as a child process: `loadtape sim --json`.
//
// Why a process of its own: in one process the replayer's goroutines wait
// on Go's scheduler behind the sim's CPU-bound handlers (vector search, JSON,
// SSE), and Go preempts a running goroutine only after about 10 ms. On a
// 2-core machine the healthy demo then showed send-lag p99 of 11–40 ms at
// the top user counts in about half of its runs: the analyser rightly called
// its own load generator saturated. As two processes the kernel's scheduler
// wakes the replayer's threads promptly, and each process has its own
// garbage collector. It is also how a user runs loadtape: beside, not
// inside, the services it loads.
type simProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// simNice is the sim process's niceness.
const simNice = 5

// simReadyTimeout bounds the wait for the child's URL line.
const simReadyTimeout = 30 * time.Second

// startSimProcess runs argv (the loadtape binary and "sim") with the demo's
// configuration on free local ports and returns the services' URLs once the
// child prints them. The child's diagnostics go to logw.
func startSimProcess(ctx context.Context, argv []string, healthy bool, scale float64, logw io.Writer) (*simProcess, map[string]string, error) {
	args := append(argv[1:len(argv):len(argv)],
		"--json", "--time-scale", strconv.FormatFloat(scale, 'g', -1, 64),
		"--gateway", "127.0.0.1:0", "--rag", "127.0.0.1:0", "--mcp", "127.0.0.1:0")
	if healthy {
		args = append(args, "--healthy")
	}
	// At a lower priority (nice 5) where nice(1) is at hand: on a busy
	// machine the kernel then serves the load generator's brief wake-ups
	// before the sim's long CPU bursts. The sim's latency is what is
	// measured either way; the replayer's punctuality is what makes it true.
	cmd := exec.Command(argv[0], args...)
	if nice, err := exec.LookPath("nice"); err == nil {
		cmd = exec.Command(nice, append([]string{"-n", strconv.Itoa(simNice), argv[0]}, args...)...)
	}
	cmd.Stderr = logw
	// Its own process group keeps a terminal's Ctrl-C for the demo, which
	// then stops the sim itself; Pdeathsig stops it if the demo is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// Wait also waits for the copy of the child's stderr, which any process
	// of the group that outlives the child (a shell's own child) holds open:
	// bound that wait.
	cmd.WaitDelay = 2 * time.Second
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close() // the child holds its own copy; EOF comes when it exits
	if err != nil {
		stdout.Close()
		return nil, nil, fmt.Errorf("demo: starting the sim process %s: %w", argv[0], err)
	}
	p := &simProcess{cmd: cmd, done: make(chan error, 1)}
	line := make(chan []byte, 1)
	go func() {
		defer stdout.Close()
		r := bufio.NewReader(stdout)
		b, _ := r.ReadBytes('\n')
		line <- b
		io.Copy(io.Discard, r) // nothing more is expected; never block the child
	}()
	go func() { p.done <- cmd.Wait() }()

	var b []byte
	select {
	case b = <-line:
	case <-time.After(simReadyTimeout):
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		p.stop()
		return nil, nil, ctx.Err()
	}
	var urls map[string]string
	if err := json.Unmarshal(b, &urls); err != nil || len(urls) != 3 {
		p.stop()
		return nil, nil, fmt.Errorf("demo: the sim process %s did not print its URLs (got %q); its messages are above", argv[0], b)
	}
	return p, urls, nil
}

// stop ends the child's process group with SIGTERM (the sim's own clean
// stop) and waits for the child; a group that does not stop within 10 s is
// killed. The group, not the child alone: under nice(1) or a shell the
// process started may not be the last of the chain yet when the signal
// comes (seen on a busy machine: a cancelled start waited 30 s for a
// shell's child).
func (p *simProcess) stop() error {
	pgid := p.cmd.Process.Pid // Setpgid: the child leads its own group
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		return <-p.done
	}
}
