package smtpd

import (
	"syscall"
)

// peerGone reports whether the client at the other end of c has closed
// the connection (or reset it), without consuming anything it sent: a
// non-blocking MSG_PEEK reads 0 octets at end of stream. Data the client
// pipelined means it is still there.
func peerGone(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			gone = n == 0
		case err == syscall.EAGAIN || err == syscall.EINTR:
		default:
			gone = true // ECONNRESET and the like
		}
		return true
	})
	return gone
}
