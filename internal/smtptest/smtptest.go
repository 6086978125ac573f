// Package smtptest owns the fake smarthost that relaymail's tests talk to: a
// recording SMTP server built on github.com/emersion/go-smtp, listening on
// loopback, with plaintext, STARTTLS and implicit-TLS variants, AUTH PLAIN,
// LOGIN and CRAM-MD5 (plus XOAUTH2 and OAUTHBEARER on request), injectable
// replies at every stage, a connection-leak check, and a raw scripted server
// for replies go-smtp will not produce.
//
// A test starts one server per case and reads back what arrived:
//
//	s := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS,
//		Users: map[string]string{"alice": "pw"}, AuthRequired: true})
//	s.SetRcptErr("gone@example.com", smtptest.Reply(550, "5.1.1", "no such user"))
//	// ... point the client at s.Host(), s.Port(), trusting s.RootCAs() ...
//	m := s.WaitMessages(t, 1, 5*time.Second)[0] // m.From, m.To, m.Data, m.TLS
//
// The package is imported only from _test.go files, so the shipped binary
// never links go-smtp or go-sasl.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TLSMode selects how the fake smarthost offers TLS, mirroring the three ways
// relaymail can reach a smarthost.
type TLSMode int

const (
	// TLSNone serves plaintext SMTP and does not offer STARTTLS.
	TLSNone TLSMode = iota
	// TLSStartTLS serves plaintext SMTP and offers STARTTLS (RFC 3207).
	TLSStartTLS
	// TLSImplicit performs a TLS handshake before the greeting (RFC 8314).
	TLSImplicit
)

