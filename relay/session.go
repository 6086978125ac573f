package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TLSMode is the one TLS policy of a connection; having a single value
// means "implicit and STARTTLS" or "STARTTLS if offered" cannot be
// expressed.
type TLSMode int

const (
	// TLSStartTLS (the default) connects in plaintext and upgrades with
	// STARTTLS (RFC 3207); a server that does not offer it is an error,
	// never a silent downgrade.
	TLSStartTLS TLSMode = iota
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465, RFC 8314).
	TLSImplicit
	// TLSNone never uses TLS; credentials then go only to a loopback host.
	TLSNone
)

// String names the mode as the config does.
func (m TLSMode) String() string {
	switch m {
	case TLSStartTLS:
		return "starttls"
	case TLSImplicit:
		return "implicit"
	case TLSNone:
		return "none"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// DefaultPort is the port a smarthost listens on for the mode when the
// config names none: 465 for implicit TLS (RFC 8314 §3.3), else the
// submission port 587 (RFC 6409).
func (m TLSMode) DefaultPort() int {
	if m == TLSImplicit {
		return 465
	}
	return 587
}

// Default timeouts.
const (
	// DefaultTimeout bounds the connect, the TLS handshake and each reply
	// but the last (the whole reply, however slowly it comes) when
	// Host.Timeout is 0. It is shorter than RFC 5321's 5 minutes because
	// relaymail's callers (PHP, cron) wait for it, and a message that
	// cannot go now is queued, not lost.
	DefaultTimeout = 30 * time.Second
	// DefaultDataTimeout bounds the whole wait for the reply to the final
	// dot when Host.DataTimeout is 0. RFC 5321 §4.5.3.2.6 asks for 10 minutes: the server may be
	// scanning the message, and giving up early makes the queue send the
	// message twice.
	DefaultDataTimeout = 10 * time.Minute
)

// Host is one smarthost and how to talk to it, already resolved from the
// config (ports defaulted, CA file loaded).
type Host struct {
	Name          string         // host name or IP literal to dial
	Port          int            // 0: TLS.DefaultPort()
	TLS           TLSMode        // exactly one TLS policy
	TLSVerify     bool           // false: InsecureSkipVerify (still TLS); the config defaults it to true
	RootCAs       *x509.CertPool // nil: system roots
	TLSServerName string         // name to verify; "": Name
	Username      string         // "": no AUTH
	// Password is called only when AUTH is about to run, so a
	// password_command is not run for a server that fails before that.
	// It may be nil when Username is "". For xoauth2 and oauthbearer it
	// returns the access token.
	Password func(ctx context.Context) (string, error)
	// Token, when set, gives the access token for XOAUTH2 and
	// OAUTHBEARER instead of Password, and a fresh one after the server
	// refused the first (see TokenSource).
	Token       TokenSource
	Auth        AuthMechanism // "": auto
	Timeout     time.Duration // connect, TLS handshake, each whole reply; 0: DefaultTimeout
	DataTimeout time.Duration // the whole reply to the final dot; 0: DefaultDataTimeout
}

// Addr is "name:port" as dialed.
func (h Host) Addr() string {
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(h.Name, "["), "]"), strconv.Itoa(h.port()))
}

func (h Host) port() int {
	if h.Port != 0 {
		return h.Port
	}
	return h.TLS.DefaultPort()
}

func (h Host) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultTimeout
}

func (h Host) dataTimeout() time.Duration {
	if h.DataTimeout > 0 {
		return h.DataTimeout
	}
	return DefaultDataTimeout
}

func (h Host) serverName() string {
	if h.TLSServerName != "" {
		return h.TLSServerName
	}
	return strings.TrimSuffix(strings.TrimPrefix(h.Name, "["), "]")
}

