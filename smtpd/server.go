package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for the Server fields left zero. The timeouts are RFC 5321
// §4.5.3.2's: 5 minutes for a command, 3 minutes per data block, and the 10
// minutes a client waits for the reply to the final dot.
const (
	DefaultMaxMessageSize = 50 << 20 // 50 MiB, a common smarthost limit
	DefaultMaxRecipients  = 1000     // RFC 5321 §4.5.3.1.8 asks for at least 100
	DefaultMaxSessions    = 100
	DefaultMaxLineLength  = 1000 // octets per command line, CRLF included
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 3 * time.Minute
	DefaultHandlerTimeout = 10 * time.Minute
	// DefaultMessageTimeout bounds the whole of DATA, from the 354 to the
	// final dot: DataTimeout alone lets a client that sends a byte every
	// few minutes hold a session for ever. 10 minutes is 85 KB/s for a
	// message of DefaultMaxMessageSize, far below loopback speeds.
	DefaultMessageTimeout = 10 * time.Minute
	// DefaultSlotTimeout is how long a client over MaxSessions waits for a
	// free session before it is told 421 4.3.2: long enough to ride out a
	// burst (most clients do not retry after a 421), short enough that it
	// hears something before its own timeout (PHP's default is 60s).
	DefaultSlotTimeout = 30 * time.Second
)

// ErrServerClosed is what Serve returns after Shutdown, so that the caller
// can tell a requested stop from a failing listener.
var ErrServerClosed = errors.New("smtpd: server closed")

// Server is an SMTP server for one Handler. Fields left zero take the
// Default values; set them before the first Serve or ServeConn and do not
// change them afterwards. A Server may serve several listeners (the -bd
// default is one for 127.0.0.1 and one for ::1) and must not be copied
// after first use.
type Server struct {
	Hostname string  // in the greeting and EHLO; default "localhost"
	Handler  Handler // required

	// MaxMessageSize bounds a message in octets (after un-stuffing) and is
	// advertised as SIZE; negative means no limit ("SIZE" without a value).
	MaxMessageSize int64
	MaxRecipients  int // per transaction; more are answered 452 4.5.3
	// MaxSessions bounds concurrent sessions (Serve and ServeConn). Serve
	// keeps up to as many more connections waiting for a free session, for
	// SlotTimeout each, then answers 421 4.3.2 and closes; beyond that,
	// clients wait in the kernel's listen queue until one of those ends.
	MaxSessions   int
	MaxLineLength int // command line limit in octets, line end included

	CommandTimeout time.Duration // waiting for a command line
	DataTimeout    time.Duration // waiting for each block of message data
	HandlerTimeout time.Duration // for Handler.Data to answer after the final dot
	MessageTimeout time.Duration // for the whole of DATA, 354 to the final dot
	SlotTimeout    time.Duration // for a connection over MaxSessions to get a session

	Logger *slog.Logger // nil: no logging

	mu        sync.Mutex
	shutdown  bool
	listeners map[*trackedListener]struct{}
	sessions  map[*session]struct{}
}

type trackedListener struct{ l net.Listener }

func (s *Server) hostname() string {
	if f := strings.Fields(cleanText(s.Hostname)); len(f) > 0 {
		return f[0]
	}
	return "localhost"
}

func (s *Server) maxMessageSize() int64 {
	switch {
	case s.MaxMessageSize < 0:
		return -1
	case s.MaxMessageSize == 0:
		return DefaultMaxMessageSize
	}
	return s.MaxMessageSize
}

func (s *Server) maxRecipients() int { return orDefault(s.MaxRecipients, DefaultMaxRecipients) }
func (s *Server) maxSessions() int   { return orDefault(s.MaxSessions, DefaultMaxSessions) }
func (s *Server) maxLineLength() int { return orDefault(s.MaxLineLength, DefaultMaxLineLength) }
func (s *Server) commandTimeout() time.Duration {
	return orDefault(s.CommandTimeout, DefaultCommandTimeout)
}
func (s *Server) dataTimeout() time.Duration { return orDefault(s.DataTimeout, DefaultDataTimeout) }
func (s *Server) handlerTimeout() time.Duration {
	return orDefault(s.HandlerTimeout, DefaultHandlerTimeout)
}

func (s *Server) messageTimeout() time.Duration {
	return orDefault(s.MessageTimeout, DefaultMessageTimeout)
}
func (s *Server) slotTimeout() time.Duration { return orDefault(s.SlotTimeout, DefaultSlotTimeout) }

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// register adds a session to the server's set, or reports that it must be
// refused: busy (over MaxSessions) or closing.
func (s *Server) register(ss *session) *Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = make(map[*session]struct{})
	}
	if s.shutdown {
		return replyShutdown
	}
	if len(s.sessions) >= s.maxSessions() {
		return replyBusy
	}
	s.sessions[ss] = struct{}{}
	return nil
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

// ServeConn runs one session: on stdin/stdout for -bs, or on a connection
// Serve accepted. remote is the client's address for the Envelope and the
// log ("" for -bs). It returns after QUIT, EOF or a fatal error: nil after
// QUIT, a clean EOF, or a graceful stop between commands; otherwise the
// error that ended the session (a timeout, a broken connection, a message
// cut off). Cancelling ctx stops the session hard (see the package
// documentation); read and write deadlines are used when r and w offer
// them, as a net.Conn does.
func (s *Server) ServeConn(ctx context.Context, r io.Reader, w io.Writer, remote string) error {
	return s.serveConn(ctx, r, w, remote, nil)
}

