package modes

import (
	"syscall"
	"unsafe"
)

// unixIoctlGetTermios asks the kernel for fd's terminal attributes; it
// fails for anything that is not a terminal.
func unixIoctlGetTermios(fd uintptr) (*syscall.Termios, error) {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	if errno != 0 {
		return nil, errno
	}
	return &t, nil
}
