package captures

import (
	"os"
	"syscall"
)

// directIO turns on O_DIRECT for f, if its file system supports it
// (tmpfs, for one, may not: f then stays as it was).
func directIO(f *os.File) bool {
	fd := f.Fd()
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	if errno != 0 {
		return false
	}
	_, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags|syscall.O_DIRECT)
	return errno == 0
}

// bufferedIO turns O_DIRECT off again.
func bufferedIO(f *os.File) bool {
	fd := f.Fd()
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	if errno != 0 {
		return false
	}
	_, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags&^syscall.O_DIRECT)
	return errno == 0
}

// startWriteback asks the kernel to start writing the bytes of f from off
// on to the device now, without waiting for them. The writer calls it for
// each row group it writes, so that the fsync of a roll finds only the
// last one dirty: otherwise the page cache holds a whole roll interval of
// a busy file (hundreds of MB) and the fsync waits for all of it while its
// file goroutine's core idles. Best effort: an error only means the fsync
// does the work.
func startWriteback(f *os.File, off, n int64) {
	if n <= 0 {
		return
	}
	const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
	syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
