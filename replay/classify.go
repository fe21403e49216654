package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/loadtape/loadtape/captures"
	"github.com/loadtape/loadtape/runspec"
)

// refusalText is how a tool server words a refused path when it answers
// with a normal result instead of isError.
var refusalText = regexp.MustCompile(`(?i)denied|not allowed|outside|forbidden|permission|invalid path|access`)

// judge sets r.ErrorKind and r.Error from a response that arrived (status,
// body, protocol), then applies the scenario's checks and the profile's
// classify rules. recorded is the status of the exchange replayed, 0 when
// the request has none to compare with (a minimal initialize, the
// initialized notification, a sandbox probe). probe marks an
// mcp.sandbox_probe request.
//
// A response in the recorded status class is as expected, a recorded
// failure failing again included (include_failed); any other class is a
// status_mismatch, except a vector store's timeout and an out-of-memory
// error, which keep their own kinds. Without a recording, 4xx and 5xx are http_4xx and http_5xx.
func judge(r *captures.Result, resp *response, recorded int32, checks []Check, rules []ClassifyRule, probe bool) {
	if resp != nil && r.ErrorKind == "" {
		sameClass := recorded > 0 && int32(resp.status)/100 == recorded/100
		kind := runspec.ClassifyStatus(r.Operation, resp.status, resp.body)
		switch {
		case probe:
			judgeProbe(r, resp)
		case sameClass && recorded >= 400:
			// Failed when recorded and kept with include_failed: failing
			// the same way is what the recording says to expect.
		case kind == runspec.ErrVectorTimeout || kind == runspec.ErrOutOfMemory:
			r.ErrorKind, r.Error = kind, httpError(resp.status, resp.body)
		case recorded > 0 && !sameClass:
			r.ErrorKind = runspec.ErrStatusMismatch
			r.Error = fmt.Sprintf("HTTP %d where the recording had %d: %s", resp.status, recorded, prefix(bytes.TrimSpace(resp.body), errorPrefixLen))
		case kind != "":
			r.ErrorKind, r.Error = kind, httpError(resp.status, resp.body)
		case resp.badJSON != "":
			r.ErrorKind, r.Error = runspec.ErrValidation, resp.badJSON
		case resp.sseError != "" && runspec.IsOutOfMemory(resp.sseError):
			r.ErrorKind, r.Error = runspec.ErrOutOfMemory, resp.sseError
		case resp.sseError != "":
			r.ErrorKind, r.Error = runspec.ErrValidation, resp.sseError
		case resp.wantRPC && resp.status/100 == 2 && resp.rpc == nil:
			r.ErrorKind, r.Error = runspec.ErrValidation, "no JSON-RPC answer to the request: "+prefix(resp.body, errorPrefixLen)
		default:
			if msg := rpcError(resp.rpc); msg != "" {
				r.ErrorKind, r.Error = runspec.ErrValidation, msg
			}
		}
		if r.ErrorKind == "" {
			for i := range checks {
				c := &checks[i]
				if c.Operation != "" && c.Operation != r.Operation {
					continue
				}
				if msg := c.fails(resp); msg != "" {
					r.ErrorKind, r.Error = runspec.ErrAssertion, msg
					break
				}
			}
		}
	}
	switch r.ErrorKind {
	case "", runspec.ErrCutOff, runspec.ErrDropped, runspec.ErrSandboxViolation:
		return
	}
	for i := range rules {
		if rules[i].matches(resp, r.Error) {
			r.ErrorKind = rules[i].Kind
			return
		}
	}
}

// rpcError returns the JSON-RPC error of an MCP answer, "" when none.
func rpcError(m json.RawMessage) string {
	if m == nil {
		return ""
	}
	var v struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(m, &v) != nil || v.Error == nil {
		return ""
	}
	return fmt.Sprintf("JSON-RPC error %d: %s", v.Error.Code, v.Error.Message)
}

