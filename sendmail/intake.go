package sendmail

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrData is wrapped by every error about the message content (an
// oversized header block, an unparsable address), so that main can map
// them all to EX_DATAERR (65) with errors.Is.
var ErrData = errors.New("bad message")

func dataErrorf(format string, args ...any) error { return classErrorf(ErrData, format, args...) }

// DefaultMaxHeaderBytes bounds the header block kept in memory when
// IntakeOptions.MaxHeaderBytes is 0. Real header blocks are a few kB;
// the bound only stops a runaway input from exhausting memory.
const DefaultMaxHeaderBytes = 1 << 20

// readBufSize is the buffer the intake reads lines through: a body line
// longer than this passes through in pieces and is never held whole.
const readBufSize = 64 << 10

// copyBufSize is what one read asks for once nothing in the body is
// special any more (-i): a 100 MB body costs a few hundred reads and as
// many writes to the spool, not thousands.
const copyBufSize = 256 << 10

// IntakeOptions says how ReadMessage treats its input.
type IntakeOptions struct {
	IgnoreDots     bool // -i: a line holding only "." is ordinary text
	MaxHeaderBytes int  // 0 = DefaultMaxHeaderBytes; a larger header block is an ErrData error (after draining input)
}

// IntakeStats describes the message as read, for the envelope (8BITMIME)
// and the log.
type IntakeStats struct {
	HeaderBytes, BodyBytes int64 // octets kept in the header block and written to the body
	EightBit               bool  // any octet >= 0x80 anywhere (header or body)
	HasNUL                 bool  // a NUL octet was seen (passed on, noted for the log)
	LoneDot                bool  // the message was ended by a lone "." line (no -i)
}

// ReadMessage reads one message from r as a stream and always to its
// end, so that a caller writing into a pipe never dies of SIGPIPE: after
// an error and after a lone-dot end the rest is read and discarded. It
// never seeks (stdin may be a pipe, a socket or a deleted file).
//
// A leading mbox "From " line is dropped. The header block is kept in
// memory as raw fields (at most MaxHeaderBytes); the body is copied to
// body (nil: discarded) as it arrives, through one fixed buffer, so
// memory does not grow with the body or with its longest line.
//
// A header field is a line "name:" (name: printable ASCII other than ':'
// and space; white space before the colon, RFC 5322 §4.5.8, is allowed)
// followed by continuation lines that start with SP or HTAB. The block
// ends at the first empty line (kept as Header.Separator), or at the
// first line that is none of these, which becomes the first body line
// (as Postfix does; Separator is then nil). Input that ends inside the
// header block is a message with an empty body.
//
// Without IgnoreDots, a line holding only "." (LF or CRLF ended) ends the
// message and a line starting with ".." loses its first dot (sendmail 8;
// Symfony and SwiftMailer dot-stuff and rely on it), in the header block
// as well as in the body. Line endings are passed through untouched
// (LF, CRLF, mixed, lone CR): the relay's wire writer normalises them. In
// the header block a lone CR ends a line as the wire writer will make it
// do (SPEC §3); in the body it matters only on the wire.
// NUL octets and invalid UTF-8 are passed on too.
//
// Errors wrap ErrData for an oversized header block; a read error or an
// error from body is returned as it is, with context.
func ReadMessage(r io.Reader, o IntakeOptions, body io.Writer) (*Header, IntakeStats, error) {
	if body == nil {
		body = io.Discard
	}
	in := &intake{
		br:         bufio.NewReaderSize(r, readBufSize),
		ignoreDots: o.IgnoreDots,
		max:        int64(o.MaxHeaderBytes),
		body:       body,
		h:          &Header{},
	}
	if in.max <= 0 {
		in.max = DefaultMaxHeaderBytes
	}
	err := in.run()
	if err != nil {
		return nil, in.stats, err
	}
	return in.h, in.stats, nil
}

// intake is the state of one ReadMessage call.
type intake struct {
	br         *bufio.Reader
	ignoreDots bool
	max        int64
	body       io.Writer
	werr       error // first error from body; reading goes on regardless
	h          *Header
	cur        *Field // the field the next continuation belongs to
	crEnded    bool   // the last header fragment ended in a CR (a line end)
	stats      IntakeStats
}

func (in *intake) run() error {
	inHeader := true
	lineStart := true
	first := true
	for {
		frag, rerr := in.br.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			rerr = nil
		}
		if len(frag) > 0 {
			if lineStart && first {
				first = false
				if bytes.HasPrefix(frag, []byte("From ")) {
					if err := in.skipLine(frag, rerr); err != nil {
						return err
					}
					continue
				}
			}
			if lineStart && !in.ignoreDots {
				if isLoneDot(frag) {
					in.stats.LoneDot = true
					return in.finish(in.drain())
				}
				if len(frag) >= 2 && frag[0] == '.' && frag[1] == '.' {
					frag = frag[1:]
				}
			}
			if inHeader {
				var err error
				inHeader, err = in.headerFrag(frag, lineStart)
				if err != nil {
					in.drain()
					return err
				}
			} else {
				in.write(frag)
				if in.ignoreDots && rerr == nil {
					// With -i nothing in the body is special: copy the
					// rest in large chunks instead of line by line.
					return in.finish(in.copyRest())
				}
			}
			last := frag[len(frag)-1]
			lineStart = last == '\n'
			in.crEnded = inHeader && last == '\r'
		}
		if rerr == io.EOF {
			return in.finish(nil)
		}
		if rerr != nil {
			return fmt.Errorf("reading message: %w", rerr)
		}
	}
}

