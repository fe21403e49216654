package proxy

import (
	"bytes"
	"slices"
	"strings"
)

// Well-known token shapes, found in any text by their fixed prefix: cheap
// to search for (one bytes.Index pass per prefix) and rare enough in other
// text that a match is a credential.
type tokenShape struct {
	prefix string
	set    *[256]bool // characters of the token after the prefix
	min    int        // fewest of them
	max    int        // most of them; 0: no bound
}

var (
	alnum       = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
	keyChars    = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
	patChars    = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
	upperDigits = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
	token68     = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
	jwtChars    = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
)

func charSet(s string) *[256]bool {
	var t [256]bool
	for i := 0; i < len(s); i++ {
		t[s[i]] = true
	}
	return &t
}

var tokenShapes = []tokenShape{
	{prefix: "sk-", set: keyChars, min: 20},              // OpenAI, Anthropic (sk-ant-…), DeepSeek and others
	{prefix: "AKIA", set: upperDigits, min: 16, max: 16}, // AWS access key id
	{prefix: "ASIA", set: upperDigits, min: 16, max: 16}, // AWS temporary access key id
	{prefix: "ghp_", set: alnum, min: 30},                // GitHub personal access token
	{prefix: "gho_", set: alnum, min: 30},                // GitHub OAuth token
	{prefix: "ghu_", set: alnum, min: 30},                // GitHub user-to-server token
	{prefix: "ghs_", set: alnum, min: 30},                // GitHub server-to-server token
	{prefix: "ghr_", set: alnum, min: 30},                // GitHub refresh token
	{prefix: "github_pat_", set: patChars, min: 30},      // GitHub fine-grained token
	{prefix: "xoxb-", set: keyChars, min: 10},            // Slack
	{prefix: "xoxp-", set: keyChars, min: 10},
	{prefix: "AIza", set: keyChars, min: 30}, // Google API key
	{prefix: "hf_", set: alnum, min: 30},     // Hugging Face
	{prefix: "eyJ", set: jwtChars, min: 20},  // JWT (checked for two dots below)
}

// findTokens appends an edit for every token shape in b, and for the
// credentials after "Bearer ". truncated: b was cut, so a token running
// into its end is redacted however short the cut left it.
func findTokens(b []byte, truncated bool, edits []edit) []edit {
	if len(b) < 8 {
		return edits
	}
	for _, sh := range tokenShapes {
		p := []byte(sh.prefix)
		for at := 0; at < len(b); {
			k := bytes.Index(b[at:], p)
			if k < 0 {
				break
			}
			s := at + k
			at = s + len(p)
			if s > 0 && (keyChars[b[s-1]] || b[s-1] == '.') {
				continue // inside a longer word ("task-…")
			}
			e := at
			for e < len(b) && sh.set[b[e]] {
				e++
			}
			n := e - at
			atEnd := e == len(b) && truncated
			if n < sh.min && !(atEnd && n >= 4) {
				continue
			}
			if sh.max > 0 && n > sh.max {
				continue
			}
			if sh.prefix == "eyJ" && bytes.Count(b[s:e], []byte(".")) != 2 && !atEnd {
				continue
			}
			edits = append(edits, edit{start: s, end: e})
			at = e
		}
	}
	return bearerTokens(b, truncated, edits)
}

// bearerTokens finds "Bearer <credentials>" (as "Bearer", "bearer" or
// "BEARER") and redacts the credentials.
func bearerTokens(b []byte, truncated bool, edits []edit) []edit {
	for _, word := range bearerWords {
		w := []byte(word)
		for at := 0; at+len(w) < len(b); {
			k := bytes.Index(b[at:], w)
			if k < 0 {
				break
			}
			s := at + k
			at = s + len(w)
			if s > 0 && alnum[b[s-1]] {
				continue
			}
			t := at
			if t == len(b) || b[t] != ' ' && b[t] != '\t' {
				continue // the word ends the text ("… Bearer"): nothing follows
			}
			for t < len(b) && (b[t] == ' ' || b[t] == '\t') {
				t++
			}
			e := t
			for e < len(b) && token68[b[e]] {
				e++
			}
			// Prose ("the bearer instruments") is not a credential: a token
			// is long or has a digit or punctuation in it.
			if e-t >= 16 || (e-t >= 8 && bytes.ContainsAny(b[t:e], "0123456789-._~+/=")) || (e == len(b) && truncated && e > t) {
				edits = append(edits, edit{start: t, end: e})
				at = e
			}
		}
	}
	return edits
}

