package captures

import (
	"bytes"
	"mime"
	"strings"
)

// FormPartName reads a multipart/form-data part's field name and file
// name from its Content-Disposition header, and whether it is a file part
// (a filename parameter, even an empty one). The recorder redacts plain
// fields by their name and replay fills them back by the same name, so
// both read a part with this one function and agree on which parts are
// fields.
func FormPartName(headers []byte) (name, filename string, isFile bool) {
	for _, line := range bytes.Split(headers, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(k)), "Content-Disposition") {
			continue
		}
		_, params, err := mime.ParseMediaType(string(bytes.TrimSpace(v)))
		if err != nil {
			return "", "", false
		}
		filename, isFile = params["filename"]
		return params["name"], filename, isFile
	}
	return "", "", false
}