// headerFrag files frag into the header block line by line, where a
// lone CR ends a line as LF and CRLF do (SPEC §3): the relay's wire
// writer turns it into CRLF, so the smarthost sees a line end there, and
// relaymail must see the same fields it does (a "Bcc:" after a lone CR
// is a field to remove, not part of the Subject). What follows the end
// of the block goes to the body. It reports whether the block goes on.
func (in *intake) headerFrag(frag []byte, lineStart bool) (bool, error) {
	if in.crEnded {
		// The last fragment ended in a CR: the line has ended, and an LF
		// here completes its CRLF.
		in.crEnded = false
		lineStart = true
		if frag[0] == '\n' {
			if in.cur != nil {
				if err := in.keep(frag[:1]); err != nil {
					return false, err
				}
				in.cur.Raw = append(in.cur.Raw, '\n')
			} else if in.h.Separator != nil {
				in.h.Separator = append(in.h.Separator, '\n')
			}
			frag = frag[1:]
		}
	}
	for len(frag) > 0 {
		n := loneCREnd(frag)
		more, err := in.header(frag[:n], lineStart)
		if err != nil {
			return false, err
		}
		if !more {
			in.write(frag[n:])
			return false, nil
		}
		frag, lineStart = frag[n:], true
	}
	return true, nil
}

// loneCREnd returns the length of the first line in frag when a lone CR
// (one followed by anything but LF) ends it, else len(frag).
func loneCREnd(frag []byte) int {
	for off := 0; off < len(frag); {
		i := bytes.IndexByte(frag[off:], '\r')
		if i < 0 {
			break
		}
		i += off
		if i+1 < len(frag) && frag[i+1] != '\n' {
			return i + 1
		}
		off = i + 1
	}
	return len(frag)
}

