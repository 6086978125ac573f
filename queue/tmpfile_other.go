//go:build !linux

package queue

import (
	"errors"
	"os"
)

// openNameless: only Linux has O_TMPFILE; elsewhere Body uses a named
// temporary file.
func openNameless(dir string, mode os.FileMode) (*os.File, bool, error) { return nil, false, nil }

func linkNameless(f *os.File, path string) error {
	return errors.New("queue: nameless files are not supported")
}
