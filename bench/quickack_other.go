//go:build !linux

package bench

import "net"

// quickAck is a no-op where TCP_QUICKACK does not exist; see the Linux
// version for why the proxy wants it.
func quickAck(net.Conn) {}
