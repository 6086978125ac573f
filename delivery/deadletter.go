package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"relaymail/internal/privilege"
)

// deadLetterLockTries bounds the wait for another relaymail appending to
// the same dead.letter: the file is the caller's, and a caller that holds
// a lock on it for ever must not hold relaymail too.
const deadLetterLockTries = 100 // of 20 ms

// SaveDeadLetter appends a message that could be neither delivered nor
// queued to dead.letter in home (the caller's passwd home, never $HOME),
// as one mbox entry: a "From " line with the sender and date, the whole
// message (headers too) with body lines that start with "From " quoted
// as ">From ", and a blank line. It returns the file's path.
//
// The home is the caller's, so SaveDeadLetter first gives up the setgid
// group for good (SPEC §9): whatever the caller put at that path, it is
// opened with the caller's rights only. It is still opened without
// following a symbolic link, and written only when it is a regular file
// of the caller's with one name; a new one is created 0600 with the
// caller's user and group. A write that fails (a full disk) is cut back
// to the previous size, so no fragment is left for the next entry to run
// into, and every entry starts on a line of its own after a blank line.
func SaveDeadLetter(home, sender string, content io.ReaderAt, size int64, now time.Time) (string, error) {
	if home == "" {
		return "", errors.New("dead.letter: the calling user has no home directory")
	}
	path := filepath.Join(home, "dead.letter")
	if err := privilege.Drop(); err != nil {
		return path, fmt.Errorf("dead.letter: not written: %v", err)
	}
	f, err := openDeadLetter(path)
	if err != nil {
		return path, err
	}
	defer f.Close()
	unlock := lockBounded(f)
	defer unlock()

	st, err := f.Stat()
	if err != nil {
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	before := st.Size()
	if err := appendEntry(f, before, sender, content, size, now); err != nil {
		// Leave the file as it was: a fragment would swallow the next
		// entry's "From " line and make this one unreadable too.
		if terr := f.Truncate(before); terr != nil {
			return path, fmt.Errorf("dead.letter: %w (and it could not be cut back to %d bytes: %v)", err, before, terr)
		}
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	if err := f.Close(); err != nil {
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	return path, nil
}

// openDeadLetter opens path for appending, creating it 0600 for the
// caller when missing, and refuses anything but a regular file the
// caller owns with a single link: not a symlink (O_NOFOLLOW), not a FIFO
// or device (O_NONBLOCK keeps the open itself from blocking), not another
// user's file, not a hard link into someone else's directory.
func openDeadLetter(path string) (*os.File, error) {
	const flags = os.O_RDWR | os.O_APPEND | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY
	uid, gid := os.Getuid(), os.Getgid()
	f, err := os.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, flags, 0)
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("dead.letter: %s is a symbolic link; not written", path)
	}
	if err != nil {
		return nil, fmt.Errorf("dead.letter: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dead.letter: %w", err)
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.Mode().IsRegular():
		err = fmt.Errorf("dead.letter: %s is not a regular file; not written", path)
	case sys == nil || int(sys.Uid) != uid:
		err = fmt.Errorf("dead.letter: %s belongs to another user; not written", path)
	case sys.Nlink != 1:
		err = fmt.Errorf("dead.letter: %s has %d links; not written", path, sys.Nlink)
	}
	if err == nil && created {
		// The umask may have taken bits away, and a setgid home would
		// have lent the file its group: make it the caller's, 0600.
		if err = f.Chown(-1, gid); err == nil {
			err = f.Chmod(0o600)
		}
		if err != nil {
			err = fmt.Errorf("dead.letter: %w", err)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lockBounded takes an exclusive flock on f, so that two relaymails do
// not interleave their entries, but waits only so long; without the lock
// the entry is still written (the message matters more than the layout).
func lockBounded(f *os.File) (unlock func()) {
	fd := int(f.Fd())
	for range deadLetterLockTries {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(fd, syscall.LOCK_UN) }
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {}
}

// appendEntry writes one mbox entry at the end of f, which holds before
// octets, and syncs it.
func appendEntry(f *os.File, before int64, sender string, content io.ReaderAt, size int64, now time.Time) error {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	w := bufio.NewWriter(f)
	w.WriteString(separator(f, before))
	fmt.Fprintf(w, "From %s %s\n", sender, now.Format("Mon Jan _2 15:04:05 2006"))
	r := bufio.NewReader(io.NewSectionReader(content, 0, size))
	atLineStart := true
	for {
		chunk, err := r.ReadSlice('\n')
		if atLineStart && bytes.HasPrefix(chunk, []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(chunk)
		if len(chunk) > 0 {
			atLineStart = chunk[len(chunk)-1] == '\n'
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the message: %w", err)
		}
	}
	if !atLineStart {
		w.WriteByte('\n')
	}
	w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// separator is what must come before a new entry so that its "From "
// line starts a line after a blank one, whatever the file ends with (an
// entry written by another program, or by hand).
func separator(f *os.File, size int64) string {
	if size == 0 {
		return ""
	}
	var tail [2]byte
	n := int64(len(tail))
	if size < n {
		n = size
	}
	if _, err := f.ReadAt(tail[2-n:], size-n); err != nil {
		return "\n\n"
	}
	switch {
	case tail[1] != '\n':
		return "\n\n"
	case tail[0] != '\n' && size > 1:
		return "\n"
	}
	return ""
}
