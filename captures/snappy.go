package captures

// The Snappy encoder the writer compresses bodies with. arrow-go's Snappy
// codec encodes through klauspost/compress's snappy package (S2's
// Snappy-compatible "better" mode) into a fresh output buffer for every
// page: the page writer grows its buffer to the codec's bound but hands it
// over empty, and the encoder only writes into a dst as long as the bound.
// For a body page that is a MiB allocated, zeroed and collected per page.
// This codec is the same encoder writing into the page writer's buffer.
//
// S2's default mode would be faster still (550 MB/s against 350 on one
// core here) but keeps 35 % of chat JSON where "better" keeps 32 %, which
// puts a capture over a quarter of the same traffic's HAR (TestSizeVsHAR).

import (
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
)

// reusingSnappy is arrow-go's Snappy codec encoding into the buffer it is
// given; decoding and streams are the original's.
type reusingSnappy struct{ compress.Codec }

func (c reusingSnappy) Encode(dst, src []byte) []byte { return c.EncodeLevel(dst, src, 0) }

func (reusingSnappy) EncodeLevel(dst, src []byte, _ int) []byte {
	if cap(dst) >= s2.MaxEncodedLen(len(src)) {
		dst = dst[:cap(dst)]
	}
	return s2.EncodeSnappyBetter(dst, src)
}

func (reusingSnappy) CompressBound(n int64) int64 { return int64(s2.MaxEncodedLen(int(n))) }

// RegisterCodec replaces the codec for the whole process, as arrow-go
// means it to: the output is byte for byte what the original writes.
func init() {
	if c, err := compress.GetCodec(compress.Codecs.Snappy); err == nil {
		compress.RegisterCodec(compress.Codecs.Snappy, reusingSnappy{c})
	}
}
