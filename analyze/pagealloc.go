package analyze

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// pageAlloc is the Arrow allocator of one reader goroutine's Parquet page
// readers. Each column of each row group gets page readers of its own
// whose buffers (a page, compressed and not) are released when the
// column is done; with the Go allocator each is a fresh allocation that
// the garbage collector then has to find dead, 160 MB for 10 M rows.
// Here a released buffer waits, by power of two, for the next row group's
// readers. Like Arrow's allocators it hands out zeroed memory.
type pageAlloc struct {
	mu   sync.Mutex // page readers are used on one goroutine; the lock is for safety
	free [maxPageShift + 1][][]byte
	gc   memory.GoAllocator
}

const (
	minPageShift = 12 // smaller buffers are cheap to allocate
	maxPageShift = 26 // 64 MiB
	pageAlign    = 64 // what Arrow's allocators promise
	maxFreeEach  = 64 // buffers kept per size
)

func pageClass(size int) int {
	if size <= 1<<minPageShift/2 || size > 1<<maxPageShift {
		return -1
	}
	return max(bits.Len(uint(size-1)), minPageShift)
}

func (a *pageAlloc) Allocate(size int) []byte {
	c := pageClass(size)
	if c < 0 {
		return a.gc.Allocate(size)
	}
	a.mu.Lock()
	if n := len(a.free[c]); n > 0 {
		b := a.free[c][n-1]
		a.free[c] = a.free[c][:n-1]
		a.mu.Unlock()
		b = b[:size]
		clear(b)
		return b
	}
	a.mu.Unlock()
	raw := make([]byte, 1<<c+pageAlign)
	shift := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (pageAlign - 1))
	return raw[shift : shift+size : shift+1<<c]
}

func (a *pageAlloc) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		if size > len(b) {
			clear(b[len(b):size]) // an earlier user's bytes
		}
		return b[:size]
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

// Free keeps a buffer of a pooled class's exact capacity; any other is
// left to the garbage collector.
func (a *pageAlloc) Free(b []byte) {
	n := cap(b)
	c := pageClass(n)
	if c < 0 || n != 1<<c {
		return
	}
	a.mu.Lock()
	if len(a.free[c]) < maxFreeEach {
		a.free[c] = append(a.free[c], b[:n])
	}
	a.mu.Unlock()
}

var _ memory.Allocator = (*pageAlloc)(nil)
