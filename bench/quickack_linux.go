package bench

import (
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge what arrives on c at once instead of
// delaying the ACK (up to 40 ms) in the hope of piggy-backing it. The
// proxy's delay applies to data, not to TCP's own ACKs, which stay local
// and instant; a delayed ACK would instead stall a client that leaves
// Nagle's algorithm on (msmtp writes each pipelined command separately)
// by a timer that has nothing to do with the modelled link. The flag is
// not sticky, so it is set again before every read.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
