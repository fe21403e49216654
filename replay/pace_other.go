//go:build !linux

package replay

import "time"

// kernelTimer is not wired up outside Linux: Go's timers alone decide.
type kernelTimer struct{}

func newKernelTimer(func()) (kernelTimer, bool) { return kernelTimer{}, false }

func (kernelTimer) set(time.Duration) {}
