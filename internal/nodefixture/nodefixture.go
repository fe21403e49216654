// Package nodefixture finds the real npm components that tests start (the
// OpenAI client, the reference MCP server, DuckDB), installed from the
// lockfile in testdata/node by `make node-fixtures`.
//
// In CI (CI=true) a missing node binary or npm package fails the test: CI
// installs them, so their absence is a broken build, not an excuse. Elsewhere
// the test is skipped with a message naming what is missing.
package nodefixture

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
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
