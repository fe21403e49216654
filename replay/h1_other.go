//go:build !unix

package replay

import "net"

// aliveCheck has no non-blocking peek here: an idle connection is taken
// as open, and a request net/http would retry is retried when its
// connection breaks.
type aliveCheck struct{}

func (a *aliveCheck) init(net.Conn) {}
func (a *aliveCheck) alive() bool   { return true }
