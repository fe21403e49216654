package proxy

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A stream spreads one text over its events: the deltas of a completion,
// the pieces of a tool call's arguments. A secret the model writes out can
// arrive split anywhere between two events ("sk-proj-Ab" in one,
// "cd0123…" in the next), where neither event holds a whole token shape.
// So the strings of a stream that sit at the same place in their events
// (the same JSON path, or SSE data that is not JSON) are joined, in order,
// into the text a client assembles, and that text is searched: for token
// shapes and, when it is a JSON document (tool-call arguments), for
// credential-named fields. A secret found there is replaced in the stored
// body by its placeholder in the event where it begins, and its bytes in
// the events after are removed, so the assembled text reads as it did
// with the placeholder where the secret was.
//
// This runs on the stored copy only, on the writer goroutine once the
// exchange is complete; what the client receives is the upstream's bytes,
// forwarded as they arrive.

// fragment is one string of one event: b[s:e], quotes included for a JSON
// string (json), which esc says holds escapes.
type fragment struct {
	s, e      int
	json, esc bool
}

// streamText collects the fragments of a body by path, in order.
type streamText struct {
	paths  map[string]int // path → index in groups
	groups [][]fragment
}

func (st *streamText) add(path []byte, f fragment) {
	if st.paths == nil {
		st.paths = map[string]int{}
	}
	g, ok := st.paths[string(path)] // no allocation for a path seen before
	if !ok {
		g = len(st.groups)
		st.paths[string(path)] = g
		st.groups = append(st.groups, nil)
	}
	st.groups[g] = append(st.groups[g], f)
}

// text is the fragment's decoded text, and the raw index of each of its
// bytes (nil: the text is the raw bytes, from start).
func (f fragment) text(b []byte) (text []byte, at []int, start int) {
	switch {
	case !f.json:
		return b[f.s:f.e], nil, f.s
	case !f.esc:
		return b[f.s+1 : f.e-1], nil, f.s + 1
	}
	text, at = unquote(b, f.s, f.e)
	return text, at, 0
}

// unquote decodes the JSON string b[s:e] (quotes included) and maps each
// decoded byte to the raw index of its character or escape.
func unquote(b []byte, s, e int) (text []byte, at []int) {
	text = make([]byte, 0, e-s-2)
	at = make([]int, 0, e-s-1)
	for i := s + 1; i < e-1; {
		c := b[i]
		if c != '\\' || i+1 >= e-1 {
			text = append(text, c)
			at = append(at, i)
			i++
			continue
		}
		start := i
		var r rune
		n := 2
		switch b[i+1] {
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			r, n = hex4(b, i+2, e-1), 6
			if utf16.IsSurrogate(r) && i+11 < e && b[i+6] == '\\' && b[i+7] == 'u' {
				r, n = utf16.DecodeRune(r, hex4(b, i+8, e-1)), 12
			}
		default:
			r = rune(b[i+1]) // \" \\ \/
		}
		k := len(text)
		text = utf8.AppendRune(text, r)
		for range len(text) - k {
			at = append(at, start)
		}
		i += n
	}
	return text, append(at, e-1)
}

// hex4 reads four hex digits at b[i:] (before end); a bad escape reads as
// the replacement character.
func hex4(b []byte, i, end int) rune {
	if i+4 > end {
		return utf8.RuneError
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return utf8.RuneError
		}
	}
	return r
}

// joinedEdits searches the text the fragments of each path make together
// and returns the edits that remove what it finds from the body.
func (rd *redactor) joinedEdits(b []byte, st *streamText, edits []edit) []edit {
	var joined []byte
	var starts []int
	for _, frags := range st.groups {
		if len(frags) < 2 {
			continue // one event's string: searched with its event
		}
		joined, starts = joined[:0], starts[:0]
		for _, f := range frags {
			starts = append(starts, len(joined))
			t, _, _ := f.text(b)
			joined = append(joined, t...)
		}
		starts = append(starts, len(joined))
		var found []edit
		if mayHoldTokenBytes(joined) {
			found = findTokens(joined, false, nil)
		}
		if looksJSON(joined) {
			j := jsonScan{rd: rd, b: joined}
			j.value(skipWS(joined, 0), false, 0)
			found = append(found, j.edits...)
		}
		for _, f := range found {
			edits = rd.spread(b, joined, f, frags, starts, edits)
		}
	}
	return edits
}

// spread turns one edit of the joined text into edits of the body: the
// replacement goes where the secret begins, the rest of its bytes in
// later fragments are removed. A secret within one fragment is left to
// the search of its own event.
func (rd *redactor) spread(b, joined []byte, f edit, frags []fragment, starts []int, edits []edit) []edit {
	var out []edit
	for k, fr := range frags {
		fs, fe := starts[k], starts[k+1]
		lo, hi := max(f.start, fs), min(f.end, fe)
		if lo >= hi {
			continue
		}
		_, at, start := fr.text(b)
		raw := func(i int) int {
			if at == nil {
				return start + i
			}
			return at[i]
		}
		e := edit{start: raw(lo - fs), end: raw(hi - fs), drop: len(out) > 0}
		if !e.drop {
			e.repl = f.repl
			if e.repl == "" {
				e.repl = rd.placeholder(string(joined[f.start:f.end]))
			}
			if fr.json {
				e.repl = jsonInner(e.repl)
			}
		}
		out = append(out, e)
	}
	if len(out) < 2 {
		return edits
	}
	return append(edits, out...)
}

// jsonInner escapes s for the inside of a JSON string.
func jsonInner(s string) string {
	if !strings.ContainsAny(s, "\"\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
