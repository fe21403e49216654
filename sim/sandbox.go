package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// sandbox confines the file tools to one directory. A path is checked twice:
// first by its text (encodings, separators, lookalikes, absolute paths, ".."
// that climbs out), then every file operation goes through os.Root, which
// refuses symlinks that resolve outside the root, also ones swapped in after
// the check. Every refusal is counted by reason.
type sandbox struct {
	dir  string // the root, symlinks resolved
	root *os.Root

	mu       sync.Mutex
	refusals map[string]int64
}

// errRefused is a path the sandbox will not touch.
type errRefused struct{ path, reason string }

func (e *errRefused) Error() string {
	return fmt.Sprintf("sandbox violation: path %q refused (%s); paths must be relative and stay inside the workspace", e.path, e.reason)
}

var percentEncoded = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)

// lookalikes are characters that some layer might fold into '.', '/' or '\'.
var lookalikes = map[rune]bool{
	'\uFF0E': true, '\u2024': true, '\u2025': true, '\uFE52': true, '\u3002': true, '\uFF61': true, // dots
	'\uFF0F': true, '\u2215': true, '\u2044': true, '\u29F8': true, '\uFE68': true, '\uFF3C': true, '\u29F5': true, '\u2216': true, // slashes
	'\u00B7': true, '\u02D9': true,
}

// refusal classifies a path by its text alone; "" when it may be used.
func refusal(p string) string {
	switch {
	case !utf8.ValidString(p) || strings.ContainsRune(p, utf8.RuneError):
		// JSON decoding turns invalid bytes (overlong "%c0%ae" dots) into U+FFFD.
		return "invalid UTF-8"
	case strings.ContainsRune(p, 0):
		return "null byte"
	case strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return "control character"
	case strings.ContainsRune(p, '\\'):
		return "backslash separator"
	case percentEncoded.MatchString(p):
		return "percent-encoded path"
	case strings.IndexFunc(p, func(r rune) bool { return lookalikes[r] }) >= 0:
		return "unicode dot or slash lookalike"
	case strings.Contains(p, "://") || strings.HasPrefix(strings.ToLower(p), "file:"):
		return "URL instead of a path"
	case strings.HasPrefix(p, "~"):
		return "home-directory path"
	case filepath.IsAbs(p) || strings.HasPrefix(p, "/"):
		return "absolute path"
	}
	c := filepath.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "climbs out of the root with .."
	}
	return ""
}

// resolve returns the cleaned relative path, or an *errRefused.
func (s *sandbox) resolve(p string) (string, error) {
	if p == "" {
		return "", errors.New("path is required")
	}
	if why := refusal(p); why != "" {
		return "", s.refuse(p, why)
	}
	rel := filepath.Clean(p)
	// Resolve symlinks on the longest existing prefix, for a clear message;
	// os.Root enforces the same at the operation itself.
	full := filepath.Join(s.dir, rel)
	for probe := full; ; probe = filepath.Dir(probe) {
		if real, err := filepath.EvalSymlinks(probe); err == nil {
			if r, err := filepath.Rel(s.dir, real); err != nil || r == ".." || strings.HasPrefix(r, "../") {
				return "", s.refuse(p, "symlink resolves outside the root")
			}
			break
		}
		if probe == s.dir || len(probe) <= len(s.dir) {
			break
		}
	}
	return rel, nil
}

func (s *sandbox) refuse(p, reason string) error {
	s.mu.Lock()
	s.refusals[reason]++
	s.mu.Unlock()
	return &errRefused{path: p, reason: reason}
}

// guard turns os.Root's escape errors into counted refusals.
func (s *sandbox) guard(p string, err error) error {
	if err != nil && strings.Contains(err.Error(), "path escapes") {
		return s.refuse(p, "symlink resolves outside the root")
	}
	return err
}

func (s *sandbox) refusalCounts() (total int64, by map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	by = map[string]int64{}
	for k, v := range s.refusals {
		by[k] = v
		total += v
	}
	return total, by
}

func (s *sandbox) readFile(p string, limit int) (string, error) {
	rel, err := s.resolve(p)
	if err != nil {
		return "", err
	}
	st, err := s.root.Stat(rel)
	if err != nil {
		return "", s.guard(p, cleanFSError(err, p))
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s is a directory; use list_dir", p)
	}
	if st.Size() > int64(limit) {
		return "", fmt.Errorf("%s is %d bytes, over the %d-byte limit", p, st.Size(), limit)
	}
	b, err := s.root.ReadFile(rel)
	if err != nil {
		return "", s.guard(p, cleanFSError(err, p))
	}
	return string(b), nil
}

