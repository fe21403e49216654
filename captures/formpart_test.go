package captures

import "testing"

// A part is a file when its Content-Disposition has a filename, even an
// empty one (a browser sends filename="" for an empty file input): the
// recorder must not redact it by its field name, and replay must not fill it.
func TestFormPartName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		head           string
		name, filename string
		isFile         bool
	}{
		{"Content-Disposition: form-data; name=\"api_key\"", "api_key", "", false},
		{"content-disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain", "doc", "a.txt", true},
		{"Content-Disposition: form-data; name=\"doc\"; filename=\"\"", "doc", "", true},
		{"Content-Type: text/plain", "", "", false},
		{"Content-Disposition: form-data; name=", "", "", false}, // malformed
	} {
		name, filename, isFile := FormPartName([]byte(tc.head))
		if name != tc.name || filename != tc.filename || isFile != tc.isFile {
			t.Errorf("%q: %q %q %v, want %q %q %v", tc.head, name, filename, isFile, tc.name, tc.filename, tc.isFile)
		}
	}
}
