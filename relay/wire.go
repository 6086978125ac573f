package relay

import (
	"bufio"
	"fmt"
	"io"
)

// WriteData writes msg to w exactly as Send puts it on the wire after
// DATA: CRLF line endings, dot-stuffed, long lines broken, ended with
// ".\r\n". relaymail --dry-run shows a message this way, so what it
// prints is what the smarthost would get.
func WriteData(w io.Writer, msg io.Reader) error {
	bw := bufio.NewWriter(w)
	d := newDotWriter(bw)
	if _, err := io.Copy(d, msg); err != nil {
		return err
	}
	if err := d.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// WireSize returns the size of msg as RFC 1870 §3 counts it for SIZE=:
// the octets Send puts on the wire after DATA (CRLF line ends, long
// lines broken, a missing final CRLF supplied), without the dots added
// in front of lines and without the terminating ".\r\n". The octets read
// are fewer whenever a line ends in a bare LF or CR; declaring those
// would let a message the server's limit refuses pass the check before
// DATA and fail only after it was sent whole.
func WireSize(msg io.Reader) (int64, error) {
	d := newDotWriter(bufio.NewWriterSize(io.Discard, 64<<10))
	if _, err := io.Copy(d, msg); err != nil {
		return 0, fmt.Errorf("relay: measuring the message: %w", err)
	}
	if err := d.Close(); err != nil {
		return 0, fmt.Errorf("relay: measuring the message: %w", err)
	}
	return d.n - d.stuffed, nil
}
