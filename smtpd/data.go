package smtpd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ErrMessageTooBig is the error the message stream given to Handler.Data
// returns once the message exceeds Server.MaxMessageSize. The session then
// reads the rest of the data, throws it away and answers the final dot with
// 552 5.3.4 whatever Data returned.
var ErrMessageTooBig = errors.New("smtpd: message exceeds the maximum size")

// errDataAborted is what the message stream returns after the Handler's
// Data has returned; the Handler must not keep the stream.
var errDataAborted = errors.New("smtpd: message stream used after Data returned")

// dataReader streams the DATA phase (RFC 5321 §4.5.2) out of a
// bufio.Reader: it removes the leading dot of each line and stops at the
// end-of-data line. Only CRLF ends a line, so only <CRLF>.<CRLF> ends the
// message: a "." after a bare LF or a bare CR is content (SMTP smuggling).
// The bytes it hands on are slices of br's buffer, copied out before br is
// read again, so memory does not grow with line or message length.
type dataReader struct {
	br        *bufio.Reader
	pending   []byte // part of the current chunk not yet returned
	lineStart bool   // the next octet begins a CRLF-delimited line
	prevCR    bool   // the last octet consumed was a CR
	n         int64  // octets handed on (after unstuffing)
	max       int64  // < 0: no limit
	done      bool   // the end-of-data line was read
	tooBig    bool
	err       error // a read error (the connection failed); sticky
	closed    bool  // Data has returned
	onEnd     func()
}

func newDataReader(br *bufio.Reader, max int64) *dataReader {
	return &dataReader{br: br, lineStart: true, max: max}
}

// Read hands on the message, then io.EOF after the end-of-data line. If the
// client goes away or times out first it returns that error (never io.EOF),
// so a Handler cannot mistake a truncated message for a whole one.
func (d *dataReader) Read(p []byte) (int, error) {
	if d.closed {
		return 0, errDataAborted
	}
	if d.tooBig {
		return 0, ErrMessageTooBig
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(d.pending) == 0 {
		if err := d.next(); err != nil {
			return 0, err
		}
	}
	if d.max >= 0 && d.n+int64(len(d.pending)) > d.max {
		d.tooBig = true
		d.pending = nil
		return 0, ErrMessageTooBig
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	d.n += int64(n)
	return n, nil
}

// next reads the next non-empty chunk of a line, un-stuffed, into
// d.pending. It returns io.EOF at the end of data and the sticky read error
// otherwise.
func (d *dataReader) next() error {
	for len(d.pending) == 0 {
		if d.done {
			return io.EOF
		}
		if d.err != nil {
			return d.err
		}
		chunk, err := d.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			// A partial line and then an error: the client went away or
			// went silent in the middle of the message.
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.err = fmt.Errorf("smtpd: reading message data: %w", err)
			return d.err
		}
		full := err == nil // chunk ends with LF
		body := chunk
		if d.lineStart && len(chunk) > 0 && chunk[0] == '.' {
			if full && len(chunk) == 3 && chunk[1] == '\r' {
				d.done = true
				if d.onEnd != nil {
					d.onEnd()
				}
				return io.EOF
			}
			body = chunk[1:] // un-stuff
		}
		if len(chunk) > 0 {
			last := chunk[len(chunk)-1]
			if full {
				// The LF ends a line only when a CR came right before
				// it, in this chunk or at the end of the previous one.
				cr := len(chunk) >= 2 && chunk[len(chunk)-2] == '\r' || len(chunk) == 1 && d.prevCR
				d.lineStart = cr
			} else {
				d.lineStart = false
			}
			d.prevCR = last == '\r'
		}
		d.pending = body
	}
	return nil
}

// drain reads and discards the rest of the data after Data returned,
// ignoring the size limit; it returns nil at the end of data or the read
// error.
func (d *dataReader) drain() error {
	d.pending = nil
	for {
		if err := d.next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		d.pending = nil
	}
}
