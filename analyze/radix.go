package analyze

import (
	"math/bits"
	"slices"
	"unsafe"
)

// sortInt64 sorts non-negative values (latencies in ns) with an LSD radix
// sort on digits of up to 11 bits over the bits the values differ in
// (digits): about five times faster than a comparison sort on millions of
// latencies, which is most of the cost of exact percentiles. Small or
// negative inputs fall back to slices.Sort.
func sortInt64(v []int64) {
	s := sortedOf([][]int64{v})
	if len(s) > 0 && &s[0] != &v[0] {
		copy(v, s)
	}
}

// sortPositiveFloats sorts v, whose values are all positive (rates), by
// radix-sorting their bits: for positive float64s the order of the bit
// patterns as integers is the order of the values. A negative value or a
// NaN falls back to slices.Sort.
func sortPositiveFloats(v []float64) {
	for _, x := range v {
		if !(x > 0) {
			slices.Sort(v)
			return
		}
	}
	sortInt64(unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(v))), len(v)))
}

// digits are the shifts of the digits sortedOfBuf distributes by, and
// their width, for values whose bits OR to or and AND to and: the bits
// from the lowest to the highest in which the values differ, in as few
// digits of at most radixBits as cover them, each as narrow as that count
// allows (latencies of up to a second differ in 30 bits: three digits of
// 10, a third fewer buckets per pass than 11 would fill, and the same
// passes); or, where fewer, the digits of radixBits at multiples of it in
// which the values differ.
func digits(or, and uint64) (shifts []uint, width uint) {
	diff := or ^ and
	if diff == 0 {
		return nil, radixBits
	}
	const mask = 1<<radixBits - 1
	var aligned []uint
	for shift := uint(0); shift < 64; shift += radixBits {
		if (diff>>shift)&mask != 0 {
			aligned = append(aligned, shift) // the values differ in this digit
		}
	}
	lo := uint(bits.TrailingZeros64(diff))
	span := uint(bits.Len64(diff)) - lo
	passes := (span + radixBits - 1) / radixBits
	if int(passes) > len(aligned) {
		return aligned, radixBits
	}
	width = (span + passes - 1) / passes
	for i := range passes {
		shifts = append(shifts, lo+i*width)
	}
	return shifts, width
}

// radixBits is the widest digit: 2^11 counters per digit stay in the
// CPU's first-level cache, and so do the 2^11 places a pass writes to,
// where 16-bit digits (one pass fewer) miss the cache on every value.
const radixBits = 11

// sortedOf is the values of parts, sorted, in a new slice (or parts' only
// slice, sorted in place). One pass counts every digit; the first
// distributing pass reads the parts themselves, so that they are never
// copied into one slice first.
func sortedOf(parts [][]int64) []int64 {
	var scratch []int64
	return sortedOfBuf(parts, &scratch)
}

// sortedOfBuf is sortedOf with a scratch buffer for the passes, kept in
// *scratch (grown when short) for the next call: one buffer serves every
// sort of a goroutine instead of fresh memory, page faults included, for
// each.
func sortedOfBuf(parts [][]int64, scratch *[]int64) []int64 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return nil
	}
	var or, and uint64 = 0, ^uint64(0)
	negative := false
	for _, p := range parts {
		for _, x := range p {
			negative = negative || x < 0
			or |= uint64(x)
			and &= uint64(x)
		}
	}
	shifts, width := digits(or, and)
	mask := uint64(1)<<width - 1
	if n < 1<<12 || negative || len(shifts) == 0 {
		out := parts[0]
		if len(parts) > 1 {
			out = make([]int64, 0, n)
			for _, p := range parts {
				out = append(out, p...)
			}
		}
		if len(shifts) > 0 {
			slices.Sort(out)
		}
		return out
	}
	counts := make([][1 << radixBits]int, len(shifts)) // the first 2^width of each used
	for _, p := range parts {
		for _, x := range p {
			for i, shift := range shifts {
				counts[i][(uint64(x)>>shift)&mask]++
			}
		}
	}
	// Passes alternate between two buffers; the last lands in out.
	if cap(*scratch) < n {
		*scratch = make([]int64, n)
	}
	out, buf := make([]int64, n), (*scratch)[:n]
	dst, other := out, buf
	if len(shifts)%2 == 0 {
		dst, other = buf, out
	}
	src := parts
	for i, shift := range shifts {
		count := counts[i][:1<<width]
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, p := range src {
			for _, x := range p {
				d := (uint64(x) >> shift) & mask
				dst[count[d]] = x
				count[d]++
			}
		}
		src = [][]int64{dst}
		dst, other = other, dst
	}
	return out
}

// Latencies are gathered in chunks: appending to one slice copies all of
// it each time it grows, about four times its size in all with Go's
// growth of large slices, and leaves up to a quarter of it unused. A chunk
// is never copied to grow; the values are only copied once, sorted, or
// not at all when only their percentiles are wanted (partsLatency).

// chunkAppend appends v to cur, the last chunk, first moving cur to done
// when it is full. Chunks double from minChunk values to maxChunk.
func chunkAppend(done *[][]int64, cur []int64, v int64) []int64 {
	if len(cur) == cap(cur) {
		cur = spill(done, cur)
	}
	return append(cur, v)
}

const (
	minChunk = 256
	maxChunk = 1 << 16 // 512 KiB
)

func spill(done *[][]int64, cur []int64) []int64 {
	if len(cur) > 0 {
		*done = append(*done, cur)
	}
	return make([]int64, 0, min(max(2*cap(cur), minChunk), maxChunk))
}

// chunks is every chunk: done's, then cur.
func chunks(done [][]int64, cur []int64) [][]int64 {
	if len(cur) == 0 {
		return done
	}
	return append(done[:len(done):len(done)], cur)
}

// joinChunks appends o's chunks to a's (a's first), the later rows after.
func joinChunks(done *[][]int64, cur *[]int64, odone [][]int64, ocur []int64) {
	if len(*cur) > 0 {
		*done = append(*done, *cur)
	}
	*done = append(*done, odone...)
	*cur = ocur
}
