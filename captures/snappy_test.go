package captures

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
)

// TestSnappyLevels: the registered Snappy codec encodes with S2's default
// mode at snappyFast and its "better" mode at snappyBetter (and for Encode,
// which has no level), into the buffer it is given, and every output is
// standard Snappy that another decoder reads back.
func TestSnappyLevels(t *testing.T) {
	c, err := compress.GetCodec(compress.Codecs.Snappy)
	if err != nil {
		t.Fatal(err)
	}
	// Chat-like JSON: a fixed frame around words drawn from a vocabulary.
	r := rand.New(rand.NewPCG(9, 9))
	words := make([]string, 500)
	for i := range words {
		words[i] = fmt.Sprintf("w%x", r.Uint32()>>uint(r.IntN(24)))
	}
	var page []byte
	for i := range 400 {
		page = fmt.Appendf(page, `{"id":"chatcmpl-%d","model":"llama","choices":[{"message":{"role":"assistant","content":"`, r.Uint64())
		for range 150 {
			page = append(page, words[min(r.IntN(len(words)), r.IntN(len(words)))]...)
			page = append(page, ' ')
		}
		page = fmt.Appendf(page, `"}}],"usage":{"prompt_tokens":%d}}`, i)
	}
	cases := []struct {
		name string
		out  []byte
		want []byte
	}{
		{"fast", c.EncodeLevel(make([]byte, c.CompressBound(int64(len(page)))), page, snappyFast), s2.EncodeSnappy(nil, page)},
		{"better", c.EncodeLevel(make([]byte, c.CompressBound(int64(len(page)))), page, snappyBetter), s2.EncodeSnappyBetter(nil, page)},
		{"no level", c.Encode(nil, page), s2.EncodeSnappyBetter(nil, page)},
	}
	for _, tc := range cases {
		if !bytes.Equal(tc.out, tc.want) {
			t.Errorf("%s: %d bytes, not the S2 mode's %d", tc.name, len(tc.out), len(tc.want))
		}
		back, err := snappy.Decode(nil, tc.out)
		if err != nil || !bytes.Equal(back, page) {
			t.Errorf("%s: Snappy decoder: %v, equal %v", tc.name, err, bytes.Equal(back, page))
		}
	}
	if len(cases[0].out) <= len(cases[1].out) {
		t.Errorf("fast mode %d bytes, better %d: the modes are not distinct", len(cases[0].out), len(cases[1].out))
	}
}
