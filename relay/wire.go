package relay

import (
	"bufio"
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
