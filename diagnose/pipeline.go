package diagnose

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Runner drives targets through the loadtape binary: record a short
// scripted client through the proxy, replay a profile written for the
// target, analyze, read summary.json.
type Runner struct {
	Loadtape string    // path of the loadtape binary
	Work     string    // directory for each target's capture, run and report
	Log      io.Writer // progress and the binary's output on failure; nil discards
}

// Finding is what the benchmark reads of a summary.json finding.
type Finding struct {
	Kind      string `json:"kind"`
	Scenario  string `json:"scenario"`
	Operation string `json:"operation"`
	Severity  string `json:"severity"`
	Summary   string `json:"summary"`
}

// StageFacts is what the benchmark reads of a summary.json stage, to show
// the planted shape beside the verdict.
type StageFacts struct {
	Users       int     `json:"users"`
	Trustworthy bool    `json:"trustworthy"`
	OKRPS       float64 `json:"ok_rps"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	ErrorRate   float64 `json:"error_rate"`
}

// Outcome is one target's run.
type Outcome struct {
	Target   Target
	Findings []Finding
	Stages   []StageFacts
	Err      string // the pipeline failed: no verdict
	Wall     time.Duration
	// Record, Replay and Analyze are the wall time of each step.
	Record, Replay, Analyze time.Duration
	// Load is the machine's one-minute load average when the target
	// started ("" where /proc/loadavg is missing): send lag on a busy
	// machine is the machine's, and the reader should see it.
	Load string
}

// service is the name the target is recorded and replayed under.
const service = "planted"

// recordRequests is how many times the recording client sends each
// operation: enough exchanges to draw from, few enough to be quick.
const recordRequests = 5

// Run takes one target through record, replay and analyze.
func (r *Runner) Run(ctx context.Context, t Target) Outcome {
	start := time.Now()
	out := Outcome{Target: t, Load: LoadAverage()}
	if err := r.run(ctx, t, &out); err != nil {
		out.Err = err.Error()
	}
	out.Wall = time.Since(start)
	return out
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

func (r *Runner) run(ctx context.Context, t Target, out *Outcome) error {
	dir := filepath.Join(r.Work, t.Name)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	capDir, runDir, repDir := filepath.Join(dir, "capture"), filepath.Join(dir, "run"), filepath.Join(dir, "report")
	if err := os.MkdirAll(capDir, 0o755); err != nil {
		return err
	}

	b := t.New()
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) // ends when Shutdown below closes the listener
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	base := "http://" + ln.Addr().String()

	t0 := time.Now()
	ops, err := r.record(ctx, b, base, capDir, filepath.Join(dir, "record.log"))
	out.Record = time.Since(t0)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	profile := filepath.Join(dir, "profile.yaml")
	if err := os.WriteFile(profile, []byte(t.Profile(service, ops)), 0o644); err != nil {
		return err
	}
	args := []string{"replay", "--captures", capDir, "--profile", profile,
		"--target", service + "=" + base, "--out", runDir, "--monitor", "host",
		"--request-timeout", "30s", "--max-run", (t.Duration() + 30*time.Second).String()}
	if t.GPU {
		args = append(args, "--monitor", "prom="+base+"/metrics")
	}
	t0 = time.Now()
	err = r.binary(ctx, t.Duration()+60*time.Second, filepath.Join(dir, "replay.log"), args...)
	out.Replay = time.Since(t0)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	t0 = time.Now()
	err = r.binary(ctx, 2*time.Minute, filepath.Join(dir, "analyze.log"), "analyze", runDir, "--out", repDir)
	out.Analyze = time.Since(t0)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) {
		return fmt.Errorf("analyze: %w", err)
	}
	return readSummary(filepath.Join(repDir, "summary.json"), out)
}

// binary runs loadtape with args, its output to logPath; on failure the
// error carries the output's last lines.
func (r *Runner) binary(ctx context.Context, limit time.Duration, logPath string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, r.Loadtape, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	os.WriteFile(logPath, buf.Bytes(), 0o644)
	if err != nil {
		return fmt.Errorf("%w: %s", err, tail(buf.String(), 600))
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

var listening = regexp.MustCompile(`record: ` + service + ` listening on (\S+)`)

// record runs `loadtape record` in front of the server, sends each of its
// operations recordRequests times through the proxy, stops the recorder
// with SIGINT and returns the operation names the server's ops were
// recorded under (read from the capture by `inspect --json`).
func (r *Runner) record(ctx context.Context, b Behaviour, base, capDir, logPath string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Loadtape, "record", "--out", capDir,
		"--route", service+"@127.0.0.1:0="+base, "--roll", "1h")
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	var logBuf bytes.Buffer
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	copied := make(chan struct{})
	go func() { // ends when the recorder closes its stderr (it exited)
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logBuf.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	var proxyAddr string
	select {
	case proxyAddr = <-addr:
	case <-copied:
	case <-time.After(20 * time.Second):
	}
	var sendErr error
	if proxyAddr == "" {
		sendErr = errors.New("the recorder never said where it listens")
	} else {
		sendErr = script(ctx, "http://"+proxyAddr, b.Ops())
	}
	cmd.Process.Signal(syscall.SIGINT)
	<-copied
	waitErr := cmd.Wait()
	os.WriteFile(logPath, logBuf.Bytes(), 0o644)
	if sendErr != nil {
		return nil, sendErr
	}
	if waitErr != nil {
		return nil, fmt.Errorf("%w: %s", waitErr, tail(logBuf.String(), 600))
	}
	return r.operations(ctx, capDir)
}

// script is the recording client: each operation recordRequests times,
// one after another, every body read to its end.
func script(ctx context.Context, base string, ops []Op) error {
	client := &http.Client{Timeout: 20 * time.Second}
	for i := 0; i < recordRequests; i++ {
		for _, op := range ops {
			var body io.Reader
			if op.Body != "" {
				body = strings.NewReader(op.Body)
			}
			req, err := http.NewRequestWithContext(ctx, op.Method, base+op.Path, body)
			if err != nil {
				return err
			}
			if op.Body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return nil
}

// operations lists the operation names in a capture, as replay mixes
// name them, from `loadtape inspect --json`.
func (r *Runner) operations(ctx context.Context, capDir string) ([]string, error) {
	cmd := exec.CommandContext(ctx, r.Loadtape, "inspect", "--json", capDir)
	raw, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	var v struct {
		Operations []struct {
			Service   string `json:"service"`
			Operation string `json:"operation"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("inspect --json: %w", err)
	}
	var ops []string
	for _, o := range v.Operations {
		if o.Service == service {
			ops = append(ops, o.Operation)
		}
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("inspect: no operation of %s in %s", service, capDir)
	}
	return ops, nil
}

// readSummary reads the findings and the stage facts of summary.json.
func readSummary(path string, out *Outcome) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s struct {
		Stages []struct {
			Users       int  `json:"users"`
			Trustworthy bool `json:"trustworthy"`
			Operations  map[string]struct {
				OKRPS     float64 `json:"ok_rps"`
				ErrorRate float64 `json:"error_rate"`
				LatencyMS struct {
					P50 float64 `json:"p50"`
					P99 float64 `json:"p99"`
				} `json:"latency_ms"`
			} `json:"operations"`
		} `json:"stages"`
		Findings []Finding `json:"findings"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out.Findings = s.Findings
	for _, st := range s.Stages {
		all := st.Operations["all"]
		out.Stages = append(out.Stages, StageFacts{Users: st.Users, Trustworthy: st.Trustworthy,
			OKRPS: all.OKRPS, P50MS: all.LatencyMS.P50, P99MS: all.LatencyMS.P99, ErrorRate: all.ErrorRate})
	}
	return nil
}

// LoadAverage is the machine's one-minute load average, "" when unknown.
func LoadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
