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
	if err := d.Close(); err != nil {
		return 0, fmt.Errorf("relay: measuring the message: %w", err)
	}
	return d.n - d.stuffed, nil
}
