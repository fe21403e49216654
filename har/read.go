package har

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Sentinel errors; each is wrapped with the file and position.
var (
	ErrSyntax   = errors.New("har: not valid JSON")
	ErrNotHAR   = errors.New(`har: not an HTTP Archive (want {"log": {"entries": [...]}})`)
	ErrVersion  = errors.New("har: unsupported version (want 1.1 or 1.2)")
	ErrBadEntry = errors.New("har: bad entry")
)

// Archive is a HAR file read from disk, with where each entry starts, for
// error messages.
type Archive struct {
	Path    string
	File    File
	entryAt []int64 // byte offset of each entry
	data    []byte
}

// Read reads and checks a HAR file. Errors name the file, and the line and
// column where JSON or an entry goes wrong.
func Read(path string) (*Archive, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("har: %w", err)
	}
	return Parse(path, data)
}

// Parse checks data as a HAR file named path.
func Parse(path string, data []byte) (*Archive, error) {
	a := &Archive{Path: path, data: data}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // Fiddler and Charles write a BOM
	if err := json.Unmarshal(data, &a.File); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%s: %w: %s", a.pos(se.Offset-1), ErrSyntax, se.Error()) // Offset is just past the bad byte
		case errors.As(err, &te):
			return nil, fmt.Errorf("%s: %w: field %s is %s, want %s", a.pos(te.Offset), ErrNotHAR, te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("%s: %w: %v", path, ErrNotHAR, err)
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(data, &top)
	if top["log"] == nil {
		return nil, fmt.Errorf("%s: %w", path, ErrNotHAR)
	}
	var log map[string]json.RawMessage
	if json.Unmarshal(top["log"], &log) != nil || log["entries"] == nil {
		return nil, fmt.Errorf("%s: %w", path, ErrNotHAR)
	}
	if v := a.File.Log.Version; v != "" && v != "1.1" && v != "1.2" {
		return nil, fmt.Errorf("%s: %w: %q", path, ErrVersion, v)
	}
	a.entryAt = entryOffsets(data)
	for i := range a.File.Log.Entries {
		if err := checkEntry(&a.File.Log.Entries[i]); err != nil {
			return nil, fmt.Errorf("%s: %w %d: %v", a.EntryPos(i), ErrBadEntry, i+1, err)
		}
	}
	return a, nil
}

// checkEntry checks what import needs of an entry; the other fields HAR
// requires are not needed to build a capture row and tools omit some.
func checkEntry(e *Entry) error {
	if _, err := ParseTime(e.StartedDateTime); err != nil {
		return fmt.Errorf("startedDateTime %q, want an ISO 8601 time like 2026-01-02T15:04:05.000Z", e.StartedDateTime)
	}
	if e.Request.Method == "" {
		return errors.New("request.method is missing")
	}
	u, err := url.Parse(e.Request.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss") {
		return fmt.Errorf("request.url %q, want an absolute http or https URL", e.Request.URL)
	}
	if e.Response.Status < 0 || e.Response.Status > 999 {
		return fmt.Errorf("response.status %d, want 0 (no response) or an HTTP status", e.Response.Status)
	}
	if e.Response.Content.Encoding != "" && e.Response.Content.Encoding != "base64" {
		return fmt.Errorf("response.content.encoding %q, want base64 or none", e.Response.Content.Encoding)
	}
	return nil
}

// ParseTime reads a HAR date-time (ISO 8601 with a zone; fractions of any
// length).
func ParseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// EntryPos is "file:line:col" of entry i (0-based).
func (a *Archive) EntryPos(i int) string {
	if i < len(a.entryAt) {
		return a.pos(a.entryAt[i])
	}
	return a.Path
}

func (a *Archive) pos(off int64) string {
	line, col := 1, 1
	for i := int64(0); i < off && i < int64(len(a.data)); i++ {
		if a.data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%s:%d:%d", a.Path, line, col)
}

// entryOffsets walks data's tokens to the log.entries array and returns the
// byte offset where each element starts; nil when data is not shaped so.
func entryOffsets(data []byte) []int64 {
	dec := json.NewDecoder(bytes.NewReader(data))
	// into walks into the object value of key, skipping the others.
	into := func(key string) bool {
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return false
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return false
			}
			if t == key {
				return true
			}
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return false
			}
		}
		return false
	}
	if !into("log") || !into("entries") {
		return nil
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil
	}
	var out []int64
	for dec.More() {
		off := dec.InputOffset()
		for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
			off++
		}
		out = append(out, off)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			break
		}
	}
	return out
}