// Options are the client-side settings shared by every host.
type Options struct {
	LocalName string    // EHLO/HELO argument; "": "localhost"
	Trace     io.Writer // receives the dialogue for -v, credentials redacted; nil: none

	// dial replaces the TCP dialer in tests (net.Pipe transcripts).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Session is one SMTP connection to one host, past the greeting, EHLO, TLS
// and AUTH. It is not safe for concurrent use. After a protocol error (a
// reply that cannot be parsed or makes no sense, a transport failure, a
// 421) it refuses further commands; Quit and Close still close it.
type Session struct {
	host     Host
	opts     Options
	local    string
	raw      net.Conn // the TCP connection: deadlines are set here
	conn     net.Conn // raw, or the *tls.Conn over it
	br       *bufio.Reader
	bw       *bufio.Writer
	rr       replyReader
	tr       *tracer
	ext      map[string]string
	greeting string
	tlsState *tls.ConnectionState
	// preTLSAuth is the AUTH offer made in clear before STARTTLS, to say
	// so when it is missing after TLS.
	preTLSAuth string

	timeout     time.Duration
	readTimeout time.Duration // for the next reply: timeout, or the data timeout

	mu       sync.Mutex // guards ctx, gen, canceled against the AfterFunc goroutine
	ctx      context.Context
	gen      int
	canceled bool

	broken error // why the session refuses further commands
	inTx   bool  // a MAIL was sent and the transaction not finished: RSET first
	closed bool

	quitAfterData bool // SendAndQuit: pipeline QUIT behind the final dot
	quitSent      bool // and it was written

	// behind is what SendPipelined asks sendData to write behind the
	// final dot; pending is such a group once written, its replies not
	// yet read (the next Send reads them, or Quit).
	behind  *pendingTx
	pending *pendingTx
}

// Dial connects to h and returns a session ready to send: it reads the
// greeting, says EHLO (HELO when EHLO gets 500/502), sets up TLS as h.TLS
// says and authenticates when h.Username is set. On error the connection
// is closed (after QUIT when the dialogue is still in sync). ctx bounds
// the whole of Dial; Host.Timeout bounds each step.
//
// Every failure is a *SessionError (temporary, see there) around the
// *Error or *TransportError that says what happened.
func Dial(ctx context.Context, h Host, o Options) (*Session, error) {
	if h.Name == "" {
		return nil, errors.New("relay: no host name")
	}
	if h.TLS != TLSStartTLS && h.TLS != TLSImplicit && h.TLS != TLSNone {
		return nil, fmt.Errorf("relay: %s: unknown TLS mode %d", h.Name, int(h.TLS))
	}
	local := o.LocalName
	if local == "" {
		local = "localhost"
	}
	if strings.ContainsAny(local, " \t\r\n\x00") {
		return nil, fmt.Errorf("relay: invalid local name %q", local)
	}
	h.Port = h.port()
	s := &Session{
		host:        h,
		opts:        o,
		local:       local,
		tr:          &tracer{w: o.Trace},
		timeout:     h.timeout(),
		readTimeout: h.timeout(),
		ext:         map[string]string{},
	}
	dial := o.dial
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	raw, err := dial(dctx, "tcp", h.Addr())
	cancel()
	if err != nil {
		return nil, &SessionError{Err: &TransportError{Op: "connect " + h.Addr(), Err: contextCause(ctx, err)}}
	}
	s.raw, s.conn = raw, raw
	s.setupIO()
	end := s.begin(ctx)
	err = s.open(ctx)
	end()
	if err != nil {
		s.abort()
		return nil, &SessionError{TLS: s.tlsState, Err: err}
	}
	return s, nil
}

// open runs everything after the TCP connect.
func (s *Session) open(ctx context.Context) error {
	if s.host.TLS == TLSImplicit {
		if err := s.handshake(ctx); err != nil {
			return err
		}
	}
	r, err := s.readReply("greeting", "")
	if err != nil {
		return err
	}
	if err := s.expect("greeting", "", r, 2); err != nil {
		return err
	}
	s.greeting = strings.Join(r.Lines, "\n")
	if err := s.hello(); err != nil {
		return err
	}
	if s.host.TLS == TLSStartTLS {
		if err := s.startTLS(ctx); err != nil {
			return err
		}
	}
	return s.authenticate(ctx)
}

// abort ends a failed Dial: QUIT when the dialogue is still in sync
// (RFC 5321 §3.1 asks for it even after a 554 greeting), then close.
func (s *Session) abort() {
	if s.broken == nil {
		_ = s.Quit()
		return
	}
	_ = s.Close()
}

// writeBufSize batches commands and the message body into few writes:
// a deadline is armed for each, and each is a system call.
const writeBufSize = 64 << 10

func (s *Session) setupIO() {
	s.br = bufio.NewReaderSize(connIO{s}, 4096)
	s.bw = bufio.NewWriterSize(connIO{s}, writeBufSize)
	s.rr = replyReader{br: s.br, trace: s.tr.server}
}

// connIO arms a deadline before every write of the connection. Reads
// are bounded per reply instead (readReply): a deadline renewed at each
// read would let a server that drips a reply an octet at a time hold the
// caller for as long as it likes.
type connIO struct{ s *Session }

func (c connIO) Read(p []byte) (int, error) { return c.s.conn.Read(p) }

func (c connIO) Write(p []byte) (int, error) {
	c.s.arm(false, true)
	return c.s.conn.Write(p)
}

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return now.
var aLongTimeAgo = time.Unix(1, 0)

// arm sets the read and/or write deadline: now + the timeout for this
// kind of I/O, capped by the operation's context deadline, or in the past
// once the context is done.
func (s *Session) arm(read, write bool) {
	d := s.timeout
	if read && !write {
		d = s.readTimeout
	}
	t := time.Now().Add(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil {
		if dl, ok := s.ctx.Deadline(); ok && dl.Before(t) {
			t = dl
		}
	}
	if s.canceled {
		t = aLongTimeAgo
	}
	switch {
	case read && write:
		_ = s.raw.SetDeadline(t)
	case read:
		_ = s.raw.SetReadDeadline(t)
	default:
		_ = s.raw.SetWriteDeadline(t)
	}
}

// begin makes ctx the context of the operation that starts now: its
// deadline caps every I/O deadline and its cancellation aborts blocked
// I/O. The returned func ends the operation.
func (s *Session) begin(ctx context.Context) (end func()) {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.ctx, s.canceled = ctx, false
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.gen == gen {
			s.canceled = true
			_ = s.raw.SetDeadline(aLongTimeAgo)
		}
	})
	return func() {
		stop()
		s.mu.Lock()
		s.gen++
		s.ctx, s.canceled = nil, false
		s.mu.Unlock()
	}
}

