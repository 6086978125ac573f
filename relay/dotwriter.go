package relay

import (
	"bufio"
	"bytes"
)

// maxLineText is the longest line the writer emits, in octets without CRLF
// (RFC 5321 §4.5.3.1.6: 1000 including CRLF).
const maxLineText = 998

// dotWriter streams a message into the DATA phase (RFC 5321 §4.5.2):
//
//   - LF, CRLF and a lone CR each end a line and become CRLF: RFC 5321
//     §2.3.8 forbids a client to send CR or LF other than as CRLF, and a
//     server that reads a bare CR as a line end would otherwise take
//     "<CR>.<CR>" for the end of the data (SMTP smuggling);
//   - a line that starts with "." gets another "." in front (also one
//     that follows a lone CR);
//   - a line longer than 998 octets on the wire (a stuffed dot counts) is
//     broken by inserting CRLF after 998 octets and going on (what Postfix
//     does, so nothing is refused or lost; a continuation that starts with
//     "." is stuffed too);
//   - Close supplies the final CRLF when the input did not end with one,
//     then writes the terminating ".\r\n".
//
// It keeps only a few bytes of state, so memory does not grow with the
// message; output goes to a bufio.Writer of fixed size.
type dotWriter struct {
	w   *bufio.Writer
	col int   // octets written on the current output line
	cr  bool  // the last input octet was a CR: the line has ended, LF or not
	n   int64 // octets written, terminator excluded
	// stuffed counts the dots added in front of lines, which RFC 1870
	// leaves out of the message size.
	stuffed int64
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w} }

func (d *dotWriter) write(p []byte) error {
	n, err := d.w.Write(p)
	d.n += int64(n)
	return err
}

func (d *dotWriter) crlf() error {
	d.col = 0
	n, err := d.w.WriteString("\r\n")
	d.n += int64(n)
	return err
}

func (d *dotWriter) writeByte(b byte) error {
	if err := d.w.WriteByte(b); err != nil {
		return err
	}
	d.n++
	return nil
}

// Write consumes p entirely unless the underlying writer fails.
func (d *dotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if d.cr {
			// The CRLF for this CR is out already: an LF right after it
			// is part of the same line end.
			d.cr = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		switch p[0] {
		case '\r':
			d.cr = true
			if err := d.crlf(); err != nil {
				return total - len(p), err
			}
			p = p[1:]
			continue
		case '\n':
			if err := d.crlf(); err != nil {
				return total - len(p), err
			}
			p = p[1:]
			continue
		}
		if d.col == maxLineText {
			if err := d.crlf(); err != nil {
				return total - len(p), err
			}
		}
		if d.col == 0 && p[0] == '.' {
			if err := d.writeByte('.'); err != nil {
				return total - len(p), err
			}
			d.col++
			d.stuffed++
		}
		n := lineBreak(p)
		if room := maxLineText - d.col; n > room {
			n = room
		}
		if err := d.write(p[:n]); err != nil {
			return total - len(p), err
		}
		d.col += n
		p = p[n:]
	}
	return total, nil
}

// Close ends the message: the final CRLF when missing, and the ".\r\n"
// terminator. It does not flush.
func (d *dotWriter) Close() error {
	d.cr = false
	if d.col != 0 {
		if err := d.crlf(); err != nil {
			return err
		}
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// lineBreak returns the index of the first CR or LF in p, or len(p). Two
// IndexByte scans beat one IndexAny: both run many octets at a time.
func lineBreak(p []byte) int {
	n := bytes.IndexByte(p, '\n')
	if n < 0 {
		n = len(p)
	}
	if cr := bytes.IndexByte(p[:n], '\r'); cr >= 0 {
		return cr
	}
	return n
}