// mayHoldToken is a cheap test, without allocating, that s might hold a
// token shape; most header values and paths do not. One pass: only at a
// byte that starts a prefix are the prefixes starting with it compared.
func mayHoldToken[T string | []byte](s T) bool {
	for i := 0; i+3 <= len(s); i++ {
		for _, p := range tokenStarts[s[i]] {
			if len(s)-i >= len(p) && string(s[i:i+len(p)]) == p { // no allocation: a comparison
				return true
			}
		}
	}
	return false
}

// mayHoldTokenBytes is mayHoldToken for bodies: instead of a look at
// every byte, it jumps (bytes.IndexByte, which reads many bytes at a time)
// from one anchor byte to the next, a byte every prefix holds and prose
// rarely does ('-' of "sk-", '_' of "ghp_", 'J' of "eyJ", 'I' of "AKIA",
// 'B' and 'b' of Bearer), and compares the prefixes around it. A prefix
// without one would be searched whole. It says true wherever mayHoldToken
// does.
func mayHoldTokenBytes(b []byte) bool {
	for _, a := range tokenAnchors {
		for at := 0; at < len(b); {
			k := bytes.IndexByte(b[at:], a.c)
			if k < 0 {
				break
			}
			k += at
			at = k + 1
			for _, p := range a.prefixes {
				if s := k - p.off; s >= 0 && len(b)-s >= len(p.prefix) && string(b[s:s+len(p.prefix)]) == p.prefix {
					return true
				}
			}
		}
	}
	for _, p := range tokenUnanchored {
		if bytes.Contains(b, p) {
			return true
		}
	}
	return false
}

// tokenAnchors are the anchor bytes of mayHoldTokenBytes, each with the
// prefixes it anchors and its offset in them; tokenUnanchored the prefixes
// that hold none of them.
var tokenAnchors, tokenUnanchored = func() (anchors []tokenAnchor, whole [][]byte) {
	for _, p := range tokenPrefixes() {
		i := -1
		for k := 0; k < len(anchorBytes) && i < 0; k++ {
			i = strings.IndexByte(p, anchorBytes[k])
		}
		if i < 0 {
			whole = append(whole, []byte(p))
			continue
		}
		k := slices.IndexFunc(anchors, func(a tokenAnchor) bool { return a.c == p[i] })
		if k < 0 {
			anchors = append(anchors, tokenAnchor{c: p[i]})
			k = len(anchors) - 1
		}
		anchors[k].prefixes = append(anchors[k].prefixes, anchoredPrefix{prefix: p, off: i})
	}
	return anchors, whole
}()

// anchorBytes are bytes that every token prefix holds and that are rare
// in prose and JSON, the rarer first.
const anchorBytes = "-_JIBb"

type tokenAnchor struct {
	c        byte
	prefixes []anchoredPrefix
}

type anchoredPrefix struct {
	prefix string
	off    int // of the anchor byte in prefix
}

// tokenPrefixes are what mayHoldToken looks for: every token shape's
// prefix, and the words findTokens takes for "Bearer".
func tokenPrefixes() []string {
	var ps []string
	for _, sh := range tokenShapes {
		ps = append(ps, sh.prefix)
	}
	return append(ps, bearerWords...)
}

// bearerWords are the spellings of "Bearer" whose credentials bearerTokens
// redacts.
var bearerWords = []string{"Bearer", "bearer", "BEARER"}

// tokenStarts lists, by first byte, the prefixes mayHoldToken looks for.
var tokenStarts = func() (t [256][]string) {
	for _, p := range tokenPrefixes() {
		t[p[0]] = append(t[p[0]], p)
	}
	return t
}()