// transportErr wraps an I/O failure, marks the session broken and, when
// the operation's context is done, reports that as the cause.
func (s *Session) transportErr(op string, err error) error {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	if ctx != nil {
		err = contextCause(ctx, err)
	}
	te := &TransportError{Op: op, Err: err}
	if s.broken == nil {
		s.broken = te
	}
	return te
}

// contextCause returns ctx's cause when ctx is done or its deadline has
// passed (an I/O deadline copied from it can fire before ctx's own timer),
// else err.
func contextCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}

// command is one line to send; trace is what -v shows instead when the
// line holds a secret.
type command struct {
	name, arg string
	line      string
	trace     string
}

// write queues cmds and flushes them in one write (one round trip when
// pipelining).
func (s *Session) write(cmds ...command) error {
	if s.broken != nil {
		return s.broken
	}
	if s.closed {
		return errors.New("relay: session closed")
	}
	for _, c := range cmds {
		if c.trace != "" {
			s.tr.client(c.trace)
		} else {
			s.tr.client(c.line)
		}
		_, _ = s.bw.WriteString(c.line)
		_, _ = s.bw.WriteString("\r\n")
	}
	if err := s.bw.Flush(); err != nil {
		c := cmds[len(cmds)-1]
		return s.transportErr("write "+commandString(c.name, c.arg), err)
	}
	return nil
}

// readReply reads one reply to cmd, all of it within the read timeout
// (Host.Timeout, or the data timeout for the final dot). A malformed
// reply is an ErrUnknownReply *Error and, like a transport error, breaks
// the session.
func (s *Session) readReply(cmd, arg string) (*Reply, error) {
	if s.broken != nil {
		return nil, s.broken
	}
	s.arm(true, false)
	r, err := s.rr.read()
	if err != nil {
		if errors.Is(err, errMalformed) {
			e := clientError(cmd, arg, ErrUnknownReply, err.Error())
			s.broken = e
			return nil, e
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the server closed where a reply was due
		}
		return nil, s.transportErr("read reply to "+commandString(cmd, arg), err)
	}
	return r, nil
}