// String names the mode for test failure messages.
func (m TLSMode) String() string {
	switch m {
	case TLSNone:
		return "none"
	case TLSStartTLS:
		return "starttls"
	case TLSImplicit:
		return "implicit"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// Default timeouts keep a forgotten client from pinning a server goroutine
// for the rest of the test binary's run.
const (
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Second
	// leakWait bounds how long cleanup waits for clients to close their
	// connections before reporting a leak.
	leakWait = 2 * time.Second
	// shutdownWait bounds how long Close waits for server goroutines.
	shutdownWait = 5 * time.Second
)

// Options configures a fake smarthost. The zero value is a plaintext server
// on 127.0.0.1 without AUTH.
type Options struct {
	// TLS selects plaintext, STARTTLS or implicit TLS.
	TLS TLSMode
	// Cert is the server certificate; nil generates a fresh one for
	// localhost, 127.0.0.1 and ::1 (see NewCert).
	Cert *Cert
	// Users maps username to password (or token for XOAUTH2/OAUTHBEARER).
	// A non-empty map enables AUTH.
	Users map[string]string
	// Verify, when set, decides whether a username and password (or
	// OAuth access token) are accepted instead of Users, which must still
	// be non-empty to enable AUTH: tokens from a fake OAuth2 provider
	// change during a test.
	Verify func(username, password string) bool
	// Mechanisms restricts (and orders) the advertised AUTH mechanisms, e.g.
	// {"CRAM-MD5"}; nil advertises PLAIN, LOGIN and CRAM-MD5. "XOAUTH2" and
	// "OAUTHBEARER" are available only when listed here. Other names are
	// advertised but answered with 504 5.7.4, to test a client's choice
	// among mechanisms it cannot use.
	Mechanisms []string
	// AuthRequired makes MAIL before a successful AUTH fail with 530 5.7.0.
	AuthRequired bool
	// AllowInsecureAuth offers AUTH before STARTTLS in TLSStartTLS mode.
	// With TLSNone AUTH is always offered (loopback tests); with TLSImplicit
	// every session is encrypted, so the field matters only for STARTTLS.
	AllowInsecureAuth bool
	// MaxSize, when positive, is advertised as "SIZE n" and enforced at
	// MAIL (SIZE=) and during DATA (552 5.3.4). Zero advertises bare SIZE.
	MaxSize int64
	// MaxRecipients, when positive, is advertised as LIMITS RCPTMAX=n and
	// RCPT beyond it gets 452 4.5.3.
	MaxRecipients int
	// DSN advertises DSN (RFC 3461) and accepts RET, ENVID, NOTIFY, ORCPT.
	DSN bool
	// SMTPUTF8 advertises SMTPUTF8 (RFC 6531) and accepts MAIL ... SMTPUTF8.
	SMTPUTF8 bool
	// No8BitMIME removes 8BITMIME from the EHLO reply. go-smtp always
	// advertises it, so the reply is filtered on the wire; that cannot be
	// done inside a STARTTLS session, so Start fails the test when this is
	// combined with TLSStartTLS. go-smtp still accepts BODY=8BITMIME.
	No8BitMIME bool
	// NoPipelining removes PIPELINING from the EHLO reply, with the same
	// mechanism and restriction as No8BitMIME. The server still answers
	// pipelined commands correctly.
	NoPipelining bool
	// MaxLineLength bounds every input line, DATA included: 0 keeps
	// go-smtp's 2000 (twice RFC 5321's 1000), negative removes the limit.
	// A longer line gets 500 5.4.0 and the connection is closed.
	// go-smtp counts bytes per line including the CR LF.
	MaxLineLength int
	// ReadTimeout is the server's idle timeout per command; zero means 30s.
	// On expiry go-smtp replies 421 4.4.2 and closes.
	ReadTimeout time.Duration
	// Domain is the name in the greeting and in CRAM-MD5 challenges;
	// default "smtptest.local".
	Domain string
	// Listen is the loopback address to listen on; default "127.0.0.1:0".
	// "[::1]:0" is accepted; non-loopback addresses fail the test.
	Listen string
	// SkipLeakCheck turns off the end-of-test check that every client
	// connection was closed by the client, for tests that leave one open
	// on purpose.
	SkipLeakCheck bool
}

// Message is one message the fake smarthost accepted: its DATA (or BDAT)
// completed and the server replied 250.
type Message struct {
	// Helo is the EHLO/HELO argument of the session.
	Helo string
	// AuthUser is the authenticated username, "" without AUTH.
	AuthUser string
	// AuthMech is the mechanism that authenticated, e.g. "CRAM-MD5".
	AuthMech string
	// From is the reverse-path without angle brackets ("" for <>).
	From string
	// MailOptions holds the MAIL parameters (SIZE, BODY, SMTPUTF8, RET,
	// ENVID, AUTH) as go-smtp parsed them.
	MailOptions smtp.MailOptions
	// To lists the accepted forward-paths in order.
	To []string
	// RcptOptions holds each accepted RCPT's parameters, parallel to To.
	RcptOptions []smtp.RcptOptions
	// Data is exactly what DATA delivered after go-smtp removed the dot
	// stuffing and the terminating ".", CRLF line endings preserved.
	Data []byte
	// TLS reports whether the session was encrypted.
	TLS bool
}

// AuthAttempt is one AUTH exchange that reached its end, successful or not,
// so tests can check which mechanism a client chose and that it never
// authenticated in the clear.
type AuthAttempt struct {
	// Mechanism is the upper-case mechanism name.
	Mechanism string
	// Username is the name the client gave ("" if the exchange failed
	// before naming one).
	Username string
	// TLS reports whether the session was encrypted.
	TLS bool
	// OK reports whether the server replied 235.
	OK bool
}

// Server is a running fake smarthost. All methods are safe for concurrent use.
type Server struct {
	t      testing.TB
	opts   Options
	cert   *Cert
	srv    *smtp.Server
	base   net.Listener
	host   string
	port   int
	filter bool // EHLO reply is filtered on the wire (No8BitMIME/NoPipelining)

	mu       sync.Mutex
	msgs     []Message
	auths    []AuthAttempt
	msgCh    chan struct{} // closed and replaced when a message arrives
	authErr  error
	mailErr  error
	rcptErr  map[string]error
	dataErr  error
	dataFunc func(io.Reader) error
	hang     bool
	greetErr *smtp.SMTPError
	conns    map[*trackConn]struct{}
	sessions int
	logDone  bool

	closeOnce sync.Once
	serveDone chan struct{}
	aux       sync.WaitGroup // goroutines of this package besides Serve
}

// Start listens on loopback, serves in a goroutine, and registers a cleanup
// that first waits (bounded) for clients to close their connections,
// reporting any still open as a leak with t.Errorf, then closes the server
// and checks that it shut down. It fails the test on a setup error.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Domain == "" {
		o.Domain = "smtptest.local"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = defaultReadTimeout
	}
	if err := checkLoopback(o.Listen); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	s := &Server{
		t:         t,
		opts:      o,
		cert:      o.Cert,
		msgCh:     make(chan struct{}),
		rcptErr:   make(map[string]error),
		conns:     make(map[*trackConn]struct{}),
		serveDone: make(chan struct{}),
		filter:    o.No8BitMIME || o.NoPipelining,
	}
	if s.filter && o.TLS == TLSStartTLS {
		t.Fatalf("smtptest: No8BitMIME/NoPipelining cannot be combined with TLSStartTLS (go-smtp always advertises them; the reply can be filtered only outside TLS)")
	}
	if s.cert == nil && o.TLS != TLSNone {
		s.cert = NewCert(t)
	}

	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = o.Domain
	srv.ReadTimeout = o.ReadTimeout
	srv.WriteTimeout = defaultWriteTimeout
	srv.MaxMessageBytes = o.MaxSize
	srv.MaxRecipients = o.MaxRecipients
	switch {
	case o.MaxLineLength > 0:
		srv.MaxLineLength = o.MaxLineLength
	case o.MaxLineLength < 0:
		srv.MaxLineLength = 0
	}
	srv.EnableDSN = o.DSN
	srv.EnableSMTPUTF8 = o.SMTPUTF8
	srv.ErrorLog = serverLog{s}
	switch o.TLS {
	case TLSNone:
		srv.AllowInsecureAuth = true
	case TLSStartTLS:
		srv.TLSConfig = s.cert.ServerConfig()
		srv.AllowInsecureAuth = o.AllowInsecureAuth
	case TLSImplicit:
		// With the filter go-smtp sees a wrapped conn, not a *tls.Conn,
		// and would otherwise think the session is plaintext.
		srv.AllowInsecureAuth = true
	default:
		t.Fatalf("smtptest: unknown TLS mode %v", o.TLS)
	}
	s.srv = srv

	base, err := net.Listen("tcp", o.Listen)
	if err != nil {
		t.Fatalf("smtptest: listen %s: %v", o.Listen, err)
	}
	s.base = base
	ta := base.Addr().(*net.TCPAddr)
	s.host, s.port = ta.IP.String(), ta.Port

	var l net.Listener = &trackListener{Listener: base, s: s}
	if o.TLS == TLSImplicit {
		l = tls.NewListener(l, s.cert.ServerConfig())
	}
	l = &gateListener{Listener: l, s: s}
	go func() {
		defer close(s.serveDone)
		srv.Serve(l)
	}()
	t.Cleanup(s.cleanup)
	return s
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q is not loopback", addr)
	}
	return nil
}

