package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// SaveDeadLetter appends a message that could be neither delivered nor
// queued to dead.letter in home (the caller's passwd home, never $HOME),
// as one mbox entry: a "From " line with the sender and date, the whole
// message (headers too) with body lines that start with "From " quoted
// as ">From ", and a blank line. It returns the file's path.
func SaveDeadLetter(home, sender string, content io.ReaderAt, size int64, now time.Time) (string, error) {
	if home == "" {
		return "", errors.New("dead.letter: the calling user has no home directory")
	}
	path := filepath.Join(home, "dead.letter")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	w := bufio.NewWriter(f)
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
			f.Close()
			return path, fmt.Errorf("dead.letter: reading the message: %w", err)
		}
	}
	if !atLineStart {
		w.WriteByte('\n')
	}
	w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		f.Close()
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	if err := f.Close(); err != nil {
		return path, fmt.Errorf("dead.letter: %w", err)
	}
	return path, nil
}
