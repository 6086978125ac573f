package relay

import (
	"bytes"
	"io"
	"sync"
)

// maxLineText is the longest line the writer emits, in octets without CRLF
// (RFC 5321 §4.5.3.1.6: 1000 including CRLF).
const maxLineText = 998

const (
	// chunkSize is the writer's output buffer: one write to the
	// connection, and one BDAT chunk. Large enough that a 100 MB message
	// costs a few hundred writes, small enough to keep memory flat.
	chunkSize = 256 << 10
	// chunkHead is room kept in front of the output for the BDAT command
	// line, so that the command and its chunk go out in one write without
	// a copy.
	chunkHead = len("BDAT 4294967295 LAST\r\n")
	// inSize is how much of the message one read asks for: a chunk's
	// worth, so that a 100 MB message costs a few hundred reads.
	inSize = 256 << 10
	// stepRoom is the room the encoder keeps free before each step: what
	// one step appends (a CRLF that breaks a long line, a stuffed dot and
	// up to maxLineText octets), plus what Close may add (CRLF ".\r\n").
	stepRoom = 2 + 1 + maxLineText + 5
	// countSize is the buffer WireSize encodes into and throws away:
	// small enough to stay in the CPU's cache.
	countSize = 8 << 10
)

// Buffers are reused between messages: a queue run sends thousands, and a
// fresh 256 KiB per message would be garbage the collector has to chase.
var (
	outBufs = sync.Pool{New: func() any { b := make([]byte, chunkHead+chunkSize); return &b }}
	inBufs  = sync.Pool{New: func() any { b := make([]byte, inSize); return &b }}
)

// dotWriter encodes a message for the wire in one pass over large
// buffers, for DATA (RFC 5321 §4.5.2) or for BDAT (RFC 3030):
//
//   - LF, CRLF and a lone CR each end a line and become CRLF: RFC 5321
//     §2.3.8 forbids a client to send CR or LF other than as CRLF, and a
//     server that reads a bare CR as a line end would otherwise take
//     "<CR>.<CR>" for the end of the data (SMTP smuggling); a server that
//     takes BDAT may still relay the message onwards with DATA;
//   - for DATA, a line that starts with "." gets another "." in front
//     (also one that follows a lone CR); BDAT needs no stuffing;
//   - a line longer than 998 octets on the wire (a stuffed dot counts) is
//     broken by inserting CRLF after 998 octets and going on (what Postfix
//     does, so nothing is refused or lost; a continuation that starts with
//     "." is stuffed too); for BDAT the break falls where it would with
//     DATA, so the server gets the same message either way and WireSize
//     is the size of both;
//   - Close supplies the final CRLF when the input did not end with one,
//     then, for DATA, the terminating ".\r\n".
//
// Output collects in one buffer of fixed size that goes to emit whenever
// it is nearly full, so memory does not grow with the message.
type dotWriter struct {
	// emit takes the buffer: chunkHead octets of room, then the encoded
	// output. last is set once, by Close. nil emit only counts (WireSize).
	emit  func(b []byte, last bool) error
	buf   []byte
	stuff bool  // DATA: stuff dots and terminate; BDAT: neither
	col   int   // octets on the current output line, a stuffed dot included
	cr    bool  // the last input octet was a CR: the line has ended, LF or not
	n     int64 // octets emitted, terminator excluded
	// stuffed counts the dots added in front of lines, which RFC 1870
	// leaves out of the message size.
	stuffed int64
	err     error // the first error of emit: every later call returns it
}

// newDotWriter encodes into buf (its capacity is the chunk; at least
// chunkHead+2*stepRoom) and hands it to emit.
func newDotWriter(buf []byte, stuff bool, emit func([]byte, bool) error) *dotWriter {
	if cap(buf) < chunkHead+2*stepRoom {
		panic("relay: dotWriter buffer too small")
	}
	return &dotWriter{emit: emit, buf: buf[:chunkHead], stuff: stuff}
}

// flush hands the buffer to emit and starts an empty one.
func (d *dotWriter) flush(last bool) error {
	d.n += int64(len(d.buf) - chunkHead)
	if d.emit != nil {
		if err := d.emit(d.buf, last); err != nil {
			d.err = err
			return err
		}
	}
	d.buf = d.buf[:chunkHead]
	return nil
}

// Write consumes p entirely unless emit fails.
func (d *dotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	buf := d.buf
	// nextCR is the index of the next CR in p at or after i, or len(p):
	// one scan covers many lines, since most input has no CR or one per
	// line (CRLF), found again only once passed.
	nextCR := -1
	i := 0
	for i < len(p) {
		if d.cr {
			// The CRLF for this CR is out already: an LF right after it
			// is part of the same line end.
			d.cr = false
			if p[i] == '\n' {
				i++
				continue
			}
		}
		if cap(buf)-len(buf) < stepRoom {
			d.buf = buf
			if err := d.flush(false); err != nil {
				return i, err
			}
			buf = d.buf
		}
		c := p[i]
		if c == '\n' || c == '\r' {
			buf = append(buf, '\r', '\n')
			d.col = 0
			d.cr = c == '\r'
			i++
			continue
		}
		if d.col == maxLineText {
			buf = append(buf, '\r', '\n')
			d.col = 0
		}
		if d.col == 0 && c == '.' {
			if d.stuff {
				buf = append(buf, '.')
				d.stuffed++
			}
			d.col++ // with BDAT too: the break falls where DATA puts it
		}
		// The text up to the next line end, at most what fits on the line.
		end := min(len(p), i+maxLineText-d.col)
		j := end
		if k := bytes.IndexByte(p[i:end], '\n'); k >= 0 {
			j = i + k
		}
		if nextCR < i {
			nextCR = len(p)
			if k := bytes.IndexByte(p[i:], '\r'); k >= 0 {
				nextCR = i + k
			}
		}
		j = min(j, nextCR)
		buf = append(buf, p[i:j]...)
		d.col += j - i
		i = j
		if i < len(p) && p[i] == '\n' {
			// The common line end, taken here to save a turn of the loop.
			buf = append(buf, '\r', '\n')
			d.col = 0
			i++
		}
	}
	d.buf = buf
	return len(p), nil
}

// ReadFrom encodes everything r holds. A failure of r comes back as a
// *readError, to tell it from a failure of emit.
func (d *dotWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := inBufs.Get().(*[]byte)
	defer inBufs.Put(bp)
	in := *bp
	var total int64
	for {
		n, err := r.Read(in)
		if n > 0 {
			total += int64(n)
			if _, werr := d.Write(in[:n]); werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, &readError{err}
		}
	}
}

// Close ends the message: the final CRLF when missing and, for DATA, the
// ".\r\n" terminator. It hands the rest of the buffer to emit as the last.
func (d *dotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	d.cr = false
	if d.col != 0 {
		d.buf = append(d.buf, '\r', '\n')
		d.col = 0
	}
	if !d.stuff {
		return d.flush(true)
	}
	body := d.n + int64(len(d.buf)-chunkHead)
	d.buf = append(d.buf, ".\r\n"...)
	err := d.flush(true)
	d.n = body
	return err
}

// readError marks a failure of the message reader, as opposed to the
// connection.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }
