package captures

// The writer's Arrow allocator. Every chunk of rows becomes a record batch
// of a few MiB (the bodies are copied into it), and the Parquet encoder
// grows page and column-chunk buffers of the same order; with the Go
// allocator each of them is a fresh allocation, zeroed, that the garbage
// collector then has to find dead. At 100,000 exchanges/s that is about
// 1 GB/s of allocation. Arrow releases its buffers explicitly (Free), so
// they can be handed to the next batch instead.

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Buffers of 2^minShift to 2^maxShift bytes are pooled, by power of two;
// smaller ones are cheap to allocate, larger ones are rare.
const (
	minShift = 12 // 4 KiB
	maxShift = 26 // 64 MiB
	align    = 64 // what Arrow's allocators promise
)

// PoolAllocator is a memory.Allocator whose buffers are reused once
// freed. Like Arrow's own allocators it returns zeroed memory. It is safe
// for concurrent use, and its zero value is ready. Readers of many row
// groups (analyze's) use it too: each column's page buffers are released
// when the column is done and serve the next row group's.
type PoolAllocator struct {
	classes [maxShift - minShift + 1]sync.Pool // of *[]byte, each with cap 2^(minShift+i)
	small   memory.GoAllocator
}

var writerAlloc = &PoolAllocator{}

// Arrow's process-wide default allocator becomes the writer's. The
// Parquet encoder takes its page buffers from a pool of its own whose
// buffers allocate from memory.DefaultAllocator, whatever allocator the
// writer passes: 34 columns share that pool, so the page of a body column
// often starts in a small buffer and grows to a MiB by doubling. With Go's
// allocator every step is a fresh, zeroed allocation (about 4 KiB of
// garbage per exchange, over half of what the writer allocates); here the
// steps are buffers that earlier pages gave back. Everything else that
// allocates from the default (readers among them) gets the same buffers.
func init() { memory.DefaultAllocator = writerAlloc }

// class is the pool index of a buffer of size bytes, or -1 if it is not pooled.
func class(size int) int {
	if size <= 1<<minShift/2 || size > 1<<maxShift {
		return -1
	}
	shift := bits.Len(uint(size - 1)) // 2^shift >= size
	return max(shift, minShift) - minShift
}

func (a *PoolAllocator) Allocate(size int) []byte {
	c := class(size)
	if c < 0 {
		return a.small.Allocate(size)
	}
	if p, ok := a.classes[c].Get().(*[]byte); ok {
		b := (*p)[:size]
		clear(b)
		return b
	}
	n := 1 << (c + minShift)
	raw := make([]byte, n+align)
	shift := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (align - 1))
	return raw[shift : shift+size : shift+n]
}

func (a *PoolAllocator) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		// What was beyond len(b) may hold an earlier user's bytes.
		if size > len(b) {
			clear(b[len(b):size])
		}
		return b[:size]
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

// Free takes a buffer back. Only buffers of a pooled class's exact
// capacity are kept; any other is left to the garbage collector.
func (a *PoolAllocator) Free(b []byte) {
	n := cap(b)
	c := class(n)
	if c < 0 || n != 1<<(c+minShift) {
		return
	}
	b = b[:n]
	a.classes[c].Put(&b)
}

var _ memory.Allocator = (*PoolAllocator)(nil)