// judgeProbe: a traversal attempt that the server refuses (an HTTP error, a
// JSON-RPC error, a result with isError, or refusal wording) is a success
// of the probe; one that returns content is a sandbox_violation.
func judgeProbe(r *captures.Result, resp *response) {
	if resp.status >= 300 || resp.rpc == nil || rpcError(resp.rpc) != "" {
		return
	}
	var v struct {
		Result struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	if json.Unmarshal(resp.rpc, &v) != nil || v.Result.IsError {
		return
	}
	for _, c := range v.Result.Content {
		if refusalText.MatchString(c.Text) {
			return
		}
	}
	r.ErrorKind = runspec.ErrSandboxViolation
	r.Error = "sandbox probe succeeded: " + prefix(resp.rpc, errorPrefixLen)
}

// fails returns why resp fails the check, "" when it passes.
func (c *Check) fails(resp *response) string {
	if c.Status != 0 && resp.status != c.Status {
		return fmt.Sprintf("check: status %d, want %d", resp.status, c.Status)
	}
	if c.Header != nil && !c.Header.re.MatchString(resp.header.Get(c.Header.Name)) {
		return fmt.Sprintf("check: header %s %q does not match %q", c.Header.Name, resp.header.Get(c.Header.Name), c.Header.Matches)
	}
	if c.Body != "" && !c.bodyRE.Match(resp.body) {
		return fmt.Sprintf("check: body does not match %q", c.Body)
	}
	if c.JSON != nil {
		doc := []byte(resp.rpc)
		if doc == nil {
			doc = resp.body
		}
		v, ok := jsonPath(doc, c.JSON.Path)
		if c.JSON.Exists != nil && ok != *c.JSON.Exists {
			return fmt.Sprintf("check: json %s exists=%v, want %v", c.JSON.Path, ok, *c.JSON.Exists)
		}
		if c.JSON.Exists == nil || c.JSON.Equals != nil {
			// An absent field is false when false is wanted: encoders with
			// omitempty (the MCP Go SDK's isError, say) leave false out.
			if !ok && c.JSON.Equals == false {
				return ""
			}
			if !ok {
				return fmt.Sprintf("check: json %s missing", c.JSON.Path)
			}
			if !jsonEqual(v, c.JSON.Equals) {
				return fmt.Sprintf("check: json %s = %v, want %v", c.JSON.Path, v, c.JSON.Equals)
			}
		}
	}
	return ""
}

// jsonPath walks a dotted path (result.content.0.text) through a JSON doc.
func jsonPath(doc []byte, path string) (any, bool) {
	var v any
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil, false
	}
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// jsonEqual compares a decoded JSON value with a YAML one, numbers by value.
func jsonEqual(got, want any) bool {
	if n, ok := got.(json.Number); ok {
		f, err := n.Float64()
		if err != nil {
			return false
		}
		switch w := want.(type) {
		case int:
			return f == float64(w)
		case int64:
			return f == float64(w)
		case uint64:
			return f == float64(w)
		case float64:
			return f == w
		}
		return false
	}
	if want == nil {
		return got == nil
	}
	return reflect.DeepEqual(got, want) || fmt.Sprint(got) == fmt.Sprint(want)
}

// matches applies a classify rule to a failure; resp is nil when no
// response came (then only a body rule can match, against the error text).
func (cr *ClassifyRule) matches(resp *response, errText string) bool {
	if cr.Status != 0 && (resp == nil || resp.status != cr.Status) {
		return false
	}
	if cr.Header != nil && (resp == nil || !cr.Header.re.MatchString(resp.header.Get(cr.Header.Name))) {
		return false
	}
	if cr.bodyRE != nil {
		hit := cr.bodyRE.MatchString(errText)
		if !hit && resp != nil {
			hit = cr.bodyRE.Match(resp.body)
		}
		if !hit {
			return false
		}
	}
	return true
}
