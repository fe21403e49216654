//go:build !unix

package replay

// openFileLimit is unknown off Unix: only memory limits the users there.
func openFileLimit() uint64 { return 0 }
