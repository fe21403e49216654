package analyze

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A run.json that cannot be used is bad input naming the file, in one line.
func TestReadRunInfoErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, want string }{
		{"missing", "", "run.json"},
		{"syntax", "{\n\"id\": \"r\",\n\"stages\": [}\n", "run.json:3:"},
		{"no id", `{"stages": []}`, `missing "id"`},
		{"bad stage time", `{"id": "r", "stages": [{"scenario": "g", "stage": 1, "start": "noon"}]}`, "stages[0].start"},
		{"bad think", `{"id": "r", "profile": {"scenarios": {"g": {"think": {"uniform": ["2s", 5]}}}}}`, "duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.body != "" {
				if err := os.WriteFile(filepath.Join(dir, "run.json"), []byte(tc.body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ReadRunInfo(dir)
			if err == nil {
				t.Fatalf("no error, want one with %q", tc.want)
			}
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "run.json") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line of bad input naming run.json and %q", err, tc.want)
			}
		})
	}
}
