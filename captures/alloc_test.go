package captures

import (
	"bytes"
	"runtime/debug"
	"slices"
	"testing"
)

// The pool hands buffers back with their earlier user's bytes in them:
// every byte Arrow sees must still read as zero until it writes it, as
// Arrow's own allocators promise.
func TestPoolAllocatorZeroesWhatItHandsOut(t *testing.T) {
	var a PoolAllocator
	dirty := func(b []byte) {
		b = b[:cap(b)]
		for i := range b {
			b[i] = 0xAB
		}
	}
	zero := func(what string, b []byte, from int) {
		t.Helper()
		if i := slices.IndexFunc(b[from:], func(c byte) bool { return c != 0 }); i >= 0 {
			t.Fatalf("%s: byte %d of %d is not zero", what, from+i, len(b))
		}
	}
	// Fill the classes up to 8 MiB with dirty buffers first, a few each
	// (the race detector makes sync.Pool drop some), with the collector
	// off so that it does not empty the pools.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for c := range class(8<<20) + 1 {
		var bs [4][]byte
		for i := range bs {
			bs[i] = a.Allocate(1 << (c + minShift))
			dirty(bs[i])
		}
		for _, b := range bs {
			a.Free(b)
		}
	}
	for _, size := range []int{100, 3000, 5000, 70_000, 1 << 20, 3 << 20} {
		b := a.Allocate(size)
		if len(b) != size {
			t.Fatalf("Allocate(%d): len %d", size, len(b))
		}
		zero("Allocate", b, 0)
		dirty(b)
		a.Free(b)
		b = a.Allocate(size) // as likely as not the one just dirtied
		zero("Allocate after Free", b, 0)

		// Grow with content, past cap (a new buffer) and within it.
		for i := range b {
			b[i] = byte(i%251 + 1)
		}
		want := bytes.Clone(b)
		g := a.Reallocate(2*size+7, b)
		if len(g) != 2*size+7 || !bytes.Equal(g[:size], want) {
			t.Fatalf("Reallocate(%d) from %d: len %d, content kept %v", 2*size+7, size, len(g), bytes.Equal(g[:size], want))
		}
		zero("Reallocate's new bytes", g, size)
		dirty(g[len(g):cap(g)]) // room past the size: whatever is there
		h := a.Reallocate(cap(g), g)
		if !bytes.Equal(h[:size], want) {
			t.Fatalf("Reallocate within room from %d: content lost", size)
		}
		zero("Reallocate within room", h, len(g))
		a.Free(h)
	}
}