// Addr returns the address clients dial, "127.0.0.1:port" or "[::1]:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// Host returns the listening IP as text, for configs that take host and port
// apart.
func (s *Server) Host() string { return s.host }

// Port returns the listening TCP port.
func (s *Server) Port() int { return s.port }

// Cert returns the server's certificate (nil for a TLSNone server started
// without Options.Cert), e.g. to write a ca_file.
func (s *Server) Cert() *Cert { return s.cert }

// RootCAs returns a pool trusting the server's self-signed certificate, for a
// client's tls.Config. It is nil for a TLSNone server without Options.Cert.
func (s *Server) RootCAs() *x509.CertPool {
	if s.cert == nil {
		return nil
	}
	return s.cert.Pool()
}

// Certificate returns the server's parsed certificate, or nil without TLS.
func (s *Server) Certificate() *x509.Certificate {
	if s.cert == nil {
		return nil
	}
	return s.cert.Leaf
}

// ClientTLSConfig returns a client configuration that trusts the server and
// verifies the name in Host, so tests need not build one.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs(), ServerName: s.host, MinVersion: tls.VersionTLS12}
}

// Messages returns a copy of the accepted messages in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyMessagesLocked()
}

func (s *Server) copyMessagesLocked() []Message {
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = m.clone()
	}
	return out
}