func (s *sandbox) writeFile(p, content string, limit int) (int, error) {
	rel, err := s.resolve(p)
	if err != nil {
		return 0, err
	}
	if len(content) > limit {
		return 0, fmt.Errorf("content is %d bytes, over the %d-byte limit", len(content), limit)
	}
	if d := filepath.Dir(rel); d != "." {
		if err := s.root.MkdirAll(d, 0o755); err != nil {
			return 0, s.guard(p, cleanFSError(err, p))
		}
	}
	if err := s.root.WriteFile(rel, []byte(content), 0o644); err != nil {
		return 0, s.guard(p, cleanFSError(err, p))
	}
	return len(content), nil
}

func (s *sandbox) listDir(p string) ([]string, error) {
	if p == "" {
		p = "."
	}
	rel, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(s.root.FS(), filepath.ToSlash(rel))
	if err != nil {
		return nil, s.guard(p, cleanFSError(err, p))
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			name += "/"
		case e.Type()&fs.ModeSymlink != 0:
			name += "@"
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// cleanFSError removes the absolute root from error text: a tool result
// should not tell a client where the sandbox lives.
func cleanFSError(err error, p string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %s", p, pe.Err)
	}
	return err
}

// seedFiles is the workspace the sim creates: the example path of the MCP scenario
// (services/rag/app.py) among a few others.
var seedFiles = map[string]string{
	"README.md":                "# AI suite\n\nGateway, RAG and MCP services used by the load tests.\n",
	"services/rag/app.py":      "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.post(\"/query\")\ndef query(q: dict):\n    return {\"results\": []}\n",
	"services/gateway/main.py": "import uvicorn\n\nif __name__ == \"__main__\":\n    uvicorn.run(\"app:app\", port=8000)\n",
	"services/mcp/server.py":   "TOOLS = [\"read_file\", \"write_file\", \"git_status\", \"git_log\", \"fetch_url\"]\n",
	"docs/plan.md":             "# Phase 3\n\nLoad testing: gateway, RAG, MCP.\n",
	"tests/load/locustfile.py": "from locust import HttpUser, task\n",
}

// newWorkspace creates (or reuses) the sandbox directory as a git
// repository with a few commits, plus symlinks that point out of it so the
// refusal of symlink escapes is exercised. Returns the workspace path and a
// cleanup function.
func newWorkspace(dir string) (string, func(), error) {
	cleanup := func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "loadtape-sim-")
		if err != nil {
			return "", nil, err
		}
		cleanup = func() { _ = os.RemoveAll(tmp) }
		dir = filepath.Join(tmp, "workspace")
		if err := os.WriteFile(filepath.Join(tmp, "outside-secret.txt"), []byte("not for tools\n"), 0o600); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		cleanup()
		return "", nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		return dir, cleanup, nil
	}
	fail := func(err error) (string, func(), error) {
		cleanup()
		return "", nil, fmt.Errorf("sim: creating the MCP workspace in %s: %w", dir, err)
	}
	git := func(args ...string) error {
		out, err := gitCommand(dir, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := git("init", "-q", "-b", "main"); err != nil {
		return fail(err)
	}
	for _, kv := range [][2]string{{"user.name", "loadtape sim"}, {"user.email", "sim@loadtape.invalid"}, {"commit.gpgsign", "false"}} {
		if err := git("config", kv[0], kv[1]); err != nil {
			return fail(err)
		}
	}
	names := make([]string, 0, len(seedFiles))
	for n := range seedFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		full := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(full, []byte(seedFiles[n]), 0o644); err != nil {
			return fail(err)
		}
		if i%2 == 1 || i == len(names)-1 {
			if err := git("add", "-A"); err != nil {
				return fail(err)
			}
			if err := git("commit", "-q", "-m", "Add "+n); err != nil {
				return fail(err)
			}
		}
	}
	// Escape hatches the sandbox must refuse; ignored so git status stays about real work.
	_ = os.MkdirAll(filepath.Join(dir, "links"), 0o755)
	_ = os.Symlink("/etc", filepath.Join(dir, "links", "etc"))
	_ = os.Symlink("../../outside-secret.txt", filepath.Join(dir, "links", "secret.txt"))
	_ = os.Symlink("../README.md", filepath.Join(dir, "links", "readme.md")) // stays inside: allowed
	_ = os.Symlink("../..", filepath.Join(dir, "links", "up"))               // the workspace's parent
	_ = os.WriteFile(filepath.Join(dir, ".git", "info", "exclude"), []byte("links/\n"), 0o644)
	_ = os.MkdirAll(filepath.Join(dir, "notes"), 0o755)
	return dir, cleanup, nil
}

// gitCommand runs git in dir without the user's or system's configuration
// and without optional locks, so concurrent status calls never fight over
// index.lock.
func gitCommand(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", append([]string{"--no-optional-locks", "-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	return cmd
}
