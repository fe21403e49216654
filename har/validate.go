package har

import (
	"encoding/json"
	"fmt"
	"sort"
)

// required lists the fields HAR 1.2 marks required, per object type.
var required = map[string][]string{
	"log":      {"version", "creator", "entries"},
	"creator":  {"name", "version"},
	"page":     {"startedDateTime", "id", "title", "pageTimings"},
	"entry":    {"startedDateTime", "time", "request", "response", "cache", "timings"},
	"request":  {"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"},
	"response": {"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize", "bodySize"},
	"content":  {"size", "mimeType"},
	"timings":  {"send", "wait", "receive"},
	"pair":     {"name", "value"},
	"postData": {"mimeType"},
	"param":    {"name"},
}

// children says which fields of an object type hold objects (or arrays of
// objects) of which type.
var children = map[string]map[string]string{
	"root":     {"log": "log"},
	"log":      {"creator": "creator", "browser": "creator", "pages": "page", "entries": "entry"},
	"entry":    {"request": "request", "response": "response", "timings": "timings"},
	"request":  {"cookies": "pair", "headers": "pair", "queryString": "pair", "postData": "postData"},
	"response": {"cookies": "pair", "headers": "pair", "content": "content"},
	"postData": {"params": "param"},
}

// arrays are the fields HAR requires to be arrays.
var arrays = map[string]bool{"entries": true, "pages": true, "cookies": true, "headers": true, "queryString": true, "params": true}

// Validate checks data against the structure HAR 1.2 requires: every
// required field present, arrays where arrays are required. It returns one
// line per problem, naming its path (log.entries[2].request.cookies).
func Validate(data []byte) []string {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return []string{err.Error()}
	}
	var out []string
	var walk func(v any, typ, path string)
	walk = func(v any, typ, path string) {
		obj, ok := v.(map[string]any)
		if !ok {
			out = append(out, fmt.Sprintf("%s: want an object", path))
			return
		}
		for _, f := range required[typ] {
			if _, ok := obj[f]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: required field missing", path, f))
			}
		}
		if typ == "postData" {
			_, text := obj["text"]
			_, params := obj["params"]
			if !text && !params {
				out = append(out, fmt.Sprintf("%s: wants text or params", path))
			}
		}
		keys := make([]string, 0, len(children[typ]))
		for k := range children[typ] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c, ok := obj[k]
			if !ok {
				continue
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			if arrays[k] {
				list, ok := c.([]any)
				if !ok {
					out = append(out, fmt.Sprintf("%s: want an array", p))
					continue
				}
				for i, e := range list {
					walk(e, children[typ][k], fmt.Sprintf("%s[%d]", p, i))
				}
				continue
			}
			walk(c, children[typ][k], p)
		}
	}
	walk(doc, "root", "")
	return out
}