// WaitMessages waits until at least n messages have been accepted and returns
// them all; after timeout it fails the test with t.Fatalf, so call it from
// the test's goroutine.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := s.copyMessagesLocked()
			s.mu.Unlock()
			return out
		}
		got, ch := len(s.msgs), s.msgCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("smtptest: waited %v for %d message(s), got %d", timeout, n, got)
			return nil
		}
	}
}

// Auths returns a copy of the AUTH exchanges that ended, in order.
func (s *Server) Auths() []AuthAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auths)
}

// Sessions returns how many connections were accepted in total, including
// ones held by Hang or refused by SetGreetingErr.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// OpenConns returns how many accepted connections are not yet closed.
func (s *Server) OpenConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops the server: it closes the listener and every connection and
// waits (bounded) for the serving goroutines. Calling it mid-test simulates
// a smarthost going away; later calls do nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.srv.Close()
		s.base.Close()
		s.mu.Lock()
		open := make([]*trackConn, 0, len(s.conns))
		for c := range s.conns {
			open = append(open, c)
		}
		s.mu.Unlock()
		for _, c := range open {
			c.Close()
		}
		if !waitChan(s.serveDone, shutdownWait) {
			s.logf("smtptest: server goroutine still running %v after Close", shutdownWait)
		}
	})
}

func (s *Server) cleanup() {
	// Stop accepting, then give clients a moment to finish closing.
	s.base.Close()
	if !s.opts.SkipLeakCheck {
		if n := waitZero(s.OpenConns, leakWait); n != 0 {
			s.t.Errorf("smtptest: %d client connection(s) to %s still open %v after the test ended (connection leak)", n, s.Addr(), leakWait)
		}
	}
	s.Close()
	if n := waitZero(s.OpenConns, shutdownWait); n != 0 {
		s.t.Errorf("smtptest: %d connection(s) still open %v after Close", n, shutdownWait)
	}
	done := make(chan struct{})
	go func() { s.aux.Wait(); close(done) }()
	if !waitChan(done, shutdownWait) {
		s.t.Errorf("smtptest: helper goroutines still running %v after Close", shutdownWait)
	}
	s.mu.Lock()
	s.logDone = true
	s.mu.Unlock()
}

// waitZero polls f until it returns 0 or d passes, returning the last value.
func waitZero(f func() int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n := f()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitChan(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// logf reports through t.Logf while the test can still take it; testing
// panics on Log after a test has completed.
func (s *Server) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.logDone {
		s.t.Logf(format, args...)
	}
}

// serverLog routes go-smtp's internal error log to the test log.
type serverLog struct{ s *Server }

func (l serverLog) Printf(format string, v ...any) { l.s.logf("smtptest: go-smtp: "+format, v...) }
func (l serverLog) Println(v ...any) {
	l.s.logf("smtptest: go-smtp: %s", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// Reply builds the error an injection setter makes the server send: code,
// enhanced status and text. enhanced is "4.2.0"; "" lets go-smtp fill in
// X.0.0; "-" sends no enhanced code at all, as a server without
// ENHANCEDSTATUSCODES would. A "\n" in msg makes a multi-line reply. It
// panics on a malformed enhanced code, a bug in the test.
func Reply(code int, enhanced string, msg string) error {
	e := &smtp.SMTPError{Code: code, Message: msg}
	if enhanced == "-" {
		e.EnhancedCode = smtp.NoEnhancedCode
	} else if enhanced != "" {
		parts := strings.Split(enhanced, ".")
		if len(parts) != 3 {
			panic("smtptest: Reply: enhanced code " + strconv.Quote(enhanced) + " is not class.subject.detail")
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 999 {
				panic("smtptest: Reply: enhanced code " + strconv.Quote(enhanced) + " is not class.subject.detail")
			}
			e.EnhancedCode[i] = n
		}
	}
	return e
}

// ErrDrop, returned from a SetDataFunc hook, makes the server close the TCP
// connection without replying to DATA.
var ErrDrop = errors.New("smtptest: drop the connection")

// SetAuthErr makes every AUTH exchange that reaches its end fail with err
// (build it with Reply), whatever the credentials; nil restores checking.
func (s *Server) SetAuthErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authErr = err
}

// SetMailErr makes every MAIL command fail with err; nil clears it.
func (s *Server) SetMailErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailErr = err
}

// SetRcptErr makes RCPT TO:<addr> fail with err (addr compared without
// regard to case); nil clears it. Other recipients are unaffected.
func (s *Server) SetRcptErr(addr string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(addr)
	if err == nil {
		delete(s.rcptErr, key)
		return
	}
	s.rcptErr[key] = err
}

// SetDataErr makes every message fail with err after its data has been read
// in full (the reply to the final dot); nil clears it.
func (s *Server) SetDataErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataErr = err
}