// cmd sends one command and reads its reply.
func (s *Session) cmd(c command) (*Reply, error) {
	if err := s.write(c); err != nil {
		return nil, err
	}
	return s.readReply(c.name, c.arg)
}

// expect returns nil when r is of the wanted class (2 for 2xx, 3 for 3xx),
// else the *Error for it. A reply of a class that makes no sense here, or a
// 421 (the server is closing, RFC 5321 §3.8), breaks the session.
func (s *Session) expect(cmd, arg string, r *Reply, class int) error {
	if r.Code/100 == class {
		return nil
	}
	e := replyError(cmd, arg, r)
	if r.Code/100 != 4 && r.Code/100 != 5 || r.Code == 421 {
		if s.broken == nil {
			s.broken = e
		}
	}
	return e
}

// hello says EHLO, and HELO only when the server does not know EHLO
// (500/502); extensions are forgotten and re-learned each time.
func (s *Session) hello() error {
	s.ext = map[string]string{}
	r, err := s.cmd(command{name: "EHLO", arg: s.local, line: "EHLO " + s.local})
	if err != nil {
		return err
	}
	if r.Code/100 == 2 {
		s.ext = parseEHLO(r.Lines)
		return nil
	}
	if r.Code != 500 && r.Code != 502 {
		return s.expect("EHLO", s.local, r, 2)
	}
	r, err = s.cmd(command{name: "HELO", arg: s.local, line: "HELO " + s.local})
	if err != nil {
		return err
	}
	return s.expect("HELO", s.local, r, 2)
}

// parseEHLO turns the EHLO reply's lines after the first into keyword ->
// parameters. The old "AUTH=LOGIN PLAIN" form is merged into AUTH.
func parseEHLO(lines []string) map[string]string {
	ext := map[string]string{}
	for _, l := range lines[min(1, len(lines)):] {
		kw, params, _ := strings.Cut(strings.TrimSpace(l), " ")
		kw = strings.ToUpper(kw)
		params = strings.TrimSpace(params)
		if rest, ok := strings.CutPrefix(kw, "AUTH="); ok {
			kw, params = "AUTH", strings.TrimSpace(rest+" "+params)
		}
		if kw == "" {
			continue
		}
		if old, ok := ext[kw]; ok && kw == "AUTH" && old != "" {
			params = old + " " + params
		}
		ext[kw] = params
	}
	return ext
}

// startTLS upgrades the connection (RFC 3207) and says EHLO again.
func (s *Session) startTLS(ctx context.Context) error {
	if _, ok := s.ext["STARTTLS"]; !ok {
		return clientError("STARTTLS", "", ErrUnsupported, "server does not offer STARTTLS; the message is not sent without TLS")
	}
	s.preTLSAuth = s.ext["AUTH"]
	r, err := s.cmd(command{name: "STARTTLS", line: "STARTTLS"})
	if err != nil {
		return err
	}
	if err := s.expect("STARTTLS", "", r, 2); err != nil {
		return err
	}
	if n := s.br.Buffered(); n > 0 {
		// Anything already here was sent in plaintext but would be read
		// as if it came over TLS (the STARTTLS command injection class of
		// bugs, CVE-2011-0411 on the server side).
		e := clientError("STARTTLS", "", ErrUnknownReply, fmt.Sprintf("server sent %d octets before the TLS handshake", n))
		s.broken = e
		return e
	}
	if err := s.handshake(ctx); err != nil {
		return err
	}
	return s.hello()
}

// handshake runs the client TLS handshake over the raw connection.
func (s *Session) handshake(ctx context.Context) error {
	cfg := &tls.Config{
		ServerName:         s.host.serverName(),
		RootCAs:            s.host.RootCAs,
		InsecureSkipVerify: !s.host.TLSVerify, // the user's explicit choice (tls_verify = false)
		MinVersion:         tls.VersionTLS12,
	}
	tc := tls.Client(s.raw, cfg)
	s.arm(true, true)
	if err := tc.HandshakeContext(ctx); err != nil {
		return s.transportErr("TLS handshake with "+s.host.Addr(), err)
	}
	st := tc.ConnectionState()
	s.conn, s.tlsState = tc, &st
	s.setupIO()
	return nil
}

