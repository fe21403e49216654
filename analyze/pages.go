package analyze

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
)

// A column chunk written the way loadtape writes result files (PLAIN
// numbers, dictionary-encoded strings, RLE levels) is decoded here from
// its pages, which arrow-go's page reader only decompresses: a number
// column is a copy of the page's bytes, a string column's dictionary is
// made Go strings once and its rows are indices into it, and the chunk
// offsets' levels are read run by run. Arrow-go's column readers do the
// same through several layers per value (a decoder per encoding, levels
// decoded to int16 and checked, a []byte per string); for 10 M rows that
// was about a sixth of the analysis. A chunk with any other encoding is
// left to them (rawEncodings).

// rawEncodings reports whether every encoding a column chunk's metadata
// lists is one pageCol decodes for a column of kind k.
func rawEncodings(encs []parquet.Encoding, k colKind) bool {
	for _, e := range encs {
		switch e {
		case parquet.Encodings.Plain, parquet.Encodings.RLE:
		case parquet.Encodings.RLEDict, parquet.Encodings.PlainDict:
			if k != kindStr {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// littleEndian is whether this machine stores an int64 as PLAIN does, so
// that a page's values can be copied as they are.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

var errPageEnd = errors.New("a page ends inside its values")

// pageCol reads one column chunk page by page.
type pageCol struct {
	pr   file.PageReader
	kind colKind
	list bool // a list: each page starts with repetition and definition levels

	left int    // values (a list's: levels) of the current page not yet read
	vals []byte // the current page's PLAIN values not yet read
	// A dictionary-encoded page's values are indices into dict.
	dictIdx bool
	idx     hybrid
	dict    []string
	idxBuf  []uint32
	// A list page's levels.
	reps, defs hybrid
	lvlBuf     []uint32
	recent     [4]string // PLAIN strings: the last few made (strCol's habit)
	next       int
}

func newPageCol(pr file.PageReader, kind colKind) *pageCol {
	return &pageCol{pr: pr, kind: kind, list: kind == kindList}
}

func (c *pageCol) Close() error { return c.pr.Close() }

// nextPage moves to the next data page with values; false at the chunk's
// end. A page's bytes are valid until the next call.
func (c *pageCol) nextPage(in *interner) (bool, error) {
	for c.pr.Next() {
		switch p := c.pr.Page().(type) {
		case *file.DictionaryPage:
			if c.kind != kindStr {
				return false, errors.New("a dictionary page in a column of numbers")
			}
			if err := c.readDict(p.Data(), int(p.NumValues()), in); err != nil {
				return false, err
			}
		case *file.DataPageV1:
			data := p.Data()
			n := int(p.NumValues())
			if c.list {
				if p.RepetitionLevelEncoding() != parquet.Encodings.RLE || p.DefinitionLevelEncoding() != parquet.Encodings.RLE {
					return false, errors.New("levels not RLE-encoded")
				}
				var err error
				if data, err = c.reps.initPrefixed(data, 1); err != nil {
					return false, err
				}
				if data, err = c.defs.initPrefixed(data, 1); err != nil {
					return false, err
				}
			}
			if err := c.startValues(parquet.Encoding(p.Encoding()), data, n); err != nil {
				return false, err
			}
		case *file.DataPageV2:
			data := p.Data()
			n := int(p.NumValues())
			rl, dl := int(p.RepetitionLevelByteLen()), int(p.DefinitionLevelByteLen())
			if rl < 0 || dl < 0 || rl+dl > len(data) {
				return false, errPageEnd
			}
			if c.list {
				c.reps.init(data[:rl], 1)
				c.defs.init(data[rl:rl+dl], 1)
			} else if p.NumNulls() != 0 {
				return false, errors.New("nulls in a required column")
			}
			if err := c.startValues(parquet.Encoding(p.Encoding()), data[rl+dl:], n); err != nil {
				return false, err
			}
		default:
			continue // an index page: nothing to read
		}
		if c.left > 0 {
			return true, nil
		}
	}
	return false, c.pr.Err()
}

// readDict makes a dictionary page's PLAIN byte arrays Go strings.
func (c *pageCol) readDict(data []byte, n int, in *interner) error {
	c.dict = c.dict[:0]
	for range n {
		if len(data) < 4 {
			return errPageEnd
		}
		l := binary.LittleEndian.Uint32(data)
		if uint64(l) > uint64(len(data)-4) {
			return errPageEnd
		}
		s := ""
		if l > 0 {
			s = in.of(data[4 : 4+l])
		}
		c.dict = append(c.dict, s)
		data = data[4+l:]
	}
	return nil
}

// startValues sets up the values of a data page of n values (a list's:
// levels).
func (c *pageCol) startValues(enc parquet.Encoding, data []byte, n int) error {
	c.left = n
	c.dictIdx = false
	switch enc {
	case parquet.Encodings.Plain:
		c.vals = data
		return nil
	case parquet.Encodings.RLEDict, parquet.Encodings.PlainDict:
		if c.kind != kindStr || len(data) < 1 || data[0] > 32 {
			return fmt.Errorf("dictionary indices of %d bytes in a column it does not fit", len(data))
		}
		c.dictIdx = true
		c.idx.init(data[1:], int(data[0]))
		return nil
	}
	return fmt.Errorf("values in encoding %v", enc)
}

// ensure makes sure the current page has values, moving to the next when
// it has none; false at the chunk's end.
func (c *pageCol) ensure(in *interner) (bool, error) {
	if c.left > 0 {
		return true, nil
	}
	return c.nextPage(in)
}

// readFixed reads up to len(out) values of a required INT64 or INT32
// column.
func readFixed[T int64 | int32](c *pageCol, out []T) (int, error) {
	size := int(unsafe.Sizeof(T(0)))
	done := 0
	for done < len(out) {
		if ok, err := c.ensure(nil); !ok || err != nil {
			return done, err
		}
		k := min(len(out)-done, c.left)
		if len(c.vals) < size*k {
			return done, errPageEnd
		}
		dst := out[done : done+k]
		if littleEndian {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), size*k), c.vals)
		} else {
			for i := range dst {
				if size == 8 {
					dst[i] = T(binary.LittleEndian.Uint64(c.vals[8*i:]))
				} else {
					dst[i] = T(binary.LittleEndian.Uint32(c.vals[4*i:]))
				}
			}
		}
		c.vals = c.vals[size*k:]
		c.left -= k
		done += k
	}
	return done, nil
}

// viewFixed is the next n values of a required INT64 or INT32 column as
// the page's own bytes, without a copy; nil (and nothing read) when the
// current page does not hold all n or they are not where such a value may
// be read from (aligned, in this machine's byte order). The slice is valid
// until the column's next page is read.
func viewFixed[T int64 | int32](c *pageCol, n int) ([]T, error) {
	size := int(unsafe.Sizeof(T(0)))
	if ok, err := c.ensure(nil); !ok || err != nil || !littleEndian || c.left < n || len(c.vals) < size*n {
		return nil, err
	}
	p := unsafe.Pointer(unsafe.SliceData(c.vals))
	if uintptr(p)%unsafe.Alignof(T(0)) != 0 {
		return nil, nil
	}
	v := unsafe.Slice((*T)(p), n)
	c.vals = c.vals[size*n:]
	c.left -= n
	return v, nil
}

// readStr reads up to len(out) values of a required string column.
func (c *pageCol) readStr(out []string, in *interner) (int, error) {
	done := 0
	for done < len(out) {
		if ok, err := c.ensure(in); !ok || err != nil {
			return done, err
		}
		k := min(len(out)-done, c.left)
		dst := out[done : done+k]
		if c.dictIdx {
			if cap(c.idxBuf) < k {
				c.idxBuf = make([]uint32, max(k, rowSlice))
			}
			idx := c.idxBuf[:k]
			if err := c.idx.read(idx); err != nil {
				return done, err
			}
			dict := c.dict
			for i, j := range idx {
				if int(j) >= len(dict) {
					return done, fmt.Errorf("dictionary index %d of a dictionary of %d", j, len(dict))
				}
				dst[i] = dict[j]
			}
		} else if err := c.plainStrings(dst, in); err != nil {
			return done, err
		}
		c.left -= k
		done += k
	}
	return done, nil
}

// plainStrings reads len(dst) PLAIN byte arrays of the page.
func (c *pageCol) plainStrings(dst []string, in *interner) error {
	data := c.vals
vals:
	for i := range dst {
		if len(data) < 4 {
			return errPageEnd
		}
		l := binary.LittleEndian.Uint32(data)
		if uint64(l) > uint64(len(data)-4) {
			return errPageEnd
		}
		v := data[4 : 4+l]
		data = data[4+l:]
		if l == 0 {
			dst[i] = ""
			continue
		}
		for _, s := range c.recent {
			if s == string(v) {
				dst[i] = s
				continue vals
			}
		}
		s := in.of(v)
		c.recent[c.next] = s
		c.next = (c.next + 1) % len(c.recent)
		dst[i] = s
	}
	c.vals = data
	return nil
}

// ReadBatch reads up to n levels of a list of INT64 (chunk_offsets_ns)
// into reps and defs and the values they hold into vals: as arrow-go's
// Int64ColumnChunkReader.ReadBatch does, for listCol.
func (c *pageCol) ReadBatch(n int64, vals []int64, defs, reps []int16) (int64, int, error) {
	var levels, nv int
	for levels < int(n) {
		if ok, err := c.ensure(nil); !ok || err != nil {
			return int64(levels), nv, err
		}
		k := min(int(n)-levels, c.left)
		if cap(c.lvlBuf) < k {
			c.lvlBuf = make([]uint32, max(k, listChunk))
		}
		buf := c.lvlBuf[:k]
		if err := c.reps.read(buf); err != nil {
			return int64(levels), nv, err
		}
		var ror uint32
		for i, v := range buf {
			reps[levels+i] = int16(v)
			ror |= v
		}
		if ror > 1 {
			return int64(levels), nv, errors.New("a repetition level above the list's 1")
		}
		if err := c.defs.read(buf); err != nil {
			return int64(levels), nv, err
		}
		m := 0
		var or uint32
		for i, v := range buf {
			defs[levels+i] = int16(v)
			m += int(v & 1)
			or |= v
		}
		if or > 1 {
			return int64(levels), nv, errors.New("a definition level above the list's 1")
		}
		if len(c.vals) < 8*m || nv+m > len(vals) {
			return int64(levels), nv, errPageEnd
		}
		dst := vals[nv : nv+m]
		if littleEndian {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 8*m), c.vals)
		} else {
			for i := range dst {
				dst[i] = int64(binary.LittleEndian.Uint64(c.vals[8*i:]))
			}
		}
		c.vals = c.vals[8*m:]
		c.left -= k
		levels += k
		nv += m
	}
	return int64(levels), nv, nil
}

