package sendmail

import (
	"errors"
	"fmt"
	"io"
	"os"

	"relaymail/message"
)

// DefaultSpoolMemory is how much of a message a Spool keeps in memory
// before it moves the content to a temporary file. Most mail (cron
// output, PHP notifications) is far smaller, so it never touches the
// disk; a 100 MB attachment costs this much memory and no more.
const DefaultSpoolMemory = 256 << 10

// SpillFile is where a Spool moves its content once it outgrows memory
// (message.SpillFile): a Spool is a message.Spilled body.
type SpillFile = message.SpillFile

// Spool holds a message's body while relaymail works on it: in memory up
// to a limit, then in a SpillFile, so that memory does not grow with the
// message. It is written once, then read any number of times with ReadAt.
//
// A spill file that fails (the queue's filesystem is full) is replaced
// by a temporary file holding everything written so far, so that stdin,
// which cannot be read twice, is never lost on the way in: the message
// can still go out now, or to dead.letter.
type Spool struct {
	limit    int
	newSpill func() (SpillFile, error)
	mem      []byte    // the content, while in memory
	file     SpillFile // the content, once spilled: written octets, then pending
	pending  []byte    // octets not yet written to file (the intake writes line by line)
	written  int64     // octets safely in file
	size     int64
	rescued  bool // file is already the fallback
}

// NewSpool returns an empty spool that moves to newSpill() once it holds
// more than limit bytes; a nil newSpill means TempSpill.
func NewSpool(limit int, newSpill func() (SpillFile, error)) *Spool {
	if newSpill == nil {
		newSpill = TempSpill
	}
	return &Spool{limit: limit, newSpill: newSpill}
}

// TempSpill creates a temporary file in os.TempDir() and unlinks it at
// once: it lives exactly as long as the process. A setgid relaymail has
// dropped the caller's $TMPDIR at start (privilege.ScrubEnvironment), so
// there os.TempDir() is /tmp, never a directory the caller chose.
func TempSpill() (SpillFile, error) {
	f, err := os.CreateTemp("", "relaymail-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ErrStorage marks a message relaymail could not store while reading it
// (no space, no temporary directory): nothing was accepted (exit 75).
var ErrStorage = errors.New("cannot store the message")

// spillBuffer batches the intake's line-sized writes into few system
// calls once the content lives in a file.
const spillBuffer = 64 << 10

// Write appends p.
func (s *Spool) Write(p []byte) (int, error) {
	if s.file == nil {
		if len(s.mem)+len(p) <= s.limit {
			s.mem = append(s.mem, p...)
			s.size += int64(len(p))
			return len(p), nil
		}
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	s.size += int64(len(p))
	if len(s.pending) == 0 && len(p) >= spillBuffer {
		// A large write (the intake copying a body in big reads) goes
		// to the file as it is, without a copy into pending first.
		if rest, err := s.writeFile(p); err != nil {
			s.pending = append(s.pending, rest...)
			return len(p), err
		}
		return len(p), nil
	}
	s.pending = append(s.pending, p...)
	if len(s.pending) >= spillBuffer {
		if err := s.Flush(); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// spill moves the content to a spill file; the memory content becomes
// the first pending write.
func (s *Spool) spill() error {
	f, err := s.newSpill()
	if err != nil {
		if f, err = TempSpill(); err != nil {
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
		s.rescued = true
	}
	s.file, s.pending, s.mem = f, s.mem, nil
	return nil
}

// Flush writes out what is pending for the spill file. ReadAt does it by
// itself; a caller handing the file on (to the queue) calls it first.
func (s *Spool) Flush() error {
	rest, err := s.writeFile(s.pending)
	s.pending = append(s.pending[:0], rest...) // keep the buffer: one allocation per message
	return err
}

// writeFile writes p to the spill file, moving to a temporary file when
// the spill file fails. On an error it returns what was not written.
func (s *Spool) writeFile(p []byte) ([]byte, error) {
	for s.file != nil && len(p) > 0 {
		n, err := s.file.Write(p)
		s.written += int64(n)
		p = p[n:]
		if err == nil {
			break
		}
		if err := s.rescue(err); err != nil {
			return p, err
		}
	}
	return nil, nil
}

// rescue replaces a failing spill file with a temporary one holding what
// was written to it; pending stays pending.
func (s *Spool) rescue(cause error) error {
	if s.rescued {
		return fmt.Errorf("%w: %v", ErrStorage, cause)
	}
	f, err := TempSpill()
	if err != nil {
		return fmt.Errorf("%w: %v (and no temporary file: %v)", ErrStorage, cause, err)
	}
	if _, err := io.Copy(f, io.NewSectionReader(s.file, 0, s.written)); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v (and copying to a temporary file: %v)", ErrStorage, cause, err)
	}
	s.file.Close()
	s.file, s.rescued = f, true
	return nil
}

// ReadAt reads the spooled content at off.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if s.file != nil {
		if err := s.Flush(); err != nil {
			return 0, err
		}
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

// Spilled returns the SpillFile holding the content, or nil while it is
// all in memory (then Bytes has it). Call Flush before using the file
// directly.
func (s *Spool) Spilled() SpillFile { return s.file }

// Bytes returns the content while it is in memory, nil once spilled.
func (s *Spool) Bytes() []byte { return s.mem }

// Close releases the spill file, if any.
func (s *Spool) Close() error {
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}
