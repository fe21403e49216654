// Package loopback gives tests an address on 127.0.0.1 to start a server
// on, for the processes they start (a recorder, a replay's metrics, a
// Prometheus) that take an address rather than a listener.
package loopback

import (
	"net"
	"testing"
)

// FreeAddr is a loopback address nobody listens on right now. Another
// process may take it before the caller's does; the tests that use it
// start their server at once.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
