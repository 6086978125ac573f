package smtptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// trackListener wraps the TCP listener so that every accepted connection is
// counted and can be closed by Server.Close, even one go-smtp never saw.
type trackListener struct {
	net.Listener
	s *Server
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.sessions++
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

// trackConn is one accepted TCP connection; closing it removes it from the
// server's open set exactly once.
type trackConn struct {
	net.Conn
	s    *Server
	once sync.Once
	err  error
}

func (c *trackConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.err
}

// rawConn finds the TCP connection under the wrappers of this package and
// crypto/tls, so that a drop skips TLS close_notify like a real reset.
func rawConn(c net.Conn) net.Conn {
	for {
		switch v := c.(type) {
		case *filterConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return c
		}
	}
}

// gateListener sits directly under go-smtp and diverts connections that must
// not be served normally: held ones (Hang) and refused ones (SetGreetingErr).
type gateListener struct {
	net.Listener
	s *Server
}

func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		hang, greetErr := l.s.hang, l.s.greetErr
		l.s.mu.Unlock()
		switch {
		case hang:
			l.s.hold(rawConn(c))
		case greetErr != nil:
			l.s.aux.Add(1)
			go func() {
				defer l.s.aux.Done()
				l.s.refuse(c, greetErr)
			}()
		case l.s.filter:
			return &filterConn{Conn: c, drop8bit: l.s.opts.No8BitMIME, dropPipe: l.s.opts.NoPipelining}, nil
		default:
			return c, nil
		}
	}
}

// hold keeps c open without a greeting, reading and discarding what the
// client sends so that its close is noticed and counted.
func (s *Server) hold(c net.Conn) {
	s.aux.Add(1)
	go func() {
		defer s.aux.Done()
		defer c.Close()
		io.Copy(io.Discard, c)
	}()
}

// refuse sends the injected greeting error. After a 421 it closes at once;
// otherwise it answers 503 to everything until QUIT (RFC 5321 3.1, 4.3.1).
func (s *Server) refuse(c net.Conn, e *smtp.SMTPError) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.opts.ReadTimeout))
	if _, err := io.WriteString(c, formatReply(e.Code, e.EnhancedCode, e.Message)); err != nil || e.Code == 421 {
		return
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(s.opts.ReadTimeout))
		if strings.EqualFold(strings.TrimSpace(line), "QUIT") {
			io.WriteString(c, "221 2.0.0 Bye\r\n")
			return
		}
		if _, err := io.WriteString(c, "503 5.5.1 No service here, only QUIT\r\n"); err != nil {
			return
		}
	}
}

// formatReply renders a possibly multi-line reply, the last line carrying the
// enhanced code unless it is unset.
func formatReply(code int, ec smtp.EnhancedCode, msg string) string {
	lines := strings.Split(msg, "\n")
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
			if ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
				l = fmt.Sprintf("%d.%d.%d %s", ec[0], ec[1], ec[2], l)
			}
		}
		fmt.Fprintf(&b, "%d%s%s\r\n", code, sep, l)
	}
	return b.String()
}

// filterConn removes capabilities from go-smtp's EHLO reply, which it cannot
// be told to omit. go-smtp writes and flushes one reply line per Write, but
// the filter also copes with several lines in one Write.
type filterConn struct {
	net.Conn
	drop8bit bool
	dropPipe bool
}

func (c *filterConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("250-")) {
		return c.Conn.Write(p)
	}
	var out []byte
	rest := p
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i+2], rest[i+2:]
		}
		cap := strings.ToUpper(strings.TrimSpace(string(line[min(4, len(line)):])))
		if len(line) > 4 && bytes.HasPrefix(line, []byte("250-")) && (c.drop8bit && cap == "8BITMIME" || c.dropPipe && cap == "PIPELINING") {
			continue
		}
		out = append(out, line...)
	}
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
