package queue

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// oTmpfile is O_TMPFILE (__O_TMPFILE | O_DIRECTORY): __O_TMPFILE is
// 020000000 on every Linux port Go supports, O_DIRECTORY varies by
// architecture and syscall knows it.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

const (
	atFdcwd         = -0x64
	atSymlinkFollow = 0x400
)

// openNameless opens a new file in dir that has no name: a crash leaves
// nothing behind, and linkNameless gives it one. ok is false where the
// kernel, the filesystem or a missing /proc cannot do that.
func openNameless(dir string, mode os.FileMode) (f *os.File, ok bool, err error) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return nil, false, nil
	}
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_RDWR|syscall.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		switch {
		case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
			return nil, false, nil // kernel or filesystem without O_TMPFILE
		}
		return nil, true, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(nameless)"), true, nil
}

// linkNameless gives the nameless file f the name path. It fails with
// EEXIST when path exists: it never replaces a file.
func linkNameless(f *os.File, path string) error {
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	s, err := syscall.BytePtrFromString(src)
	if err != nil {
		return err
	}
	d, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	cwd := atFdcwd
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(cwd), uintptr(unsafe.Pointer(s)),
			uintptr(cwd), uintptr(unsafe.Pointer(d)), atSymlinkFollow, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return &os.LinkError{Op: "linkat", Old: src, New: path, Err: e}
		}
		return nil
	}
}
