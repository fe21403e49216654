package runspec

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A run file survives Write then Read unchanged, and keeps its keys.
func TestRunRoundTrip(t *testing.T) {
	t.Parallel()
	think := Think{Uniform: []Duration{Duration(2 * time.Second), Duration(5 * time.Second)}}
	in := &Run{ID: "r1", Started: "2026-11-27T10:00:00Z", Ended: "2026-11-27T10:05:00Z", TimeScale: 0.1, Seed: 3, Shard: "1/1",
		Versions: map[string]string{"loadtape": "dev"}, Host: map[string]any{"os": "linux"},
		Targets: map[string]string{"gateway": "http://127.0.0.1:8080"},
		Profile: Profile{Scenarios: map[string]Scenario{"gateway": {Service: "gateway", Mode: "closed", Think: &think,
			Stages: []ProfileStage{{Users: 1, Duration: Duration(time.Minute), Name: "baseline"}}, Mix: map[string]float64{"chat": 1}}},
			Targets: []Target{{Scenario: "gateway", Metric: "p95", Max: "2s"}, {Scenario: "gateway", Metric: "count", ErrorKind: ErrTimeout, Max: "0"}}, Acceptance: 0.8},
		Scenarios: []string{"gateway"}, Stages: []Stage{{Scenario: "gateway", Stage: 1, Users: 1, Start: "2026-11-27T10:00:00.5Z", End: "2026-11-27T10:01:00Z"}},
		Monitor: []Monitor{{Source: "prom", URL: "http://localhost:8080/metrics", Service: "gateway"}}, Requests: 10}
	dir := t.TempDir()
	if err := in.Write(dir); err != nil {
		t.Fatal(err)
	}
	out, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	for _, key := range []string{`"time_scale": 0.1`, `"uniform": [`, `"2s"`, `"max": 0`, `"max": "2s"`, `"stages"`, `"monitor"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("run.json lacks %s:\n%s", key, b)
		}
	}
	if got := out.ThinkMean("gateway"); got < 0.3499 || got > 0.3501 {
		t.Errorf("think mean at scale 0.1: %v, want 0.35 s", got)
	}
	if got := out.ThinkMean("nope"); got != -1 {
		t.Errorf("think mean of an unknown scenario: %v, want -1", got)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"{\n\"id\": 1\n}", "run.json:2:7: "},
		{"{\"id\": \"r\",\n  \"stages\": [}", "run.json:2:14: "},
		{`{"stages": []}`, `missing "id"`},
		{`{"id": "r", "stages": [{"scenario": "g", "stage": 0, "start": "2026-11-27T10:00:00Z"}]}`, "1-based"},
		{`{"id": "r", "profile": {"targets": [{"scenario": "g", "metric": "p95", "max": {}}]}}`, "want a number or a string"},
		{`{"id": "r", "time_scale": -1}`, "time_scale -1"},
		{`{"id": "r", "profile": {"acceptance": 80}}`, "profile.acceptance 80"},
	} {
		_, err := Parse([]byte(tc.body), "run.json")
		if !errors.Is(err, ErrBadRunFile) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "run.json") {
			t.Errorf("%s: error %v, want ErrBadRunFile naming run.json and %q", tc.body, err, tc.want)
		}
	}
}

func TestThinkMean(t *testing.T) {
	t.Parallel()
	s := func(d string) Duration { v, _ := time.ParseDuration(d); return Duration(v) }
	for _, tc := range []struct {
		think Think
		want  time.Duration
		ok    bool
	}{
		{Think{Uniform: []Duration{s("2s"), s("5s")}}, 3500 * time.Millisecond, true},
		{Think{Exponential: s("3s")}, 3 * time.Second, true},
		{Think{Constant: s("500ms")}, 500 * time.Millisecond, true},
		{Think{}, 0, true},
		{Think{AsRecorded: true}, 0, false},
	} {
		got, ok := tc.think.Mean()
		if got != tc.want || ok != tc.ok {
			t.Errorf("%+v: %v %v, want %v %v", tc.think, got, ok, tc.want, tc.ok)
		}
	}
	if err := (Think{Constant: s("1s"), Exponential: s("2s")}).Validate(); err == nil {
		t.Error("two distributions accepted")
	}
}

func TestTargetValidate(t *testing.T) {
	t.Parallel()
	ok := []Target{
		{Scenario: "g", Metric: "p95", Max: "2s"},
		{Scenario: "g", Metric: "ttft_p99", Max: "500"},
		{Scenario: "g", Metric: "send_lag_p99", Max: "50ms"},
		{Scenario: "g", Metric: "error_rate", ErrorKind: ErrVectorTimeout, Max: "0.1%"},
		{Scenario: "g", Metric: "rps", Users: 100, Min: "10"},
		{Scenario: "g", Metric: "count", ErrorKind: ErrSandboxViolation, Max: "0"},
	}
	for _, tg := range ok {
		if err := tg.Validate(); err != nil {
			t.Errorf("%+v refused: %v", tg, err)
		}
	}
	bad := []struct {
		t    Target
		want string
	}{
		{Target{Metric: "p95", Max: "1s"}, "without a scenario"},
		{Target{Scenario: "g", Metric: "latency", Max: "1s"}, "unknown target metric"},
		{Target{Scenario: "g", Metric: "p95"}, "exactly one"},
		{Target{Scenario: "g", Metric: "p95", Max: "1s", Min: "1s"}, "exactly one"},
		{Target{Scenario: "g", Metric: "p95", Max: "-2s"}, "0 or more"},
		{Target{Scenario: "g", Metric: "rps", Min: "-1"}, "0 or more"},
		{Target{Scenario: "g", Metric: "rps", Min: "fast"}, "requests per second"},
		{Target{Scenario: "g", Metric: "error_rate", Max: "101%"}, "0% to 100%"},
		{Target{Scenario: "g", Metric: "p95", Max: "NaN"}, "duration"},
		{Target{Scenario: "g", Metric: "p95", ErrorKind: ErrTimeout, Max: "1s"}, "error_kind applies"},
		{Target{Scenario: "g", Metric: "p95", Users: -1, Max: "1s"}, "users and stage"},
	}
	for _, tc := range bad {
		err := tc.t.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.t, err, tc.want)
		}
	}
	for _, a := range []float64{-3, 1.5, 80} {
		if ValidAcceptance(a) == nil {
			t.Errorf("acceptance %v accepted", a)
		}
	}
	for _, a := range []float64{0, 0.8, 1} {
		if err := ValidAcceptance(a); err != nil {
			t.Errorf("acceptance %v refused: %v", a, err)
		}
	}
}

// Latency bounds grow with the scale, rate bounds shrink, the rest stay.
func TestBoundScaled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t    Target
		want float64
	}{
		{Target{Scenario: "g", Metric: "p95", Max: "2s"}, 200},
		{Target{Scenario: "g", Metric: "ttfb_avg", Max: "50"}, 5},
		{Target{Scenario: "g", Metric: "rps", Min: "10"}, 100},
		{Target{Scenario: "g", Metric: "rpm", Min: "60"}, 600},
		{Target{Scenario: "g", Metric: "error_rate", Max: "1%"}, 1},
		{Target{Scenario: "g", Metric: "count", Max: "3"}, 3},
	} {
		b, err := tc.t.Bound()
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Scaled(0.1).Value; got < tc.want*0.999999 || got > tc.want*1.000001 {
			t.Errorf("%s %s at scale 0.1: %v, want %v", tc.t.Metric, tc.t.Max+tc.t.Min, got, tc.want)
		}
		if got := b.Scaled(1); got != b {
			t.Errorf("scale 1 changed %+v to %+v", b, got)
		}
	}
}

func TestLimitJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, out string }{{`"2s"`, `"2s"`}, {`0`, `0`}, {`10`, `10`}, {`0.5`, `0.5`}, {`"1%"`, `"1%"`}, {`"10"`, `10`}} {
		var l Limit
		if err := json.Unmarshal([]byte(tc.in), &l); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(l)
		if string(b) != tc.out {
			t.Errorf("%s → %s, want %s", tc.in, b, tc.out)
		}
	}
}

func TestHostPort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"http://localhost:8080/v1", "127.0.0.1:8080"},
		{"http://127.0.0.1:8080", "127.0.0.1:8080"},
		{"http://[::1]:9090/metrics", "127.0.0.1:9090"},
		{"http://0.0.0.0:80", "127.0.0.1:80"},
		{"http://gpu-box/metrics", "gpu-box:80"},
		{"https://gpu-box", "gpu-box:443"},
		{"http://[2001:db8::1]/", net.JoinHostPort("2001:db8::1", "80")},
		{"not a url", ""},
		{"/relative", ""},
	} {
		if got := HostPort(tc.in); got != tc.want {
			t.Errorf("HostPort(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		op     string
		status int
		body   string
		want   string
	}{
		{"rag.query", 504, `{"status":{"error":"Timeout error: qdrant search timed out"}}`, ErrVectorTimeout},
		{"rag.query", 408, ``, ErrVectorTimeout},
		{"chat.completions", 504, `upstream timed out`, ErrHTTP5xx},
		{"chat.completions", 500, `collection points search timeout`, ErrVectorTimeout},
		{"rag.query", 500, `QueuePool limit of size 5 overflow 0 reached, connection timed out`, ErrHTTP5xx},
		{"chat.completions", 404, `no such model`, ErrHTTP4xx},
		{"chat.completions", 500, `CUDA out of memory. Tried to allocate 64.00 MiB`, ErrOutOfMemory},
		{"chat.completions", 400, `prompt too long: out of memory budget`, ErrHTTP4xx},
		{"chat.completions", 200, ``, ""},
	} {
		if got := ClassifyStatus(tc.op, tc.status, []byte(tc.body)); got != tc.want {
			t.Errorf("%s %d %q: %q, want %q", tc.op, tc.status, tc.body, got, tc.want)
		}
	}
	if ClassifyTransport(&net.OpError{Op: "dial", Err: errors.New("connection refused")}) != ErrConnection {
		t.Error("refused connection: want connection")
	}
	if !IsOutOfMemory("HTTP 500: CUDA out of memory. Tried to allocate 64.00 MiB") || IsOutOfMemory("HTTP 500: boom") {
		t.Error("IsOutOfMemory")
	}
}

// Any bytes: Parse returns a run or an error, never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id": "r", "profile": {"scenarios": {"g": {"think": {"uniform": ["2s", "5s"]}}}}}`))
	f.Add([]byte(`{"id": "r", "profile": {"targets": [{"scenario": "g", "metric": "p95", "max": 2}]}}`))
	f.Add([]byte(`{"id": "r", "stages": [{"scenario": "g", "stage": 1, "start": "2026-11-27T10:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b, "run.json")
		if err == nil && r.ID == "" {
			t.Fatal("accepted a run without an id")
		}
	})
}
