package sendmail

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// DefaultSpoolMemory is how much of a message a Spool keeps in memory
// before it moves the content to a temporary file. Most mail (cron
// output, PHP notifications) is far smaller, so it never touches the
// disk; a 100 MB attachment costs this much memory and no more.
const DefaultSpoolMemory = 256 << 10

// Spool holds a message's body while relaymail works on it: in memory up
// to a limit, then in an unlinked temporary file, so that memory does not
// grow with the message and nothing is left behind if the process dies.
// It is written once, then read any number of times with ReadAt.
type Spool struct {
	dir   string
	limit int
	mem   []byte
	file  *os.File
	size  int64
}

// NewSpool returns an empty spool that spills to a temporary file in dir
// ("" = os.TempDir()) once it holds more than limit bytes.
func NewSpool(dir string, limit int) *Spool {
	return &Spool{dir: dir, limit: limit}
}

// Write appends p.
func (s *Spool) Write(p []byte) (int, error) {
	if s.file == nil && len(s.mem)+len(p) > s.limit {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		s.size += int64(n)
		return n, err
	}
	s.mem = append(s.mem, p...)
	s.size += int64(len(p))
	return len(p), nil
}

func (s *Spool) spill() error {
	f, err := os.CreateTemp(s.dir, "relaymail-*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	// Unlinked at once: the file lives exactly as long as the process.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(s.mem); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.file, s.mem = f, nil
	return nil
}

// ReadAt reads the spooled content at off.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if s.file != nil {
		return s.file.ReadAt(p, off)
	}
	if off >= int64(len(s.mem)) {
		return 0, io.EOF
	}
	n := copy(p, s.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size is the number of bytes written.
func (s *Spool) Size() int64 { return s.size }

// Close releases the temporary file, if any.
func (s *Spool) Close() error {
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// concatReaderAt presents a header block and a spooled body as one
// io.ReaderAt, so the message can be sent, resent to a fallback host or
// saved without ever being copied whole.
type concatReaderAt struct {
	head []byte
	body io.ReaderAt
}

func (c concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("spool: negative offset")
	}
	n := 0
	if off < int64(len(c.head)) {
		n = copy(p, c.head[off:])
		if n == len(p) {
			return n, nil
		}
		off = 0
	} else {
		off -= int64(len(c.head))
	}
	m, err := c.body.ReadAt(p[n:], off)
	return n + m, err
}
