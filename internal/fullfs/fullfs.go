// Package fullfs gives tests a file system they can fill: a small tmpfs,
// and a file that takes its last free byte, so that a writer meets ENOSPC
// and, once the file is removed, finds space again.
package fullfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size (as mount's size= option: "4m") on a new
// temporary directory, unmounts it when the test ends, and returns the
// directory. Where the test may not mount (not root, no CAP_SYS_ADMIN) it
// skips the test.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs to fill (needs root and permission to mount): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// Fill writes dir/filler until the file system is full, in ever smaller
// writes so that not a byte is left, and returns its path: removing it
// gives the space back. Each write size is tried at most 1<<20 times.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{64 << 10, 4 << 10, 1} {
		buf := make([]byte, n)
		for i := 0; i < 1<<20; i++ {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return p
}
