package proxy

import (
	"net"
	"sync"
)

// trackedListener remembers its open connections so that Shutdown can close
// the ones http.Server no longer tracks: hijacked MITM tunnels and
// WebSocket relays.
type trackedListener struct {
	net.Listener
	conns *sync.Map // *trackedConn → struct{}
}

func (l trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, conns: l.conns}
	l.conns.Store(tc, struct{}{})
	return tc, nil
}

type trackedConn struct {
	net.Conn
	conns *sync.Map
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.conns.Delete(c) })
	return c.Conn.Close()
}

// closeConns closes every connection still open.
func closeConns(conns *sync.Map) {
	conns.Range(func(k, _ any) bool {
		k.(*trackedConn).Close()
		return true
	})
}