// SetDataFunc installs a hook that reads each message's data before the
// server does. The hook may read part or all of r; whatever it reads is still
// recorded. A non-nil return becomes the reply (ErrDrop closes the
// connection instead). nil removes the hook.
func (s *Server) SetDataFunc(f func(r io.Reader) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataFunc = f
}

// DropMidData makes the server close the TCP connection after reading the
// first line of each message's data, without a reply. SetDataFunc(nil) undoes
// it.
func (s *Server) DropMidData() {
	s.SetDataFunc(func(r io.Reader) error {
		b := make([]byte, 1)
		for {
			if _, err := r.Read(b); err != nil || b[0] == '\n' {
				return ErrDrop
			}
		}
	})
}

// Hang makes the server accept new connections but never greet them (with
// TLSImplicit, never answer the TLS handshake), for client timeout tests.
// Connections already being served are unaffected.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = true
}

// SetGreetingErr makes new connections get err (build it with Reply) instead
// of the 220 greeting. A 421 is followed by closing the connection; any other
// code answers 503 to every command until QUIT, as RFC 5321 4.3.1 asks of a
// 554 greeting. nil restores the normal greeting.
func (s *Server) SetGreetingErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.greetErr = nil
		return
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		se = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: err.Error()}
	}
	s.greetErr = se
}

// ResetErrors clears every injected error, hook and the Hang state, so one
// server can serve a failing attempt and then a succeeding one.
func (s *Server) ResetErrors() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authErr, s.mailErr, s.dataErr, s.dataFunc = nil, nil, nil, nil
	s.rcptErr = make(map[string]error)
	s.hang = false
	s.greetErr = nil
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.msgCh)
	s.msgCh = make(chan struct{})
}

func (m Message) clone() Message {
	c := m
	c.To = append([]string(nil), m.To...)
	c.Data = append([]byte(nil), m.Data...)
	c.MailOptions = cloneMailOptions(m.MailOptions)
	c.RcptOptions = make([]smtp.RcptOptions, len(m.RcptOptions))
	for i, o := range m.RcptOptions {
		c.RcptOptions[i] = cloneRcptOptions(o)
	}
	return c
}

func cloneMailOptions(o smtp.MailOptions) smtp.MailOptions {
	if o.Auth != nil {
		a := *o.Auth
		o.Auth = &a
	}
	return o
}

func cloneRcptOptions(o smtp.RcptOptions) smtp.RcptOptions {
	o.Notify = append([]smtp.DSNNotify(nil), o.Notify...)
	if o.DeliverBy != nil {
		d := *o.DeliverBy
		o.DeliverBy = &d
	}
	if o.MTPriority != nil {
		p := *o.MTPriority
		o.MTPriority = &p
	}
	return o
}
