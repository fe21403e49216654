package replay

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// kernelTimer is a timerfd on the monotonic clock, read through Go's
// network poller: its expiry makes the poller return.
type kernelTimer struct{ fd int }

type itimerspec struct{ interval, value syscall.Timespec }

const clockMonotonic = 1

// newKernelTimer starts the goroutine that waits for the timer's expiries
// and calls fired after each; false when the kernel refuses a timerfd.
func newKernelTimer(fired func()) (kernelTimer, bool) {
	fd, _, e := syscall.RawSyscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		return kernelTimer{}, false
	}
	// Non-blocking, so os.NewFile registers it with the poller.
	f := os.NewFile(fd, "timerfd")
	go func() { // ends only if the timer cannot be read (never in practice)
		var b [8]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				return
			}
			fired()
		}
	}()
	return kernelTimer{fd: int(fd)}, true
}

// set arms the timer to expire once after d, or disarms it (d 0).
func (k kernelTimer) set(d time.Duration) {
	its := itimerspec{value: syscall.NsecToTimespec(int64(d))}
	syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(k.fd), 0, uintptr(unsafe.Pointer(&its)), 0, 0, 0)
}
