// Package captures owns loadtape's on-disk formats: the three row kinds that
// flow between the pipeline's stages (exchanges recorded by the proxy, results
// measured by the replayer, resource samples taken by the monitor), their
// Arrow/Parquet schemas, a rolling Parquet writer that bounds what a crash can
// lose, and a streaming reader that never loads a whole file.
//
// Every stage imports this package and this package imports none of them, so
// that data flows one way: proxy → captures → replay → analyze → reports.
// FORMAT.md beside this file names every column with its type and unit.
package captures

// SchemaVersion is written into every file's key-value metadata under
// MetaSchema. Readers refuse files with a version they do not know.
const SchemaVersion = 1

// File key-value metadata keys.
const (
	MetaSchema = "loadtape.schema" // decimal SchemaVersion
	MetaKind   = "loadtape.kind"   // one of the Kind values
)

// Kind names what rows a file holds.
type Kind string

const (
	KindExchanges Kind = "exchanges"
	KindResults   Kind = "results"
	KindSamples   Kind = "samples"
)

// Header is one HTTP header line. Headers are kept as an ordered list, not a
// map, because order and repetition (Set-Cookie, Vary) are part of what was
// on the wire.
type Header struct {
	Name  string
	Value string
}

// Exchange is one request/response pair seen by the recording proxy.
// Times are unix nanoseconds (StartNS) or nanoseconds from StartNS (the rest).
type Exchange struct {
	ID        string // unique within the capture
	StartNS   int64  // unix ns when the proxy received the request line
	Service   string // route name (gateway, rag, mcp) or the rule's service
	Operation string // stable name the replay mix refers to, e.g. chat.completions
	Session   string // session key: Mcp-Session-Id, rule header, auth hash or client address
	Seq       int64  // 0-based order of this exchange within its session

	Method      string
	Scheme      string
	Host        string
	Path        string
	Query       string // raw query, without '?'
	ReqHeaders  []Header
	RespHeaders []Header

	ReqBody       []byte // bytes as sent (still content-encoded), at most the body cap
	RespBody      []byte
	ReqSize       int64 // true size in bytes, whatever the cap kept
	RespSize      int64
	ReqTruncated  bool
	RespTruncated bool

	Status         int32 // HTTP status; 0 when no response came
	TTFBNS         int64 // response headers received, from StartNS
	DurationNS     int64 // last response byte, from StartNS
	Stream         bool  // response was streamed (SSE, chunked NDJSON, ...)
	ChunkOffsetsNS []int64

	Model            string // OpenAI request/response model
	PromptTokens     int64  // from usage when present, else 0
	CompletionTokens int64

	RPCMethod string // MCP JSON-RPC method
	RPCID     string // MCP JSON-RPC id as its JSON text (1, "abc")
	Tool      string // MCP tools/call tool name

	Error         string // upstream or client failure; empty when none
	ClientAborted bool
}

// Result is one request sent by the replayer: exactly one row per request,
// failures and requests cut off at a stage's end included.
type Result struct {
	Run        string
	Scenario   string
	Stage      int32 // 1-based index in the scenario's stages
	StageName  string
	StageUsers int32 // the stage's target users (closed, sessions) or rate (open)
	VU         int32 // virtual user, -1 for open-mode arrivals
	Iteration  int64
	Operation  string
	Service    string
	SourceID   string // Exchange.ID that was replayed

	IntendedNS     int64 // unix ns when it should have been sent
	StartNS        int64 // unix ns when it was sent; StartNS-IntendedNS is send lag
	TTFBNS         int64 // from StartNS; 0 when no response headers came
	TTFTNS         int64 // first token from StartNS; 0 when not a token stream
	DurationNS     int64 // last byte (or failure) from StartNS
	ChunkOffsetsNS []int64

	Status    int32
	ErrorKind string // empty on success; the kinds are runspec.ErrTimeout and the rest (runspec/kinds.go)
	Error     string

	BytesOut         int64
	BytesIn          int64
	PromptTokens     int64
	CompletionTokens int64
	ActiveUsers      int32 // virtual users (or requests in flight, open mode) when it started
}

// Sample is one resource measurement, long format: one metric per row.
type Sample struct {
	TNS    int64  // unix ns
	Source string // nvml, host, prom
	Device string // GPU index/UUID, disk or NIC name, scrape URL; may be empty
	Metric string // e.g. gpu_util, cpu_util, or a scraped Prometheus name
	Value  float64
}

// Row is any of the three row kinds.
type Row interface {
	Exchange | Result | Sample
}
