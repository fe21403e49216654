//go:build !linux

package captures

import "os"

// directIO: direct I/O is only set up on Linux; elsewhere logs go through
// the page cache.
func directIO(*os.File) bool { return false }

func bufferedIO(*os.File) bool { return true }

// startWriteback: elsewhere the fsync of a roll writes the whole file.
func startWriteback(*os.File, int64, int64) {}