// header files frag, a piece of a line (the whole line unless it is
// longer than the buffer), into the header block, and reports whether
// the block goes on after it.
func (in *intake) header(frag []byte, lineStart bool) (bool, error) {
	switch {
	case lineStart && isEmptyLine(frag):
		if err := in.keep(frag); err != nil {
			return false, err
		}
		in.h.Separator = bytes.Clone(frag)
		return false, nil
	case in.cur != nil && (!lineStart || isWSP(frag[0])):
		// The rest of a long line, or a continuation line.
		if err := in.keep(frag); err != nil {
			return false, err
		}
		in.cur.Raw = append(in.cur.Raw, frag...)
		return true, nil
	}
	name, ok := fieldName(frag)
	if !ok {
		// Not a header field: the body starts here, without a separator.
		in.write(frag)
		return false, nil
	}
	if err := in.keep(frag); err != nil {
		return false, err
	}
	in.cur = &Field{Name: string(name), Raw: bytes.Clone(frag)}
	in.h.Fields = append(in.h.Fields, in.cur)
	return true, nil
}

// keep accounts for frag as header bytes, within the limit.
func (in *intake) keep(frag []byte) error {
	if in.stats.HeaderBytes+int64(len(frag)) > in.max {
		return dataErrorf("message header block exceeds %s", sizeString(in.max))
	}
	in.stats.HeaderBytes += int64(len(frag))
	in.scan(frag)
	return nil
}

// write passes frag on to the body, unless body has failed already.
func (in *intake) write(frag []byte) {
	in.stats.BodyBytes += int64(len(frag))
	in.scan(frag)
	if in.werr != nil {
		return
	}
	if _, err := in.body.Write(frag); err != nil {
		in.werr = err
	}
}

func (in *intake) scan(b []byte) {
	if !in.stats.EightBit && hasHighBit(b) {
		in.stats.EightBit = true
	}
	if !in.stats.HasNUL && bytes.IndexByte(b, 0) >= 0 {
		in.stats.HasNUL = true
	}
}

// hasHighBit reports whether b holds an octet >= 0x80, eight at a time.
func hasHighBit(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// copyRest passes the rest of the input to the body as it comes.
func (in *intake) copyRest() error {
	buf := make([]byte, copyBufSize)
	for {
		n, err := in.br.Read(buf)
		if n > 0 {
			in.write(buf[:n])
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading message: %w", err)
		}
	}
}

// skipLine discards the rest of the line that frag starts (an mbox
// "From " line).
func (in *intake) skipLine(frag []byte, rerr error) error {
	for rerr == nil && !bytes.HasSuffix(frag, lf) {
		frag, rerr = in.br.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			rerr = nil
		}
	}
	if rerr != nil && rerr != io.EOF {
		return fmt.Errorf("reading message: %w", rerr)
	}
	return nil
}

// drain reads the rest of the input and throws it away.
func (in *intake) drain() error {
	if _, err := io.Copy(io.Discard, in.br); err != nil {
		return fmt.Errorf("reading message: %w", err)
	}
	return nil
}

// finish reports a read error first, then a body write error.
func (in *intake) finish(rerr error) error {
	if rerr != nil {
		return rerr
	}
	if in.werr != nil {
		return fmt.Errorf("storing message body: %w", in.werr)
	}
	return nil
}

// isLoneDot reports whether line is "." ended by LF or CRLF.
func isLoneDot(line []byte) bool {
	return string(line) == ".\n" || string(line) == ".\r\n"
}

func isEmptyLine(line []byte) bool {
	return string(line) == "\n" || string(line) == "\r\n" || string(line) == "\r"
}

// fieldName returns the name of the header field that line starts, if it
// starts one: 1+ printable ASCII octets other than ':', optional SP/HTAB
// (obsolete syntax), then ':'.
func fieldName(line []byte) ([]byte, bool) {
	i := 0
	for i < len(line) && line[i] >= 33 && line[i] <= 126 && line[i] != ':' {
		i++
	}
	if i == 0 {
		return nil, false
	}
	j := i
	for j < len(line) && isWSP(line[j]) {
		j++
	}
	if j >= len(line) || line[j] != ':' {
		return nil, false
	}
	return line[:i], true
}

// sizeString writes n octets the way people say them ("1 MiB").
func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d octets", n)
}
