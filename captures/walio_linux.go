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