// authenticate runs AUTH (RFC 4954) when a username is configured.
func (s *Session) authenticate(ctx context.Context) error {
	h := s.host
	if h.Username == "" || AuthMechanism(strings.ToLower(string(h.Auth))) == AuthNone {
		return nil
	}
	encrypted := s.tlsState != nil
	if !encrypted && !isLoopback(h.Name) {
		return clientError("AUTH", "", ErrUnsupported,
			"refusing to send credentials without TLS to "+h.Name+" (not a loopback address)")
	}
	name, err := chooseMechanism(h.Auth, s.ext["AUTH"], encrypted)
	if err != nil {
		if _, ok := s.ext["AUTH"]; !ok && s.preTLSAuth != "" {
			return clientError("AUTH", h.Auth.saslName(), ErrUnsupported,
				"server does not offer AUTH after STARTTLS, only before it in clear (offered "+s.preTLSAuth+"); credentials go only over TLS")
		}
		return err
	}
	if name == "" {
		return nil
	}
	secret, err := s.secret(ctx, name, "")
	if err != nil {
		return err
	}
	err = s.sasl(name, secret)
	if s.freshTokenChance(name, err) {
		if secret, err2 := s.secret(ctx, name, secret); err2 == nil {
			err = s.sasl(name, secret)
		}
	}
	return err
}

// sasl runs one AUTH exchange with mechanism name and secret.
func (s *Session) sasl(name, secret string) error {
	h := s.host
	mech := newSASL(name, h.Username, secret, h.serverName(), h.Port)
	ir, _ := mech.start()
	c := command{name: "AUTH", arg: name, line: "AUTH " + name, trace: "AUTH " + name}
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		c.line += " " + enc
		c.trace += " " + redacted
	}
	r, err := s.cmd(c)
	for round := 0; ; round++ {
		if err != nil {
			return err
		}
		if r.Code/100 == 2 {
			return nil
		}
		if r.Code != 334 || round >= 10 {
			return s.expect("AUTH", name, r, 2)
		}
		var resp []byte
		chal, merr := base64.StdEncoding.DecodeString(strings.Join(r.Lines, ""))
		if merr == nil {
			resp, merr = mech.next(chal)
		}
		if merr != nil {
			// Cancel the exchange (RFC 4954 §4) and stay in sync.
			r, err = s.cmd(command{name: "AUTH", arg: name, line: "*"})
			if err != nil {
				return err
			}
			e := clientError("AUTH", name, ErrUnknownReply, "cannot answer the server's challenge: "+merr.Error())
			if r.Code/100 != 5 && r.Code/100 != 4 {
				s.broken = e
			}
			return e
		}
		r, err = s.cmd(command{name: "AUTH", arg: name, line: base64.StdEncoding.EncodeToString(resp), trace: redacted})
	}
}

// Quit sends QUIT (when the dialogue is in sync) and closes the
// connection, always. The error is the QUIT's; by then any message was
// already accepted or not, so callers may ignore it.
func (s *Session) Quit() error {
	if s.closed {
		return nil
	}
	var err error
	if s.broken == nil {
		end := s.begin(context.Background())
		if !s.settlePending() {
			end()
			_ = s.Close()
			return nil
		}
		var r *Reply
		r, err = s.cmd(command{name: "QUIT", line: "QUIT"})
		if err == nil && r.Code/100 != 2 {
			err = replyError("QUIT", "", r)
		}
		end()
	}
	_ = s.Close()
	return err
}

// Close closes the connection without QUIT (after an error, or when the
// process is going away). It is safe to call more than once.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.broken == nil {
		s.broken = errors.New("relay: session closed")
	}
	return s.conn.Close()
}

// Extensions returns the EHLO keywords (upper case) and their parameters,
// as offered after TLS; empty after HELO. The map is a copy.
func (s *Session) Extensions() map[string]string { return maps.Clone(s.ext) }

// Greeting returns the text of the server's 220 greeting, lines joined
// with "\n".
func (s *Session) Greeting() string { return s.greeting }

// TLSState returns the TLS connection state (version, cipher suite, peer
// certificates) for --check and the log; false when the session is not
// encrypted.
func (s *Session) TLSState() (tls.ConnectionState, bool) {
	if s.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *s.tlsState, true
}

// Host returns the host this session is connected to, with the port
// defaulted.
func (s *Session) Host() Host { return s.host }
