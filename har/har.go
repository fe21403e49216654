// Package har reads and writes HTTP Archives (HAR 1.2, the format browser
// network panels, Playwright, mitmproxy and Charles save) and turns them into
// loadtape captures and back: `loadtape import har` and `loadtape export
// har`. An imported entry goes through the recording proxy's own
// classification, session keys and redaction, so a capture made from a HAR
// replays like one made through the proxy.
package har

// Version is the HAR version this package writes.
const Version = "1.2"

// File is a HAR document: {"log": ...}.
type File struct {
	Log Log `json:"log"`
}

// Log is the archive. Fields whose names start with an underscore are
// custom fields, which HAR 1.2 allows and readers ignore.
type Log struct {
	Version string   `json:"version"`
	Creator Creator  `json:"creator"`
	Browser *Creator `json:"browser,omitempty"`
	Pages   []Page   `json:"pages,omitempty"`
	Entries []Entry  `json:"entries"`
	Comment string   `json:"comment,omitempty"`
}

// Creator names the program that wrote the archive (or the browser).
type Creator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Comment string `json:"comment,omitempty"`
}

// Page is one page load; entries point at it by Pageref.
type Page struct {
	StartedDateTime string      `json:"startedDateTime"`
	ID              string      `json:"id"`
	Title           string      `json:"title"`
	PageTimings     PageTimings `json:"pageTimings"`
	Comment         string      `json:"comment,omitempty"`
}

// PageTimings are a page's load milestones in ms (-1 or absent: unknown).
type PageTimings struct {
	OnContentLoad *float64 `json:"onContentLoad,omitempty"`
	OnLoad        *float64 `json:"onLoad,omitempty"`
}

// Entry is one request and its response.
type Entry struct {
	Pageref         string   `json:"pageref,omitempty"`
	StartedDateTime string   `json:"startedDateTime"` // ISO 8601
	Time            float64  `json:"time"`            // total ms: the sum of the timings that are not -1
	Request         Request  `json:"request"`
	Response        Response `json:"response"`
	Cache           Cache    `json:"cache"`
	Timings         Timings  `json:"timings"`
	ServerIPAddress string   `json:"serverIPAddress,omitempty"`
	Connection      string   `json:"connection,omitempty"`
	Comment         string   `json:"comment,omitempty"`

	// Error is why no response came; Chromium writes it under this name
	// (net::ERR_CONNECTION_REFUSED, say), and so does export.
	Error string `json:"_error,omitempty"`
	// loadtape's own fields, written by export so that a capture keeps what
	// HAR has no place for. Import reads none of them but ChunkOffsetsNS and
	// ClientAborted: classification and sessions are the proxy's.
	Service        string  `json:"_service,omitempty"`
	Operation      string  `json:"_operation,omitempty"`
	Session        string  `json:"_session,omitempty"`
	Seq            *int64  `json:"_seq,omitempty"`
	ChunkOffsetsNS []int64 `json:"_chunkOffsetsNs,omitempty"`
	ClientAborted  bool    `json:"_clientAborted,omitempty"`
}

// Request is the request of an entry.
type Request struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	HTTPVersion string      `json:"httpVersion"`
	Cookies     []Cookie    `json:"cookies"`
	Headers     []NameValue `json:"headers"`
	QueryString []NameValue `json:"queryString"`
	PostData    *PostData   `json:"postData,omitempty"`
	HeadersSize int64       `json:"headersSize"` // -1: unknown
	BodySize    int64       `json:"bodySize"`    // -1: unknown
	Comment     string      `json:"comment,omitempty"`
}

// Response is the response of an entry.
type Response struct {
	Status      int         `json:"status"` // 0: no response (Chromium)
	StatusText  string      `json:"statusText"`
	HTTPVersion string      `json:"httpVersion"`
	Cookies     []Cookie    `json:"cookies"`
	Headers     []NameValue `json:"headers"`
	Content     Content     `json:"content"`
	RedirectURL string      `json:"redirectURL"`
	HeadersSize int64       `json:"headersSize"`
	BodySize    int64       `json:"bodySize"`
	Comment     string      `json:"comment,omitempty"`
	// Error is Chromium's other place for why no response came.
	Error string `json:"_error,omitempty"`
}

// Content is a response body, decoded (no Content-Encoding), in Text, or
// base64 in Text when Encoding is "base64". Size is the decoded length; a
// Text shorter than Size was cut by the tool that wrote the archive.
type Content struct {
	Size        int64  `json:"size"`
	Compression *int64 `json:"compression,omitempty"`
	MimeType    string `json:"mimeType"`
	Text        string `json:"text,omitempty"`
	Encoding    string `json:"encoding,omitempty"`
	Comment     string `json:"comment,omitempty"`
	// File names the file beside the archive that holds the body when
	// Playwright records with content: "attach" (its .zip archives).
	File string `json:"_file,omitempty"`
}

// PostData is a request body: Text, or form Params.
type PostData struct {
	MimeType string  `json:"mimeType"`
	Params   []Param `json:"params,omitempty"`
	Text     string  `json:"text"`
	Comment  string  `json:"comment,omitempty"`
	// Encoding is "base64" when export wrote a body that is not text;
	// HAR has no such field for requests, so it is a custom one.
	Encoding string `json:"_encoding,omitempty"`
}

// Param is one posted form field.
type Param struct {
	Name        string `json:"name"`
	Value       string `json:"value,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// NameValue is a header or query parameter.
type NameValue struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Comment string `json:"comment,omitempty"`
}

// Cookie is a request or response cookie.
type Cookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Path     string `json:"path,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Expires  string `json:"expires,omitempty"`
	HTTPOnly *bool  `json:"httpOnly,omitempty"`
	Secure   *bool  `json:"secure,omitempty"`
}

// Cache describes cache use; loadtape writes it empty.
type Cache struct {
	Comment string `json:"comment,omitempty"`
}

// Timings are the phases of an entry in ms; -1 (or absent, for the
// optional ones) means the phase does not apply.
type Timings struct {
	Blocked *float64 `json:"blocked,omitempty"`
	DNS     *float64 `json:"dns,omitempty"`
	Connect *float64 `json:"connect,omitempty"`
	Send    float64  `json:"send"`
	Wait    float64  `json:"wait"` // waiting for the first response byte
	Receive float64  `json:"receive"`
	SSL     *float64 `json:"ssl,omitempty"`
	Comment string   `json:"comment,omitempty"`
}
