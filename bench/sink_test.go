package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink is a minimal plaintext SMTP server that accepts any envelope and
// throws the message away, scanning for the end-of-data line a buffered
// line at a time. It exists for the throughput table only: go-smtp's
// DATA reader goes byte by byte and the fake smarthost keeps every
// message, which caps intake far below loopback TCP, so against it a
// client's own speed cannot be seen. Functional checks stay with
// internal/smtptest.
type sink struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	msgs []sinkMsg
}

// sinkMsg is what the sink remembers of one accepted message.
type sinkMsg struct {
	rcpts []string
	bytes int64 // data bytes on the wire, terminating "." line excluded
}

// startSink listens on 127.0.0.1 and stops when the test or benchmark ends.
func startSink(tb testing.TB) *sink {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &sink{ln: ln}
	s.wg.Add(1)
	go s.serve()
	tb.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sink) Addr() string { return s.ln.Addr().String() }

func (s *sink) messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMsg(nil), s.msgs...)
}

func (s *sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.session(c)
		}()
	}
}

// sinkTimeout bounds each command and each whole DATA transfer.
const sinkTimeout = 5 * time.Minute

// errLineTooLong ends a session whose command line overflows the buffer.
var errLineTooLong = errors.New("bench: sink: command line too long")

func (s *sink) session(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(c)
	reply := func(text string) error {
		w.WriteString(text)
		// Answer a pipelined group in one write, once its last command
		// has been read, as a pipelining server should.
		if r.Buffered() == 0 {
			return w.Flush()
		}
		return nil
	}
	deadline := func() { c.SetDeadline(time.Now().Add(sinkTimeout)) }
	deadline()
	if err := reply("220 sink ESMTP\r\n"); err != nil {
		return err
	}
	var rcpts []string
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return errLineTooLong
		}
		if err != nil {
			return err
		}
		cmd := strings.ToUpper(strings.TrimSpace(string(line)))
		verb, _, _ := strings.Cut(cmd, " ")
		switch verb {
		case "EHLO":
			err = reply("250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE\r\n")
		case "HELO", "NOOP", "RSET":
			rcpts = nil
			err = reply("250 ok\r\n")
		case "MAIL":
			rcpts = nil
			err = reply("250 ok\r\n")
		case "RCPT":
			path, ok := strings.CutPrefix(cmd, "RCPT TO:")
			fields := strings.Fields(path)
			if !ok || len(fields) == 0 {
				err = reply("501 syntax: RCPT TO:<address>\r\n")
				break
			}
			rcpts = append(rcpts, strings.ToLower(strings.Trim(fields[0], "<>")))
			err = reply("250 ok\r\n")
		case "DATA":
			if len(rcpts) == 0 {
				err = reply("554 no valid recipients\r\n")
				break
			}
			if err = reply("354 go ahead\r\n"); err != nil {
				return err
			}
			w.Flush()
			deadline()
			var n int64
			if n, err = discardData(r); err != nil {
				return err
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, sinkMsg{rcpts: rcpts, bytes: n})
			s.mu.Unlock()
			rcpts = nil
			err = reply("250 ok\r\n")
		case "QUIT":
			reply("221 bye\r\n")
			return w.Flush()
		default:
			err = reply("502 not implemented\r\n")
		}
		if err != nil {
			return err
		}
	}
}

// discardData reads DATA up to and including the lone "." line and
// returns how many bytes came before it. A line longer than the buffer
// arrives in pieces; only a piece that starts a line can end the data.
func discardData(r *bufio.Reader) (int64, error) {
	var n int64
	lineStart := true
	for {
		piece, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		if lineStart && bytes.Equal(piece, []byte(".\r\n")) {
			return n, nil
		}
		n += int64(len(piece))
		lineStart = err == nil // ErrBufferFull: the line goes on
	}
}

func TestSinkDiscardData(t *testing.T) {
	long := strings.Repeat("x", 70<<10) + "\r\n"
	tests := []struct {
		name string
		in   string
		want int64
		err  bool
	}{
		{"empty", ".\r\n", 0, false},
		{"lines", "a\r\nb\r\n.\r\nafter", 6, false},
		{"stuffed dot is data", "..\r\n.x\r\n.\r\n", 8, false},
		{"dot at end of long line is not the end", long[:len(long)-2] + ".\r\nz\r\n.\r\n", int64(len(long) + 1 + 3), false},
		{"long line", long + ".\r\n", int64(len(long)), false},
		{"eof before end", "abc\r\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 64<<10)
			n, err := discardData(r)
			if tt.err {
				if err == nil {
					t.Fatalf("discardData = %d, nil; want an error", n)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("discardData = %d, %v; want %d, nil", n, err, tt.want)
			}
		})
	}
}

func TestSinkSession(t *testing.T) {
	s := startSink(t)
	c, err := net.DialTimeout("tcp", s.Addr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(c)
	if err := expectReply(r, 220); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "EHLO t\r\n")
	if err := expectReply(r, 250); err != nil {
		t.Fatal(err)
	}
	// One pipelined group, then the body and QUIT in one write.
	io.WriteString(c, "MAIL FROM:<a@x>\r\nRCPT TO:<B@Y> NOTIFY=NEVER\r\nRCPT TO:<c@z>\r\nDATA\r\n")
	for _, code := range []int{250, 250, 250, 354} {
		if err := expectReply(r, code); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(c, "Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
	for _, code := range []int{250, 221} {
		if err := expectReply(r, code); err != nil {
			t.Fatal(err)
		}
	}
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink holds %d messages, want 1", len(msgs))
	}
	if got := strings.Join(msgs[0].rcpts, ","); got != "b@y,c@z" || msgs[0].bytes != 21 {
		t.Fatalf("sink got rcpts %q, %d bytes; want b@y,c@z, 21", got, msgs[0].bytes)
	}
}

// expectReply reads one possibly multi-line reply and checks its code.
func expectReply(r *bufio.Reader, want int) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 {
			return fmt.Errorf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code != want {
			return fmt.Errorf("reply %q, want %d", strings.TrimSpace(line), want)
		}
		if line[3] == ' ' {
			return nil
		}
	}
}
