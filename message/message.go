package message

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"time"
)

// Envelope is what goes into MAIL FROM and RCPT TO, plus the facts needed
// to choose extension parameters honestly. The JSON names are those of
// the queue's env file (queue/doc.go), which stores it as it is.
type Envelope struct {
	From     string   `json:"sender"`              // reverse-path; "" is the null sender <>
	To       []string `json:"recipients"`          // forward-paths, in order
	Size     int64    `json:"-"`                   // octets as transmitted (relay.WireSize), for SIZE=; 0: unknown
	EightBit bool     `json:"eight_bit,omitempty"` // 8-bit content or -B8BITMIME: BODY=8BITMIME when offered
	Notify   []string `json:"notify,omitempty"`    // DSN NOTIFY values ("SUCCESS", "DELAY", "FAILURE" or "NEVER"); nil: none
	Ret      string   `json:"ret,omitempty"`       // DSN RET: "FULL", "HDRS" or ""
	EnvID    string   `json:"env_id,omitempty"`    // DSN ENVID; "": none (xtext-encoded on the wire)
}

// Body is a message body as relaymail holds it (in memory, in a spill
// file, in the queue): written once, then read any number of times from
// any offset.
type Body interface {
	io.ReaderAt
	Size() int64
}

// SpillFile is where a body goes once it outgrows memory: an unlinked
// temporary file, or a body file of the queue (queue.Queue.NewBody), so
// that a message that ends up queued is written to disk once.
type SpillFile interface {
	io.Writer
	io.ReaderAt
	io.Closer
}

// Spilled is a Body that may live in a SpillFile (sendmail's Spool). The
// side that made the file is the side that commits it: the queue links a
// body file of its own into place instead of copying it.
type Spilled interface {
	Body
	// Spilled is the file holding the body, or nil while it is in memory.
	Spilled() SpillFile
	// Flush writes out what is buffered for the file; call it before
	// using the file directly.
	Flush() error
}

// Message is one message: its id, its envelope and its content, the
// header block as it will be sent and the body as read.
type Message struct {
	ID string // relaymail's id, in every log line; the queue id once queued
	Envelope
	Head []byte // the header block, blank line included
	Body Body
}

// Content returns the message as it will be sent, readable any number of
// times from any offset.
func (m *Message) Content() io.ReaderAt { return Content(m.Head, m.Body) }

// Size is the length of Content in octets.
func (m *Message) Size() int64 { return int64(len(m.Head)) + m.Body.Size() }

// idEncoding is Crockford's base32 alphabet: digits and upper-case
// letters that sort in byte order, without I, L, O, U.
var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns a fresh message id: the time in microseconds (so that
// ids sort by age) and 40 random bits, 20 characters of [0-9A-Z]. Ids
// made by different processes at the same microsecond still differ, and
// the queue refuses to reuse one that exists.
func NewID(now time.Time) string {
	var b [12]byte
	us := uint64(now.UnixMicro())
	for i := 6; i >= 0; i-- {
		b[i] = byte(us)
		us >>= 8
	}
	rand.Read(b[7:])
	return idEncoding.EncodeToString(b[:])
}

// Content presents a message kept as a header block and a body (in the
// queue, or spooled while relaymail reads it) as one io.ReaderAt, so it
// can be sent, sent again to a fallback or saved without being copied.
func Content(head []byte, body io.ReaderAt) io.ReaderAt { return concatReaderAt{head, body} }

type concatReaderAt struct {
	head []byte
	body io.ReaderAt
}

func (c concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("message: negative offset")
	}
	n := 0
	if off < int64(len(c.head)) {
		n = copy(p, c.head[off:])
		if n == len(p) {
			return n, nil
		}
		off = 0
	} else {
		off -= int64(len(c.head))
	}
	m, err := c.body.ReadAt(p[n:], off)
	return n + m, err
}
