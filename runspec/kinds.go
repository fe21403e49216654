package runspec

import (
	"errors"
	"net"
	"regexp"
	"strings"
)

// Error kinds of a result row (captures.Result.ErrorKind); empty on
// success. Replay assigns the built-in ones; a profile's classify rules may
// give failures any other name, and the two below are the names analyze
// knows a database and a connection pool by.
const (
	ErrTimeout          = "timeout"           // no answer within the request timeout, or a transport timeout
	ErrConnection       = "connection"        // refused, reset or closed before a usable answer
	ErrHTTP4xx          = "http_4xx"          // a 4xx answer
	ErrHTTP5xx          = "http_5xx"          // a 5xx answer that is not a vector-store timeout or out of memory
	ErrOutOfMemory      = "out_of_memory"     // a 5xx or a stream error whose text says the server ran out of (GPU) memory
	ErrValidation       = "validation"        // a 2xx whose body is not the answer the protocol wants
	ErrVectorTimeout    = "vector_timeout"    // a vector store's timeout, passed through by the service
	ErrSandboxViolation = "sandbox_violation" // an mcp.sandbox_probe that returned content
	ErrAssertion        = "assertion"         // a response that fails one of the scenario's checks
	ErrCutOff           = "cut_off"           // still in flight when its stage or the run ended
	ErrDropped          = "dropped"           // open mode: arrival refused by max_in_flight, never sent
	ErrStatusMismatch   = "status_mismatch"   // an answer whose status class differs from the recorded exchange's

	// Kinds that classify rules conventionally assign (the profile that
	// `profile init` writes has the first); analyze counts both as signs
	// of an exhausted pool.
	ErrDBConnection = "db_connection" // the database refused a connection ("too many connections")
	ErrPoolTimeout  = "pool_timeout"  // waiting for a connection of the service's own pool timed out
)

// BuiltinKinds are the kinds replay assigns without a classify rule.
var BuiltinKinds = []string{ErrTimeout, ErrConnection, ErrHTTP4xx, ErrHTTP5xx, ErrOutOfMemory, ErrValidation, ErrVectorTimeout,
	ErrSandboxViolation, ErrAssertion, ErrCutOff, ErrDropped, ErrStatusMismatch}

// vectorTimeoutText is how Qdrant (and a RAG service passing its error
// through) words a timeout: "Timeout error: ...", "operation timed out".
var vectorTimeoutText = regexp.MustCompile(`(?i)timeout|timed out`)

// vectorStoreText tells a vector store's timeout from any other 5xx with
// "timeout" in it, such as a gateway's own 504.
var vectorStoreText = regexp.MustCompile(`(?i)qdrant|vector|collection|points`)

// databaseText marks a timeout as the database's, not the vector store's:
// a RAG service's SQLAlchemy pool ("QueuePool limit ... connection timed
// out") also answers a rag.* request with a 5xx that says "timed out".
var databaseText = regexp.MustCompile(`(?i)sqlalchemy|queuepool|database|postgres|psycopg|asyncpg|sqlstate|too many connections`)

// ClassifyStatus is the kind of an answer from its status and body alone:
// out_of_memory, vector_timeout, http_5xx, http_4xx, or "" for a status
// below 400 (whose body the protocol checks judge).
func ClassifyStatus(op string, status int, body []byte) string {
	switch {
	case status >= 500 && IsOutOfMemory(string(body)):
		return ErrOutOfMemory
	case isVectorTimeout(op, status, body):
		return ErrVectorTimeout
	case status >= 500:
		return ErrHTTP5xx
	case status >= 400:
		return ErrHTTP4xx
	}
	return ""
}

// isVectorTimeout: a 408, or a 5xx with timeout wording, from a RAG
// operation or with vector-store wording (Qdrant's errors pass through),
// unless the text names the database instead.
func isVectorTimeout(op string, status int, body []byte) bool {
	if status != 408 && status < 500 {
		return false
	}
	if databaseText.Match(body) && !vectorStoreText.Match(body) {
		return false
	}
	fromStore := strings.HasPrefix(op, "rag.") || vectorStoreText.Match(body)
	if status == 408 {
		return fromStore
	}
	return fromStore && vectorTimeoutText.Match(body)
}

// ClassifyTransport is the kind of a request that got no usable answer
// because the transport failed: timeout when the network said so, else
// connection. A request cut off by the end of its stage is the caller's to
// tell apart (ErrCutOff), since only it knows why its context ended.
func ClassifyTransport(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrConnection
}

// oomMarkers are the texts that out-of-memory failures carry: CUDA, PyTorch,
// vLLM, llama.cpp and the kernel's OOM killer.
var oomMarkers = []string{"out of memory", "outofmemory", "cuda oom", "oom-kill", "oom killed", "cudaerrormemoryallocation", "failed to allocate memory"}

// IsOutOfMemory reports whether a failure's text is an out-of-memory
// error: replay gives such failures the kind out_of_memory, so that GPU
// memory pressure is told from other server errors by kind.
func IsOutOfMemory(msg string) bool {
	if msg == "" {
		return false
	}
	m := strings.ToLower(msg)
	for _, k := range oomMarkers {
		if strings.Contains(m, k) {
			return true
		}
	}
	return false
}
