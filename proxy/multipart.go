package proxy

import (
	"bytes"
	"strings"

	"github.com/loadtape/loadtape/captures"
)

// multipart finds the fields of a multipart/form-data body whose names read
// like a credential (password, api_key, client_secret, ...) and appends an
// edit for each field's value. A part with a filename is a file: its name
// says nothing about its content, so it is left to the token-shape search
// that runs on every body. Every other byte (boundaries, part headers,
// files) stays as it was. A body cut at --max-body (or malformed) is
// scanned as far as it goes; a credential field that runs into its end is
// redacted to the end.
func (rd *redactor) multipart(b []byte, boundary string, edits []edit) []edit {
	if boundary == "" || len(boundary) > 200 {
		return edits
	}
	delim := []byte("--" + boundary)
	next := []byte("\r\n--" + boundary)
	i := 0
	if !bytes.HasPrefix(b, delim) {
		k := bytes.Index(b, next)
		if k < 0 {
			return edits
		}
		i = k + 2 // a preamble before the first part
	}
	for parts := 0; parts < 10000; parts++ {
		i += len(delim)
		if bytes.HasPrefix(b[i:], []byte("--")) {
			return edits // the closing delimiter
		}
		eol := bytes.Index(b[i:], []byte("\r\n"))
		if eol < 0 {
			return edits
		}
		hs := i + eol + 2
		he := bytes.Index(b[hs:], []byte("\r\n\r\n"))
		if he < 0 {
			return edits
		}
		vs := hs + he + 4
		if he == 0 {
			vs = hs + 2 // a part without headers
		}
		ve := bytes.Index(b[vs:], next)
		cut := ve < 0
		if cut {
			ve = len(b)
		} else {
			ve += vs
		}
		if name, _, file := captures.FormPartName(b[hs : hs+he]); !file && name != "" && ve > vs &&
			(rd.query[strings.ToLower(name)] || secretName(name)) {
			edits = append(edits, edit{start: vs, end: ve})
		}
		if cut {
			return edits
		}
		i = ve + 2
	}
	return edits
}