func (s *Server) serveConn(ctx context.Context, r io.Reader, w io.Writer, remote string, closer io.Closer) error {
	if s.Handler == nil {
		return errors.New("smtpd: Server.Handler is nil")
	}
	ss := s.newSession(ctx, r, w, remote)
	ss.closer = closer
	defer ss.close()
	if rep := s.register(ss); rep != nil {
		ss.final(rep)
		if rep == replyBusy {
			ss.log.Warn("smtpd: too many sessions, connection refused", "max", s.maxSessions())
			return errors.New("smtpd: too many sessions")
		}
		return nil
	}
	defer s.unregister(ss)
	ss.startHandler()
	defer ss.endHandler()
	stop := context.AfterFunc(ctx, func() { ss.stop(true) })
	defer stop()
	return ss.run()
}

// Serve accepts connections on l and runs a session for each in its own
// goroutine, until Shutdown (it returns ErrServerClosed) or until ctx is
// cancelled (it returns ctx.Err(); the sessions are stopped hard). It
// returns only after its sessions have ended, and closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	tl := &trackedListener{l}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[*trackedListener]struct{})
	}
	s.listeners[tl] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, tl)
		s.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	// At MaxSessions a new connection waits for a free session rather
	// than get a 421 at once: most clients (smtplib, net/smtp, Symfony)
	// do not retry after a 421 greeting. It waits SlotTimeout at most,
	// so that 100 idle clients cannot leave another without an answer.
	// At most MaxSessions connections wait so; more wait unaccepted in
	// the kernel's listen queue until one of those is served or told 421.
	slots := make(chan struct{}, s.maxSessions())
	waiting := make(chan struct{}, s.maxSessions())
	for {
		if err := s.waitSlot(ctx, waiting); err != nil {
			return err
		}
		conn, err := l.Accept()
		if err != nil {
			<-waiting
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.mu.Lock()
			closed := s.shutdown
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if transientAcceptError(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("smtpd: accept failed, retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			l.Close()
			return fmt.Errorf("smtpd: accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			err := s.acquire(ctx, slots)
			<-waiting
			if err != nil {
				rep := replyShutdown
				if errors.Is(err, errNoSlot) {
					rep = replyBusy
					s.logger().Warn("smtpd: too many sessions, client told to come back", "remote", conn.RemoteAddr().String(),
						"max", s.maxSessions(), "waited", s.slotTimeout())
				}
				conn.SetWriteDeadline(time.Now().Add(s.commandTimeout()))
				conn.Write(rep.normalize().format())
				return
			}
			defer func() { <-slots }()
			err = s.serveConn(ctx, conn, conn, conn.RemoteAddr().String(), conn)
			if err != nil {
				s.logger().Debug("smtpd: session ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// waitSlot blocks until fewer than MaxSessions sessions run, the server
// shuts down, or ctx ends.
func (s *Server) waitSlot(ctx context.Context, slots chan struct{}) error {
	for {
		select {
		case slots <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			s.mu.Lock()
			closed := s.shutdown
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
		}
	}
}

// errNoSlot: no session became free within SlotTimeout.
var errNoSlot = errors.New("smtpd: no free session")

// acquire waits up to SlotTimeout for a free session slot; it fails with
// errNoSlot after that, or when the server stops.
func (s *Server) acquire(ctx context.Context, slots chan struct{}) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	wctx, cancel := context.WithTimeoutCause(ctx, s.slotTimeout(), errNoSlot)
	defer cancel()
	if err := s.waitSlot(wctx, slots); err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(wctx), errNoSlot) {
			return errNoSlot
		}
		return err
	}
	return nil
}

// transientAcceptError reports whether Accept failed for a reason that may
// go away (out of file descriptors or memory, an aborted handshake).
func transientAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown stops the server gracefully: listeners close at once, a session
// waiting for a command is answered 421 4.3.2 and closed, and a session
// inside DATA finishes the message and gets its reply before it is closed.
// It returns nil when every session has ended, or ctx.Err() when ctx ends
// first, after stopping the remaining sessions hard. Sessions run with
// ServeConn are stopped too.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for tl := range s.listeners {
		tl.l.Close()
	}
	for ss := range s.sessions {
		ss.stop(false)
	}
	s.mu.Unlock()

	poll := time.Millisecond
	for {
		s.mu.Lock()
		n := len(s.sessions)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
			poll = min(2*poll, 100*time.Millisecond)
		case <-ctx.Done():
			t.Stop()
			s.mu.Lock()
			for ss := range s.sessions {
				ss.stop(true)
			}
			s.mu.Unlock()
			return ctx.Err()
		}
	}
}

// CheckListenAddr reports an error for a listen address that is not
// host:port or whose host is not loopback (127.0.0.0/8, ::1, localhost),
// unless allowRemote: relaymail relays for anyone who can connect, so a
// default install must never listen on the network. An empty host (":25")
// means every interface and is not loopback.
func CheckListenAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("smtpd: listen address %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("smtpd: listen address %q has no port", addr)
	}
	if allowRemote || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("smtpd: listen address %q is not loopback (set listen_allow_remote = true to accept mail from the network)", addr)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
