package smtptest

import (
	"syscall"
	"testing"
)

// DeadPort returns a loopback TCP port that refuses every connection for
// the rest of the test: a "dead" smarthost. A socket is bound to the port
// but never listens, so the port stays reserved. A port merely found free
// and closed again (listen on :0, close) is soon handed to the next
// listener on the machine, which under a parallel `go test ./...` is
// another test's server, and the "dead" smarthost then answers.
func DeadPort(t testing.TB) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("smtptest: dead port: socket: %v", err)
	}
	// No SO_REUSEADDR: a listener (Go sets it) cannot share the port.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatalf("smtptest: dead port: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatalf("smtptest: dead port: getsockname: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return sa.(*syscall.SockaddrInet4).Port
}
