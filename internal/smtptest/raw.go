package smtptest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawDeadline bounds every connection of a raw server, so a handler waiting
// on a client that never writes cannot outlive the test by much.
const rawDeadline = 30 * time.Second

// StartRaw runs a scripted fake on 127.0.0.1 for replies go-smtp cannot
// produce (a 421 greeting, malformed or truncated replies, bytes after the
// 220 to STARTTLS). Each accepted connection is passed to handle in its own
// goroutine with a 30s deadline and closed when handle returns. Cleanup
// closes the listener, gives handlers 2s to finish, then closes any open
// connection and waits (bounded) for them. Script builds a handler from steps.
func StartRaw(t testing.TB, handle func(c net.Conn)) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: raw listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(rawDeadline))
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		// Let handlers finish with clients that are closing, then force.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		if waitChan(done, leakWait) {
			return
		}
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		if !waitChan(done, shutdownWait) {
			t.Errorf("smtptest: raw handlers still running %v after the test ended", shutdownWait)
		}
	})
	return ln.Addr().String()
}

// RawConn is a line-oriented view of a raw server's connection, for handlers
// written by hand.
type RawConn struct {
	net.Conn
	r *bufio.Reader
}

// NewRawConn wraps c for line reads and writes.
func NewRawConn(c net.Conn) *RawConn { return &RawConn{Conn: c, r: bufio.NewReader(c)} }

// ReadLine reads one line and returns it without the CR LF.
func (c *RawConn) ReadLine() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), nil
}

// WriteLine writes s followed by CR LF.
func (c *RawConn) WriteLine(s string) error {
	_, err := io.WriteString(c.Conn, s+"\r\n")
	return err
}

// ReadData reads a DATA body up to and including the lone "." line and
// returns it still dot-stuffed, without the terminator.
func (c *RawConn) ReadData() (string, error) {
	var b strings.Builder
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		if s == ".\r\n" {
			return b.String(), nil
		}
		b.WriteString(s)
	}
}

// Buffered reports how many bytes the client has sent that were read from
// the socket but not consumed, e.g. to check nothing follows STARTTLS.
func (c *RawConn) Buffered() int { return c.r.Buffered() }

// StartTLS performs the server side of a TLS handshake on the connection,
// discarding anything buffered before it as RFC 3207 section 4.2 requires.
func (c *RawConn) StartTLS(cfg *tls.Config) error {
	tc := tls.Server(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	c.r = bufio.NewReader(tc)
	return nil
}

// Step is one action of a Script.
type Step func(c *RawConn) error

// Script returns a StartRaw handler that runs steps in order on every
// connection. The first failing step is reported with t.Errorf (a client
// closing early counts as a failure only if a later step needed it) and ends
// the script.
func Script(t testing.TB, steps ...Step) func(net.Conn) {
	return func(nc net.Conn) {
		c := NewRawConn(nc)
		for i, st := range steps {
			if err := st(c); err != nil {
				t.Errorf("smtptest: script step %d: %v", i+1, err)
				return
			}
		}
	}
}

// Send writes text as is; use "\r\n" line ends. Several reply lines, garbage,
// or a reply without its line end are all fair.
func Send(text string) Step {
	return func(c *RawConn) error {
		_, err := io.WriteString(c.Conn, text)
		return err
	}
}

// Expect reads one line and requires it to start with prefix, compared
// without regard to case ("EHLO ", "MAIL FROM:<a@x>").
func Expect(prefix string) Step {
	return func(c *RawConn) error {
		line, err := c.ReadLine()
		if err != nil {
			return fmt.Errorf("want %q: %w", prefix, err)
		}
		if !strings.HasPrefix(strings.ToUpper(line), strings.ToUpper(prefix)) {
			return fmt.Errorf("got %q, want prefix %q", line, prefix)
		}
		return nil
	}
}

// ExpectData reads a DATA body through its terminating "." line.
func ExpectData() Step {
	return func(c *RawConn) error {
		_, err := c.ReadData()
		return err
	}
}

// ExpectClose requires the client to close the connection within d without
// sending anything more.
func ExpectClose(d time.Duration) Step {
	return func(c *RawConn) error {
		c.SetReadDeadline(time.Now().Add(d))
		line, err := c.ReadLine()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("want close: %w", err)
		}
		return fmt.Errorf("want close, got %q", line)
	}
}

// Sleep pauses, e.g. to stall a reply past the client's timeout.
func Sleep(d time.Duration) Step {
	return func(*RawConn) error {
		time.Sleep(d)
		return nil
	}
}

// UpgradeTLS performs the server side of a TLS handshake with cfg.
func UpgradeTLS(cfg *tls.Config) Step {
	return func(c *RawConn) error { return c.StartTLS(cfg) }
}
