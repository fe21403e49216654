package sim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultAndHealthyConfigsAreValid(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]Config{"default": DefaultConfig(), "healthy": HealthyConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	d, h := DefaultConfig(), HealthyConfig()
	if d.MCP.ExecutorConcurrency != 1 || h.MCP.ExecutorConcurrency <= 20 {
		t.Errorf("executor: default %d (want 1, a serialized tool server), healthy %d (want > 20 users)", d.MCP.ExecutorConcurrency, h.MCP.ExecutorConcurrency)
	}
	if h.Gateway.GPUMemoryMiB <= d.Gateway.GPUMemoryMiB || h.RAG.VectorPool.Size <= 50 || h.RAG.DB.MaxConnections <= 50 {
		t.Errorf("healthy config is not generous: %+v", h)
	}
}

func TestLoadConfigOverridesDefaults(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sim.yaml")
	yaml := `time_scale: 0.05
gateway:
  batch_slots: 8
  models:
    - {name: chat-7b, weights_mib: 2048, load: startup}
    - {name: code-7b, weights_mib: 2048, load: on_demand, load_time: 5s, unload_idle: 1m}
rag:
  vector_pool: {size: 30, wait_timeout: 3s}
mcp:
  executor_concurrency: 4
  tool_time: {git_log: 250ms}
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	switch {
	case c.TimeScale != 0.05, c.Gateway.BatchSlots != 8, c.Gateway.Models[1].Load != "on_demand",
		c.Gateway.Models[1].LoadTime != 5*time.Second, c.RAG.VectorPool.Size != 30,
		c.RAG.VectorPool.WaitTimeout != 3*time.Second, c.MCP.ExecutorConcurrency != 4,
		c.MCP.ToolTime.GitLog != 250*time.Millisecond:
		t.Errorf("values not read: %+v", c)
	case c.Gateway.DecodePerToken != d.Gateway.DecodePerToken, c.RAG.DB != d.RAG.DB, c.MCP.ToolTime.ReadFile != d.MCP.ToolTime.ReadFile:
		t.Errorf("keys left out lost their defaults: %+v", c)
	}
}

func TestLoadConfigErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "gateway:\n  batch_slots: 4\n  batch_slotz: 5\n", "sim.yaml:3:"},
		{"unknown top-level key", "time_scale: 1\nrags: {}\n", "sim.yaml:2:"},
		{"wrong type", "rag:\n  vector_pool:\n    size: many\n", "sim.yaml:3:"},
		{"bad duration", "mcp:\n  tool_time:\n    read_file: soon\n", "sim.yaml:3:"},
		{"negative pool", "rag:\n  db:\n    pool_size: -1\n", "sim.yaml:3:5: rag.db.pool_size"},
		{"zero time scale", "\n\ntime_scale: 0\n", "sim.yaml:3:1: time_scale"},
		{"bad load mode", "gateway:\n  models:\n    - name: chat-7b\n      load: lazy\n", "sim.yaml:4:7: gateway.models[0].load"},
		{"alias to nothing", "gateway:\n  aliases:\n    gpt-4: llama\n", "sim.yaml:3:5: gateway.aliases.gpt-4"},
		{"not YAML", "gateway: [\n", "sim.yaml:"},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "sim.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q, want one line containing %q", c.name, err, c.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("time_scale: 0.05\ngateway: {batch_slots: 4}\n"))
	f.Add([]byte("rag:\n  db: {pool_size: 0}\n"))
	f.Add([]byte("mcp: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.yaml", data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("ParseConfig accepted a config that Validate rejects: %v", verr)
			}
		}
	})
}
