//go:build unix

package replay

import "syscall"

// openFileLimit is the soft RLIMIT_NOFILE; 0 when unknown or unlimited.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Cur == ^uint64(0) {
		return 0
	}
	return uint64(rl.Cur)
}
