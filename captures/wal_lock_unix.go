//go:build unix

package captures

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on a write-ahead log for as long as its
// writer has it open. The kernel drops the lock when the process dies, so
// a log that can be locked has no live writer and is safe to recover. flock
// locks belong to the open file, not the process: two writers in one
// process still exclude each other.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// isLocked reports whether another open file holds the lock.
func isLocked(err error) bool { return errors.Is(err, syscall.EWOULDBLOCK) }