// hybrid decodes Parquet's RLE / bit-packing hybrid encoding of values of
// bw bits: runs, each a ULEB128 header whose low bit says which kind;
// an RLE run repeats one value (header>>1 times, the value in ⌈bw/8⌉
// bytes), a bit-packed run holds header>>1 groups of 8 values packed from
// the lowest bit.
type hybrid struct {
	data    []byte
	bw      uint
	rleLeft int    // values left of the current RLE run
	rleVal  uint32 // its value
	bpLeft  int    // values left of the current bit-packed run
	bp      []byte // the run's bytes
	bit     uint   // the bit of bp where the next value starts
}

func (h *hybrid) init(data []byte, bw int) {
	*h = hybrid{data: data, bw: uint(bw)}
}

// initPrefixed inits h with data that starts with its length (4 bytes,
// as V1 pages store levels) and returns what follows it.
func (h *hybrid) initPrefixed(data []byte, bw int) ([]byte, error) {
	if len(data) < 4 {
		return nil, errPageEnd
	}
	l := binary.LittleEndian.Uint32(data)
	if uint64(l) > uint64(len(data)-4) {
		return nil, errPageEnd
	}
	h.init(data[4:4+l], bw)
	return data[4+l:], nil
}

// run starts the next run.
func (h *hybrid) run() error {
	hdr, n := binary.Uvarint(h.data)
	if n <= 0 || hdr>>1 > 1<<31 {
		return errors.New("a run header of the RLE/bit-packed levels or indices is damaged")
	}
	h.data = h.data[n:]
	count := int(hdr >> 1)
	if hdr&1 == 0 {
		w := int(h.bw+7) / 8
		if len(h.data) < w {
			return errPageEnd
		}
		var v uint32
		for i := range w {
			v |= uint32(h.data[i]) << (8 * i)
		}
		h.rleVal, h.rleLeft = v, count
		h.data = h.data[w:]
		return nil
	}
	// count groups of 8 values of bw bits: count × bw bytes. A writer may
	// end the last run early: the values it holds are there, the padding
	// after them is not.
	nb, vals := count*int(h.bw), count*8
	if nb > len(h.data) {
		nb = len(h.data)
		vals = nb * 8 / int(h.bw) // bw > 0: nb was
	}
	h.bp, h.bit, h.bpLeft = h.data[:nb], 0, vals
	h.data = h.data[nb:]
	return nil
}

