// Package nodefixture finds the real npm components that tests start (the
// OpenAI client, the reference MCP server, DuckDB), installed from the
// lockfile in testdata/node by `make node-fixtures`.
//
// In CI (CI=true) a missing node binary or npm package fails the test: CI
// installs them, so their absence is a broken build, not an excuse. Elsewhere
// the test is skipped with a message naming what is missing.
package nodefixture

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Dir returns the absolute path of testdata/node, whose node_modules holds
// pkg (for example "openai" or "@modelcontextprotocol/server-everything"),
// and the path of the node binary.
func Dir(t testing.TB, pkg string) (dir, node string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir = filepath.Join(filepath.Dir(file), "..", "..", "testdata", "node")
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
		missing(t, "npm package "+pkg+" is not installed in testdata/node (run `make node-fixtures`)")
	}
	return dir, node
}

func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must install it", what)
	}
	t.Skipf("skipping: %s", what)
}

// StartEverything runs the reference MCP server,
// @modelcontextprotocol/server-everything, in Streamable HTTP mode (its
// "streamableHttp" argument: it listens on $PORT and serves one endpoint,
// /mcp) on a free loopback port, stops it when the test ends, and returns
// its base URL once it accepts connections.
func StartEverything(t testing.TB) string {
	t.Helper()
	dir, node := Dir(t, "@modelcontextprotocol/server-everything")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var log bytes.Buffer
	cmd := exec.Command(node, filepath.Join(dir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js"), "streamableHttp")
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("server-everything did not listen on %s: %s", addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
