package relay

import (
	"fmt"
	"io"
)

// WriteData writes msg to w exactly as Send puts it on the wire after
// DATA: CRLF line endings, dot-stuffed, long lines broken, ended with
// ".\r\n". relaymail --dry-run shows a message this way, so what it
// prints is what the smarthost would get (with BDAT, the same without
// the stuffed dots and the terminator).
func WriteData(w io.Writer, msg io.Reader) error {
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	d := newDotWriter(*bp, true, func(b []byte, _ bool) error {
		_, err := w.Write(b[chunkHead:])
		return err
	})
	if _, err := d.ReadFrom(msg); err != nil {
		return err
	}
	return d.Close()
}

// WireSize returns the size of msg as RFC 1870 §3 counts it for SIZE=:
// the octets Send puts on the wire after DATA (CRLF line ends, long
// lines broken, a missing final CRLF supplied), without the dots added
// in front of lines and without the terminating ".\r\n"; with BDAT, the
// sum of the chunks. The octets read are fewer whenever a line ends in a
// bare LF or CR; declaring those would let a message the server's limit
// refuses pass the check before DATA and fail only after it was sent
// whole. It runs the encoder Send uses, only counting its output.
func WireSize(msg io.Reader) (int64, error) {
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	d := newDotWriter((*bp)[:0:chunkHead+countSize], true, nil)
	if _, err := d.ReadFrom(msg); err != nil {
		return 0, fmt.Errorf("relay: measuring the message: %w", err)
	}
	return d.pending(), nil // the count WireCounter gives too
}

// WireCounter is WireSize for a body that arrives in pieces: the intake
// writes each piece to it as it spools it, so that the size is known
// when the message is, and Deliver does not read a large body once more
// before MAIL only to measure it. It runs the encoder Send uses, only
// counting, from the start of a line.
type WireCounter struct {
	d   dotWriter
	buf [counterSize]byte
}

// counterSize is a WireCounter's buffer, which it fills and throws away:
// small, since a process that sends one short message pays for it.
const counterSize = 4 << 10

// NewWireCounter returns a counter that has seen nothing yet.
func NewWireCounter() *WireCounter {
	c := &WireCounter{}
	c.d = *newDotWriter(c.buf[:chunkHead], true, nil)
	return c
}

// Write counts p; it never fails.
func (c *WireCounter) Write(p []byte) (int, error) { return c.d.Write(p) }

// SizeAfter returns WireSize of head followed by everything written to c,
// as if read whole, and ends the count (c takes no more writes). ok is
// false when head leaves the encoder inside a line (no final line end) or
// after a CR whose LF may still come: c counted from the start of a line,
// so its count does not add up then, and WireSize must read the whole
// message (a header block ends in a line end; a lone CR there is rare).
func (c *WireCounter) SizeAfter(head []byte) (n int64, ok bool) {
	body := c.d.pending()
	c.d = *newDotWriter(c.buf[:chunkHead], true, nil) // the same buffer, counting the head now
	c.d.Write(head)
	if c.d.col != 0 || c.d.cr {
		return 0, false
	}
	return c.d.pending() + body, true
}

// pending is the size Close would report, without closing: the octets
// counted, less the stuffed dots, plus the CRLF Close supplies to a last
// line without one.
func (d *dotWriter) pending() int64 {
	n := d.n + int64(len(d.buf)-chunkHead) - d.stuffed
	if d.col != 0 {
		n += 2
	}
	return n
}