// read fills out with the next len(out) values.
func (h *hybrid) read(out []uint32) error {
	for len(out) > 0 {
		switch {
		case h.rleLeft > 0:
			k := min(len(out), h.rleLeft)
			v := h.rleVal
			for i := range out[:k] {
				out[i] = v
			}
			h.rleLeft -= k
			out = out[k:]
		case h.bpLeft > 0:
			k := min(len(out), h.bpLeft)
			h.unpack(out[:k])
			h.bpLeft -= k
			out = out[k:]
		default:
			if len(h.data) == 0 {
				return errPageEnd
			}
			if err := h.run(); err != nil {
				return err
			}
		}
	}
	return nil
}

// unpack reads len(out) bit-packed values from bp at h.bit.
func (h *hybrid) unpack(out []uint32) {
	bw := h.bw
	if bw == 0 {
		clear(out)
		return
	}
	mask := uint64(1)<<bw - 1
	bp, bit := h.bp, h.bit
	i := 0
	// Eight bytes at a time while they are there (bw ≤ 32, so a value and
	// its offset in its first byte fit in 64 bits).
	for ; i < len(out) && int(bit/8)+8 <= len(bp); i++ {
		w := binary.LittleEndian.Uint64(bp[bit/8:])
		out[i] = uint32(w >> (bit % 8) & mask)
		bit += bw
	}
	for ; i < len(out); i++ {
		var w uint64
		for j, b := range bp[bit/8:] {
			w |= uint64(b) << (8 * j)
		}
		out[i] = uint32(w >> (bit % 8) & mask)
		bit += bw
	}
	h.bit = bit
}

// rawI64 and rawI32 give a pageCol the column readers' ReadBatch of
// required numbers, for groupCols.
type rawI64 struct{ *pageCol }

func (r rawI64) ReadBatch(n int64, out []int64, _, _ []int16) (int64, int, error) {
	k, err := readFixed(r.pageCol, out[:n])
	return int64(k), k, err
}

type rawI32 struct{ *pageCol }

func (r rawI32) ReadBatch(n int64, out []int32, _, _ []int16) (int64, int, error) {
	k, err := readFixed(r.pageCol, out[:n])
	return int64(k), k, err
}

// rawStr gives a pageCol strCol's read.
type rawStr struct{ *pageCol }

func (r rawStr) read(out []string, in *interner) (int, error) { return r.readStr(out, in) }
