package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/loadtape/loadtape/internal/yamlx"
)

// Rules is the --rules file: matchers that name a service, an operation or a
// session header where the built-in classification does not, and extra
// header and query-parameter names to redact.
//
//	session_header: X-Session-Id        # used for every exchange no rule names one for
//	redact:
//	  headers: [X-Internal-Token]
//	  query: [api_key, token]
//	rules:
//	  - match: {method: POST, path: /v1/chat/*, host: api.example.com,
//	            header: {X-Tenant: acme}, json: {model: "gpt-4*"}}
//	    service: gateway
//	    operation: chat.premium
//	    session_header: X-User
//
// Every matcher given must match; values are path.Match globs ("*" stops at
// '/' in paths). The first rule that matches decides; empty fields leave the
// built-in choice.
type Rules struct {
	SessionHeader string `yaml:"session_header"`
	Redact        struct {
		Headers []string `yaml:"headers"`
		Query   []string `yaml:"query"`
	} `yaml:"redact"`
	Rules []Rule `yaml:"rules"`
}

// Rule is one matcher and what it sets.
type Rule struct {
	Match         Match  `yaml:"match"`
	Service       string `yaml:"service"`
	Operation     string `yaml:"operation"`
	SessionHeader string `yaml:"session_header"`
}

// Match holds the conditions of a Rule. JSON keys are dotted paths into the
// request body (params.name, messages.0.role).
type Match struct {
	Method string            `yaml:"method"`
	Path   string            `yaml:"path"`
	Host   string            `yaml:"host"`
	Header map[string]string `yaml:"header"`
	JSON   map[string]string `yaml:"json"`
}

// LoadRules reads and checks a rules file.
func LoadRules(file string) (*Rules, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return ParseRules(file, data)
}

// ParseRules parses rules YAML; name is used in error messages, which
// read `NAME:LINE:COL: what was expected`.
func ParseRules(name string, data []byte) (*Rules, error) {
	var rs Rules
	if err := yamlx.Decode(name, data, &rs); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	doc := yamlx.Parse(name, data)
	for i, r := range rs.Rules {
		m := r.Match
		at := []any{"rules", i}
		if m.Method == "" && m.Path == "" && m.Host == "" && len(m.Header) == 0 && len(m.JSON) == 0 {
			return nil, fmt.Errorf("rules: %w", doc.Errorf(append(at, "match"), "rule %d: match needs at least one of method, path, host, header, json", i+1))
		}
		if r.Service == "" && r.Operation == "" && r.SessionHeader == "" {
			return nil, fmt.Errorf("rules: %w", doc.Errorf(at, "rule %d: sets nothing; want service, operation or session_header", i+1))
		}
		for _, g := range append([]string{m.Method, m.Path, m.Host}, values(m.Header, m.JSON)...) {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("rules: %w", doc.Errorf(append(at, "match"), "rule %d: bad pattern %q: %v", i+1, g, err))
			}
		}
	}
	return &rs, nil
}

func values(ms ...map[string]string) []string {
	var out []string
	for _, m := range ms {
		for _, v := range m {
			out = append(out, v)
		}
	}
	return out
}

// match returns the first rule matching the request, or nil. body is the
// captured request body (possibly truncated; JSON matchers then fail).
func (rs *Rules) match(method, host, p string, h http.Header, body []byte) *Rule {
	if rs == nil {
		return nil
	}
	var doc any
	parsed := false
	for i := range rs.Rules {
		r := &rs.Rules[i]
		m := &r.Match
		if !glob(m.Method, method) || !glob(m.Path, p) || !glob(m.Host, host) {
			continue
		}
		ok := true
		for k, v := range m.Header {
			if !glob(v, h.Get(k)) || (v == "" && len(h.Values(k)) == 0) {
				ok = false
				break
			}
		}
		if ok && len(m.JSON) > 0 {
			if !parsed {
				parsed = true
				if json.Unmarshal(body, &doc) != nil {
					doc = nil
				}
			}
			for k, v := range m.JSON {
				s, found := jsonField(doc, k)
				if !found || !glob(v, s) {
					ok = false
					break
				}
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

// glob matches s against pattern; an empty pattern matches anything.
func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	if strings.HasSuffix(pattern, "/**") {
		return strings.HasPrefix(s, strings.TrimSuffix(pattern, "**"))
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// jsonField walks a dotted path into a decoded JSON document and renders the
// value it finds as text: strings as themselves, the rest as JSON.
func jsonField(doc any, dotted string) (string, bool) {
	cur := doc
	for _, k := range strings.Split(dotted, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[k]
			if !ok {
				return "", false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(v) {
				return "", false
			}
			cur = v[i]
		default:
			return "", false
		}
	}
	if s, ok := cur.(string); ok {
		return s, true
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return "", false
	}
	return string(bytes.TrimSpace(b)), true
}
