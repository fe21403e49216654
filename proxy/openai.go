package proxy

import (
	"bytes"
	"encoding/json"
)

// openAIFields reads model and usage from the top level of a JSON object
// as json.Unmarshal into openAIBody would, without decoding the rest: a
// completion's content and a request's messages are stepped over, not
// decoded, which on small exchanges cost as much as writing the row. ok is
// false when doc is not one object or a field does not decode.
func openAIFields(doc []byte) (b openAIBody, ok bool) {
	i := skipWS(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return b, false
	}
	i = skipWS(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return b, skipWS(doc, i+1) == len(doc)
	}
	for i < len(doc) {
		if doc[i] != '"' {
			return b, false
		}
		ke := skipString(doc, i)
		if ke < 0 {
			return b, false
		}
		key := doc[i+1 : ke-1]
		i = skipWS(doc, ke)
		if i >= len(doc) || doc[i] != ':' {
			return b, false
		}
		vs := skipWS(doc, i+1)
		ve := skipValue(doc, vs)
		if ve < 0 {
			return b, false
		}
		switch {
		case bytes.EqualFold(key, []byte("model")):
			if json.Unmarshal(doc[vs:ve], &b.Model) != nil {
				return b, false
			}
		case bytes.EqualFold(key, []byte("usage")):
			if json.Unmarshal(doc[vs:ve], &b.Usage) != nil {
				return b, false
			}
		case bytes.IndexByte(key, '\\') >= 0:
			// An escaped key could spell either name: decode it all.
			var full openAIBody
			if json.Unmarshal(doc, &full) != nil {
				return b, false
			}
			return full, true
		}
		i = skipWS(doc, ve)
		if i < len(doc) && doc[i] == '}' {
			return b, skipWS(doc, i+1) == len(doc)
		}
		if i >= len(doc) || doc[i] != ',' {
			return b, false
		}
		i = skipWS(doc, i+1)
	}
	return b, false
}

// skipString returns the index after the JSON string at i, or -1. It
// jumps from quote to quote (bytes.IndexByte) and counts the backslashes
// before each: an odd number escapes it.
func skipString(b []byte, i int) int {
	for k := i + 1; k < len(b); {
		q := bytes.IndexByte(b[k:], '"')
		if q < 0 {
			return -1
		}
		q += k
		n := 0
		for j := q - 1; j > i && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		k = q + 1
	}
	return -1
}

// skipValue returns the index after the JSON value at i, or -1. Nested
// values are matched by their brackets; scalars end at a delimiter.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for k := i; k < len(b); k++ {
			switch b[k] {
			case '"':
				e := skipString(b, k)
				if e < 0 {
					return -1
				}
				k = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return k + 1
				}
			}
		}
		return -1
	}
	k := i
	for k < len(b) && b[k] != ',' && b[k] != '}' && b[k] != ']' && b[k] != ' ' && b[k] != '\t' && b[k] != '\n' && b[k] != '\r' {
		k++
	}
	if k == i {
		return -1
	}
	return k
}
