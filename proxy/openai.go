package proxy

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// openAIFields reads model and usage from the top level of a JSON object
// as json.Unmarshal into openAIBody would, without decoding the rest: a
// completion's content and a request's messages are stepped over, not
// decoded, which on small exchanges cost as much as writing the row. ok is
// false when doc is not one object or a field does not decode.
func openAIFields(doc []byte) (b openAIBody, ok bool) {
	escaped := false
	ok = eachField(doc, func(key, val []byte) bool {
		switch {
		case bytes.EqualFold(key, []byte("model")):
			if len(val) > 1 && val[0] == '"' && bytes.IndexByte(val, '\\') < 0 {
				b.Model = string(val[1 : len(val)-1])
				return true
			}
			return json.Unmarshal(val, &b.Model) == nil
		case bytes.EqualFold(key, []byte("usage")):
			return usageFields(val, &b)
		case bytes.IndexByte(key, '\\') >= 0:
			escaped = true // an escaped key could spell either name
			return false
		}
		return true
	})
	if escaped {
		var full openAIBody
		err := json.Unmarshal(doc, &full)
		return full, err == nil
	}
	return b, ok
}

// usageFields decodes a usage object into b.Usage as json.Unmarshal would:
// integer counts read directly, anything unusual by json.Unmarshal.
func usageFields(val []byte, b *openAIBody) bool {
	if string(val) == "null" {
		b.Usage = nil
		return true
	}
	if b.Usage == nil {
		b.Usage = new(struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
			InputTokens      int64 `json:"input_tokens"`
			OutputTokens     int64 `json:"output_tokens"`
		})
	}
	u := b.Usage
	slow := false
	ok := eachField(val, func(key, v []byte) bool {
		var dst *int64
		switch {
		case bytes.EqualFold(key, []byte("prompt_tokens")):
			dst = &u.PromptTokens
		case bytes.EqualFold(key, []byte("completion_tokens")):
			dst = &u.CompletionTokens
		case bytes.EqualFold(key, []byte("input_tokens")):
			dst = &u.InputTokens
		case bytes.EqualFold(key, []byte("output_tokens")):
			dst = &u.OutputTokens
		case bytes.IndexByte(key, '\\') >= 0:
			slow = true
			return false
		default:
			return true
		}
		if string(v) == "null" {
			return true
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || v[0] == '+' || (len(v) > 1 && v[0] == '0') || (len(v) > 2 && v[0] == '-' && v[1] == '0') {
			slow = true
			return false
		}
		*dst = n
		return true
	})
	if slow || !ok {
		return json.Unmarshal(val, &b.Usage) == nil
	}
	return true
}

// eachField calls fn with the raw key (without quotes) and raw value of
// every member of the JSON object doc, in order, and reports whether doc
// is one object and fn accepted every member.
func eachField(doc []byte, fn func(key, val []byte) bool) bool {
	i := skipWS(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	i = skipWS(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return skipWS(doc, i+1) == len(doc)
	}
	for i < len(doc) {
		if doc[i] != '"' {
			return false
		}
		ke := skipString(doc, i)
		if ke < 0 {
			return false
		}
		key := doc[i+1 : ke-1]
		i = skipWS(doc, ke)
		if i >= len(doc) || doc[i] != ':' {
			return false
		}
		vs := skipWS(doc, i+1)
		ve := skipValue(doc, vs)
		if ve < 0 || !fn(key, doc[vs:ve]) {
			return false
		}
		i = skipWS(doc, ve)
		if i < len(doc) && doc[i] == '}' {
			return skipWS(doc, i+1) == len(doc)
		}
		if i >= len(doc) || doc[i] != ',' {
			return false
		}
		i = skipWS(doc, i+1)
	}
	return false
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
