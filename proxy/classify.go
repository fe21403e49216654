package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
)

// rpcInfo is what the proxy reads from an MCP JSON-RPC request body.
type rpcInfo struct {
	Method string
	ID     string // the id as JSON text: 1, "abc"; empty for notifications
	Tool   string // params.name of tools/call
}

// parseRPC reads a JSON-RPC request (or the first of a batch). ok is false
// when the body is not JSON-RPC.
func parseRPC(body []byte) (rpcInfo, bool) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') || !bytes.Contains(b, []byte(`"jsonrpc"`)) {
		return rpcInfo{}, false
	}
	type msg struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		ID      json.RawMessage `json:"id"`
		Params  struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	var m msg
	if b[0] == '[' {
		var batch []msg
		if json.Unmarshal(b, &batch) != nil || len(batch) == 0 {
			return rpcInfo{}, false
		}
		m = batch[0]
	} else if json.Unmarshal(b, &m) != nil {
		return rpcInfo{}, false
	}
	if m.JSONRPC != "2.0" || m.Method == "" {
		return rpcInfo{}, false
	}
	info := rpcInfo{Method: m.Method}
	if len(m.ID) > 0 && string(m.ID) != "null" {
		info.ID = string(m.ID)
	}
	if m.Method == "tools/call" {
		info.Tool = m.Params.Name
	}
	return info, true
}

// rpcOperation names an MCP exchange by its JSON-RPC method: mcp.initialize,
// mcp.tools.list, mcp.tools.call/<tool> (one operation per tool, since tools
// differ in cost), else mcp.<method>.
func rpcOperation(r rpcInfo) string {
	switch r.Method {
	case "initialize":
		return "mcp.initialize"
	case "tools/list":
		return "mcp.tools.list"
	case "tools/call":
		return "mcp.tools.call/" + r.Tool
	}
	return "mcp." + r.Method
}

// builtinOperation names an exchange that is not MCP: the OpenAI and RAG
// operations by path, else "<METHOD> <path template>".
func builtinOperation(method, p string) string {
	trimmed := strings.TrimSuffix(p, "/")
	switch {
	case method == "POST" && strings.HasSuffix(trimmed, "/chat/completions"):
		return "chat.completions"
	case method == "GET" && (trimmed == "/v1/models" || trimmed == "/models"):
		return "models.list"
	}
	last := trimmed[strings.LastIndexByte(trimmed, '/')+1:]
	switch last {
	case "health", "healthz", "livez", "readyz", "ready":
		return "health"
	case "query":
		if method == "POST" || method == "GET" {
			return "rag.query"
		}
	case "index":
		if method == "POST" || method == "PUT" {
			return "rag.index"
		}
	}
	return method + " " + pathTemplate(p)
}

// pathTemplate replaces path segments that look like identifiers (numbers,
// UUIDs, long hex or long tokens with digits) with {id}, so that
// /v1/files/file-8f3a2c1d9e and /v1/files/file-77aa01b2c4 share an operation.
func pathTemplate(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if looksLikeID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	digits, hex, other := 0, 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
		case c == '-' || c == '_':
		case c == '.':
			return false // file names, versions, model names like qwen2.5-14b
		default:
			other++
		}
	}
	switch {
	case digits == len(s): // 42
		return true
	case other == 0 && digits > 0 && len(s) >= 8: // UUIDs, hashes
		return true
	case digits >= 2 && len(s) >= 12: // chatcmpl-9xYz..., file-abc123...
		return true
	}
	return false
}

// openAIBody is the subset of an OpenAI request, response or stream chunk
// the proxy reads.
type openAIBody struct {
	Model string `json:"model"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		InputTokens      int64 `json:"input_tokens"`
		OutputTokens     int64 `json:"output_tokens"`
	} `json:"usage"`
}
