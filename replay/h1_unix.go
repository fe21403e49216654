//go:build unix

package replay

import (
	"net"
	"syscall"
)

// aliveCheck tells an idle connection the server closed (or wrote to:
// nothing is due on an idle connection) from one still open, with one
// non-blocking peek at the socket. net/http learns it from the reader
// goroutine each of its connections has; without one, a request sent on
// a closed connection would fail, or be sent twice.
type aliveCheck struct {
	rc   syscall.RawConn
	peek func(fd uintptr) bool // the bound method, made once
	buf  [1]byte
	dead bool
}

func (a *aliveCheck) init(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	a.rc = rc
	a.peek = a.peekFD
}

func (a *aliveCheck) peekFD(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), a.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	a.dead = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK || n > 0
	return true // done: never wait for the socket
}

func (a *aliveCheck) alive() bool {
	if a.rc == nil {
		return true
	}
	a.dead = false
	if a.rc.Read(a.peek) != nil {
		return false
	}
	return !a.dead
}
