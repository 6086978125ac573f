package config

import (
	"errors"
	"os"
	"syscall"
)

// errNotRegular is why a path that names a FIFO, a device, a socket or a
// directory is refused where relaymail expects a file.
var errNotRegular = errors.New("not a regular file")

// OpenRegular opens name for reading, refusing anything but a regular
// file. The open itself never blocks: a FIFO opened for reading waits for
// a writer, and a caller who names one (-C, or a config of its own) must
// not be able to hang relaymail, which holds its signals meanwhile
// (SPEC §9). What is checked is the opened file, not the path.
func OpenRegular(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	return f, nil
}

// checkRegular reports a problem when path exists and is not a regular
// file; a missing one is left to the code that reads it, which knows
// whether that matters.
func checkRegular(path, key string, ps *problems) {
	if path == "" {
		return
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		ps.add("%s %s is not a regular file", key, path)
	}
}
