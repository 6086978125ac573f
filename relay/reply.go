package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Bounds on what a server may send in one reply. RFC 5321 §4.5.3.1.5 allows
// 512 octets per reply line; we are generous but finite, so a broken or
// hostile server cannot make the client buffer without limit.
const (
	maxReplyLine  = 2048 // octets, CRLF included
	maxReplyLines = 100  // lines in one multi-line reply
)

// Reply is one complete SMTP reply.
type Reply struct {
	Code     int      // three-digit reply code
	Enhanced string   // RFC 3463 enhanced status code from the first line ("2.1.5"), or ""
	Lines    []string // the text of each line, without the code and without the enhanced code
}

// String renders the reply as one line for logs: "250 2.0.0 ok; queued as X".
func (r *Reply) String() string {
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if len(r.Lines) > 0 {
		s += " " + strings.Join(r.Lines, "; ")
	}
	return s
}

// errMalformed is the cause inside a protocol error about a reply's shape.
var errMalformed = errors.New("malformed reply")

// replyReader reads replies from br, reporting each raw line to trace.
type replyReader struct {
	br    *bufio.Reader
	trace func(line string)
}

// readLine returns one line without its line ending. A line longer than
// maxReplyLine is a protocol error (errMalformed); I/O errors are returned
// as they are (io.EOF in the middle of a line becomes io.ErrUnexpectedEOF).
func (rr *replyReader) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := rr.br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxReplyLine {
			return "", fmt.Errorf("%w: line longer than %d octets", errMalformed, maxReplyLine)
		}
		buf = append(buf, chunk...)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(buf) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}

// read reads one complete (possibly multi-line) reply. Errors are either
// I/O errors from the connection or wrap errMalformed.
func (rr *replyReader) read() (*Reply, error) {
	r := &Reply{}
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return nil, fmt.Errorf("%w: more than %d lines", errMalformed, maxReplyLines)
		}
		line, err := rr.readLine()
		if err != nil {
			return nil, err
		}
		if rr.trace != nil {
			rr.trace(line)
		}
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			r.Code = code
		} else if code != r.Code {
			return nil, fmt.Errorf("%w: code %d in a reply that began with %d", errMalformed, code, r.Code)
		}
		r.Lines = append(r.Lines, text)
		if !more {
			break
		}
	}
	r.Enhanced = enhancedCode(r.Code, r.Lines[0])
	if r.Enhanced != "" {
		for i, l := range r.Lines {
			if rest, ok := strings.CutPrefix(l, r.Enhanced); ok && (rest == "" || rest[0] == ' ') {
				r.Lines[i] = strings.TrimPrefix(rest, " ")
			}
		}
	}
	return r, nil
}

// parseReplyLine splits "250-text" / "250 text" / "250". The code must be
// 2xx..5xx with a second digit 0..5 (RFC 5321 §4.2); anything else is
// malformed.
func parseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9' {
		return 0, false, "", fmt.Errorf("%w: %q", errMalformed, clip(line))
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case ' ':
		return code, false, line[4:], nil
	case '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", fmt.Errorf("%w: %q", errMalformed, clip(line))
}

// enhancedCode returns the RFC 3463 status code at the start of text when it
// looks like one ("class.subject.detail", class matching the reply code's
// first digit, subject and detail 1-3 digits, then a space or the end).
// Servers that do not advertise ENHANCEDSTATUSCODES sometimes send them
// anyway, so the shape decides, not the EHLO keyword.
func enhancedCode(code int, text string) string {
	if code < 200 || code >= 600 || code/100 == 3 {
		return ""
	}
	tok, _, _ := strings.Cut(text, " ")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return tok
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
