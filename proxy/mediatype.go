package proxy

import (
	"mime"
	"sync"
	"sync/atomic"
)

// mediaType is the media type of a Content-Type value as mime.ParseMediaType
// gives it (lower-case, without parameters; "" when malformed). A service
// sends few distinct values, and parsing one allocates a map of its
// parameters that nobody here reads, three times an exchange (framing, and
// each body's redaction): so results are kept, for up to mediaTypesMax
// values of up to 128 bytes (a client's odd values cannot fill memory).
func mediaType(v string) string {
	if v == "" {
		return ""
	}
	if ct, ok := mediaTypes.Load(v); ok {
		return ct.(string)
	}
	ct, _, _ := mime.ParseMediaType(v)
	if len(v) <= 128 && mediaTypesN.Add(1) <= mediaTypesMax {
		mediaTypes.Store(v, ct)
	}
	return ct
}

const mediaTypesMax = 1024

var (
	mediaTypes  sync.Map // Content-Type value → media type
	mediaTypesN atomic.Int64
)
