package captures

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// PlaceholderPrefix starts every value the recorder redacted.
const PlaceholderPrefix = "redacted:"

// PlaceholderHexLen is the number of lower-case hex digits after the prefix
// in the placeholders the recorder writes.
const PlaceholderHexLen = 16

// minPlaceholderHex is the fewest hex digits ContainsPlaceholder accepts
// after the prefix: captures written before keyed placeholders carry 8.
const minPlaceholderHex = 8

// Placeholder is the redacted form of secret: the prefix and the first
// PlaceholderHexLen hex digits of HMAC-SHA256(key, secret). The recorder
// draws key at random per capture and never stores it, so equal secrets get
// equal placeholders within one capture while a guessed secret cannot be
// confirmed from the capture.
func Placeholder(key []byte, secret string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	sum := m.Sum(nil)
	var b [len(PlaceholderPrefix) + PlaceholderHexLen]byte
	copy(b[:], PlaceholderPrefix)
	hex.Encode(b[len(PlaceholderPrefix):], sum[:PlaceholderHexLen/2])
	return string(b[:])
}

// ContainsPlaceholder reports whether s holds a redaction placeholder, raw
// ("redacted:1a2b…"), percent-escaped ("redacted%3A1a2b…", either case,
// escaped twice too) or JSON-escaped ("redacted\u003a1a2b…"). Replay uses it
// to refuse sending a placeholder in any part of a request, wherever an
// encoding would hide it from a plain substring test.
func ContainsPlaceholder(s string) bool {
	if hasPlaceholder(s) {
		return true
	}
	// Only %XX and \uXXXX escapes can hide the prefix or its digits; JSON's
	// \n, \" and the like in an ordinary body cost nothing more.
	if !strings.Contains(s, "%") && !strings.Contains(s, `\u`) {
		return false
	}
	// Each pass undoes one layer of escaping; four cover anything a client
	// plausibly stacks (a JSON string holding a URL holding a query value).
	for range 4 {
		d, changed := unescapeLoose(s)
		if !changed {
			return false
		}
		if hasPlaceholder(d) {
			return true
		}
		s = d
	}
	return false
}

// hasPlaceholder looks for the prefix (any case) followed by enough hex
// digits. Requiring the digits keeps prose such as "redacted: see page 3"
// from counting.
func hasPlaceholder(s string) bool {
	for i := 0; i+len(PlaceholderPrefix) <= len(s); {
		j := indexFold(s[i:], PlaceholderPrefix)
		if j < 0 {
			return false
		}
		k := i + j + len(PlaceholderPrefix)
		n := 0
		for k+n < len(s) && n < minPlaceholderHex && isHex(s[k+n]) {
			n++
		}
		if n == minPlaceholderHex {
			return true
		}
		i = k
	}
	return false
}

// indexFold is strings.Index ignoring ASCII case, for an ASCII lower-case sub.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		c := s[i] | 0x20
		if c != sub[0] {
			continue
		}
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// unescapeLoose undoes %XX and \uXXXX (ASCII only) escapes, leaving
// anything malformed as it is; it never fails.
func unescapeLoose(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			changed = true
			continue
		case c == '\\' && i+5 < len(s) && s[i+1] == 'u' && s[i+2] == '0' && s[i+3] == '0' && isHex(s[i+4]) && isHex(s[i+5]):
			if v := unhex(s[i+4])<<4 | unhex(s[i+5]); v < 0x80 {
				b.WriteByte(v)
				i += 5
				changed = true
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String(), changed
}
