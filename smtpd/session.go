package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxErrors is how many refused commands a session may send before it is
// closed with 421 (Postfix's smtpd_hard_error_limit has the same default):
// a client that only produces errors is broken or probing.
const maxErrors = 20

// readBufSize is the size of the session's input buffer, which is also the
// most memory a long data line can take.
const readBufSize = 32 << 10

// Envelope is one SMTP transaction as the client gave it. The Handler sees
// it at each RCPT (with the recipients accepted so far) and at DATA.
type Envelope struct {
	Helo       string   // the HELO/EHLO argument as sent
	From       string   // reverse-path without brackets; "" is the null sender <>
	To         []string // accepted recipients, in the order given (duplicates kept)
	Size       int64    // SIZE= declared at MAIL, 0 if none
	Body8Bit   bool     // BODY=8BITMIME
	SMTPUTF8   bool     // SMTPUTF8 was given at MAIL
	RemoteAddr string   // the client's address; "" for -bs (stdin/stdout)
}

// Handler decides what happens to recipients and messages; the Server only
// speaks the protocol. Its methods may be called from many sessions at once.
type Handler interface {
	// Rcpt is asked at each RCPT TO with the transaction so far (env must
	// not be modified). A nil result or a 2xx Reply accepts addr; a 4xx or
	// 5xx Reply refuses it (for example 550 5.1.1 from the smarthost).
	// It should be quick: ctx expires after Server.CommandTimeout.
	Rcpt(ctx context.Context, env *Envelope, addr string) *Reply

	// Data is given the message as a stream: dot-unstuffed, line ends as
	// the client sent them. It must read r to io.EOF before accepting the
	// message, and must not use r after it returns. Its result is the
	// reply to the final dot: nil is "250 2.0.0 OK: message accepted", a 2xx Reply may carry
	// the queue id, a 4xx/5xx Reply refuses the message.
	//
	// When r returns an error other than io.EOF the message is incomplete
	// and must be neither delivered nor queued: either it grew past
	// MaxMessageSize (ErrMessageTooBig; the client is told 552) or the
	// client disconnected or timed out (nothing is sent). In both cases
	// what Data returns is discarded. A nil or 2xx result from a Data that
	// did not read to io.EOF is answered 451 (a Handler bug).
	//
	// ctx is cancelled when Server.HandlerTimeout has passed since the
	// final dot, or when the server is stopped hard.
	Data(ctx context.Context, env *Envelope, r io.Reader) *Reply
}

// session is one SMTP conversation.
type session struct {
	srv    *Server
	ctx    context.Context // the Handler's context; cancelled by a hard stop
	cancel context.CancelFunc
	in     *input
	br     *bufio.Reader
	bw     *bufio.Writer
	closer io.Closer // closed on a hard stop (the net.Conn of Serve)
	h      Handler   // Server.Handler, or the session's own (SessionMaker)
	sh     SessionHandler
	remote string
	log    *slog.Logger

	helo    string
	esmtp   bool
	env     *Envelope // current transaction; nil before MAIL
	errors  int
	lineBuf []byte

	stopOnce sync.Once
}

type writeDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// deadlineWriter gives every write to the client a fresh deadline, also
// the ones bufio makes on its own when a long pipelined group overflows
// the buffer.
type deadlineWriter struct {
	w       io.Writer
	d       writeDeadliner
	timeout time.Duration
}

func (dw *deadlineWriter) Write(p []byte) (int, error) {
	dw.d.SetWriteDeadline(time.Now().Add(dw.timeout))
	return dw.w.Write(p)
}

func (s *Server) newSession(ctx context.Context, r io.Reader, w io.Writer, remote string) *session {
	ctx, cancel := context.WithCancel(ctx)
	if d, ok := w.(writeDeadliner); ok && d.SetWriteDeadline(time.Time{}) == nil {
		w = &deadlineWriter{w: w, d: d, timeout: s.commandTimeout()}
	}
	ss := &session{
		srv:    s,
		ctx:    ctx,
		cancel: cancel,
		in:     newInput(r),
		bw:     bufio.NewWriterSize(w, 4096),
		remote: remote,
		log:    s.logger().With("remote", remote),
	}
	if remote == "" {
		ss.log = s.logger().With("remote", "stdio")
	}
	ss.br = bufio.NewReaderSize(ss.in, readBufSize)
	return ss
}

// stop asks the session to end: gracefully (at the next wait for a
// command) or hard (now, cancelling the Handler's context).
func (ss *session) stop(hard bool) {
	ss.in.stop(hard)
	if hard {
		ss.stopOnce.Do(func() {
			ss.cancel()
			if ss.closer != nil {
				ss.closer.Close()
			}
		})
	}
}

func (ss *session) close() {
	ss.cancel()
	ss.in.close()
}

// reply queues r for sending; it goes out at the next flush.
func (ss *session) reply(r *Reply) {
	ss.bw.Write(r.normalize().format())
}

// flush sends the queued replies, each write bounded by CommandTimeout
// when the writer supports deadlines.
func (ss *session) flush() error {
	if ss.bw.Buffered() == 0 {
		return nil
	}
	if err := ss.bw.Flush(); err != nil {
		return fmt.Errorf("smtpd: writing reply: %w", err)
	}
	return nil
}

// final sends a last reply and flushes, for the paths that end the session.
func (ss *session) final(r *Reply) {
	ss.reply(r)
	ss.flush()
}

// lineBuffered reports whether a complete line is already in the input
// buffer, in which case replies may wait (RFC 2920 §3.1: the server
// flushes before it would block on input).
func (ss *session) lineBuffered() bool {
	n := ss.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := ss.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

var errLineTooLong = errors.New("line too long")

// readCommand returns the next command line without its line end (CRLF or
// bare LF). A line longer than MaxLineLength is read to its end without
// being kept and reported as errLineTooLong.
func (ss *session) readCommand() ([]byte, error) {
	if !ss.lineBuffered() {
		if err := ss.flush(); err != nil {
			return nil, err
		}
	}
	ss.in.setMode(modeCommand, ss.srv.commandTimeout())
	max := ss.srv.maxLineLength()
	ss.lineBuf = ss.lineBuf[:0]
	tooLong := false
	for {
		chunk, err := ss.br.ReadSlice('\n')
		if !tooLong {
			if len(ss.lineBuf)+len(chunk) > max {
				tooLong = true
				ss.lineBuf = ss.lineBuf[:0]
			} else {
				ss.lineBuf = append(ss.lineBuf, chunk...)
			}
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && (len(ss.lineBuf) > 0 || tooLong) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if tooLong {
		return nil, errLineTooLong
	}
	line := ss.lineBuf[:len(ss.lineBuf)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// run is the whole session. It returns nil after QUIT, a clean EOF or a
// graceful stop.
func (ss *session) run() error {
	ss.log.Debug("smtpd: session start")
	if ss.in.stopRequested() {
		ss.final(replyShutdown)
		return nil
	}
	ss.bw.WriteString("220 " + ss.srv.hostname() + " ESMTP relaymail\r\n")
	if err := ss.flush(); err != nil {
		return err
	}
	for {
		line, err := ss.readCommand()
		if errors.Is(err, errLineTooLong) {
			ss.reply(replyLineTooLong)
			if ss.countError() {
				return nil
			}
			continue
		}
		if err != nil {
			return ss.readFailed(err, "reading command")
		}
		cmd, r := parseCommand(line)
		if r != nil {
			ss.reply(r)
			if ss.countError() {
				return nil
			}
			continue
		}
		done, err := ss.dispatch(cmd)
		if done || err != nil {
			return err
		}
	}
}

// countError counts a refused command and, at maxErrors, says 421 and
// reports that the session must end.
func (ss *session) countError() bool {
	ss.errors++
	if ss.errors < maxErrors {
		return false
	}
	ss.log.Warn("smtpd: too many errors, closing session")
	ss.final(replyTooManyErrors)
	return true
}

// readFailed ends the session after a read error: a clean EOF is the
// client leaving, a timeout or a stop is told 421 first.
func (ss *session) readFailed(err error, doing string) error {
	switch {
	case errors.Is(err, errTimeout):
		ss.log.Warn("smtpd: client timed out", "while", doing)
		ss.final(replyTimeout)
		return fmt.Errorf("smtpd: %s: %w", doing, err)
	case errors.Is(err, errStopped):
		ss.final(replyShutdown)
		if doing == "reading command" && !ss.in.hardRequested() {
			return nil
		}
		return fmt.Errorf("smtpd: %s: %w", doing, err)
	case err == io.EOF:
		ss.log.Debug("smtpd: client closed the connection")
		return nil
	default:
		return fmt.Errorf("smtpd: %s: %w", doing, err)
	}
}

// dispatch runs one command. done is true after QUIT or when the session
// must end for another reason.
func (ss *session) dispatch(cmd command) (done bool, err error) {
	switch cmd.verb {
	case "HELO", "EHLO":
		return ss.countIf(ss.hello(cmd)), nil
	case "MAIL":
		return ss.countIf(ss.mail(cmd.arg)), nil
	case "RCPT":
		return ss.countIf(ss.rcpt(cmd.arg)), nil
	case "DATA":
		return ss.data(cmd.arg)
	case "RSET":
		if cmd.arg != "" {
			ss.reply(syntaxReply("Syntax: RSET"))
			return ss.countError(), nil
		}
		ss.resetTx()
		ss.reply(replyOK)
	case "NOOP":
		ss.reply(replyOK)
	case "VRFY":
		if cmd.arg == "" {
			ss.reply(syntaxReply("Syntax: VRFY address"))
			return ss.countError(), nil
		}
		ss.reply(replyVrfy)
	case "HELP":
		ss.reply(replyHelp)
	case "QUIT":
		ss.final(replyBye)
		return true, nil
	case "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS":
		// A web page making the browser talk to a local SMTP port: end it
		// before any following line is taken as a command.
		ss.log.Warn("smtpd: HTTP request on the SMTP port, closing", "verb", cmd.verb)
		ss.final(&Reply{421, "4.7.0", "This is not an HTTP server"})
		return true, nil
	case "EXPN", "TURN", "ETRN", "ATRN", "BDAT", "STARTTLS", "AUTH", "SEND", "SOML", "SAML":
		ss.reply(replyNotImpl)
		return ss.countError(), nil
	default:
		ss.reply(replyUnknown)
		return ss.countError(), nil
	}
	return false, nil
}

// countIf counts a refusal returned by a command handler as an error when
// it is a client mistake (a 5xx from the session itself, not the Handler).
func (ss *session) countIf(clientErr bool) bool {
	if clientErr {
		return ss.countError()
	}
	return false
}

// hello handles HELO and EHLO (RFC 5321 §4.1.1.1); both reset the
// transaction. It reports whether the command was a client error.
func (ss *session) hello(cmd command) bool {
	if cmd.arg == "" || !validText(cmd.arg) {
		ss.reply(syntaxReply("Syntax: " + cmd.verb + " hostname"))
		return true
	}
	ss.resetTx()
	ss.helo, ss.esmtp = cmd.arg, cmd.verb == "EHLO"
	host := ss.srv.hostname()
	if !ss.esmtp {
		ss.bw.WriteString("250 " + host + "\r\n")
		return false
	}
	size := "SIZE"
	if max := ss.srv.maxMessageSize(); max >= 0 {
		size += " " + strconv.FormatInt(max, 10)
	}
	for _, l := range []string{host, "PIPELINING", "8BITMIME", size, "ENHANCEDSTATUSCODES"} {
		ss.bw.WriteString("250-" + l + "\r\n")
	}
	ss.bw.WriteString("250 SMTPUTF8\r\n")
	return false
}

// validText reports whether s is valid UTF-8 (control characters were
// already refused with the line).
func validText(s string) bool { return strings.ToValidUTF8(s, "") == s }

// mail handles MAIL FROM (RFC 5321 §4.1.1.2).
func (ss *session) mail(arg string) bool {
	switch {
	case ss.helo == "":
		ss.reply(replyNeedHelo)
		return true
	case ss.env != nil:
		ss.reply(replyNestedMail)
		return true
	}
	pa, r := parsePathArg(arg, "FROM", true, false)
	if r != nil {
		ss.reply(r)
		return r.Code != 552 && r.Code != 553
	}
	mp, r := parseMailParams(pa.params, ss.srv.maxMessageSize())
	if r != nil {
		ss.reply(r)
		return r.Code != 552
	}
	ss.env = &Envelope{
		Helo:       ss.helo,
		From:       pa.addr,
		Size:       mp.size,
		Body8Bit:   mp.body8Bit,
		SMTPUTF8:   mp.smtputf8,
		RemoteAddr: ss.remote,
	}
	ss.reply(replyMailOK)
	return false
}

// rcpt handles RCPT TO (RFC 5321 §4.1.1.3), asking the Handler.
func (ss *session) rcpt(arg string) bool {
	if ss.env == nil {
		ss.reply(replyNeedMail)
		return true
	}
	pa, r := parsePathArg(arg, "TO", false, ss.env.SMTPUTF8)
	if r != nil {
		ss.reply(r)
		return r.Code != 553
	}
	if len(pa.params) > 0 {
		ss.reply(&Reply{555, "5.5.4", "Parameter " + pa.params[0].key + " not supported"})
		return true
	}
	room := ss.srv.maxRecipients() - len(ss.env.To)
	if room <= 0 {
		ss.reply(replyTooManyRcpts)
		return false
	}
	if b, ok := ss.h.(RcptBatcher); ok {
		if addrs := ss.pipelinedRcpts([]string{pa.addr}, room); len(addrs) > 1 {
			ss.rcptBatch(b, addrs)
			return false
		}
	}
	ctx, cancel := context.WithTimeout(ss.ctx, ss.srv.commandTimeout())
	r = ss.callRcpt(ctx, pa.addr)
	cancel()
	ss.answerRcpt(pa.addr, r)
	return false
}

// answerRcpt queues the Handler's reply r to RCPT TO:<addr>, adding addr
// to the transaction when r accepts it (nil or 2xx).
func (ss *session) answerRcpt(addr string, r *Reply) {
	if r != nil && r.Code/100 != 2 {
		ss.log.Debug("smtpd: recipient refused", "to", addr, "reply", r.Error())
		ss.reply(r)
		return
	}
	ss.env.To = append(ss.env.To, addr)
	if r != nil {
		ss.reply(r)
	} else {
		ss.reply(replyRcptOK)
	}
}

// callRcpt calls the Handler, turning a panic into a 451 so that one bad
// message does not take the listener down.
func (ss *session) callRcpt(ctx context.Context, addr string) (r *Reply) {
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("smtpd: Handler.Rcpt panicked", "panic", fmt.Sprint(p))
			r = replyHandlerBug
		}
	}()
	return ss.h.Rcpt(ctx, ss.env, addr)
}

// data handles DATA (RFC 5321 §4.1.1.4): 354, the message streamed to the
// Handler, and the reply to the final dot.
func (ss *session) data(arg string) (bool, error) {
	switch {
	case arg != "":
		ss.reply(syntaxReply("Syntax: DATA"))
		return ss.countError(), nil
	case ss.env == nil:
		ss.reply(replyNeedMail)
		return ss.countError(), nil
	case len(ss.env.To) == 0:
		ss.reply(replyNoRcpts)
		return ss.countError(), nil
	}
	env := ss.env
	ss.env = nil // the transaction ends here whatever happens
	ss.reply(replyStartData)
	if err := ss.flush(); err != nil {
		return true, err
	}

	ss.in.setModeUntil(modeData, ss.srv.dataTimeout(), time.Now().Add(ss.srv.messageTimeout()))
	dr := newDataReader(ss.br, ss.srv.maxMessageSize())
	ctx, cancelCause := context.WithCancelCause(ss.ctx)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	var timer atomic.Pointer[time.Timer]
	var unwatch atomic.Pointer[func()]
	dr.onEnd = func() {
		timer.Store(time.AfterFunc(ss.srv.handlerTimeout(), cancel))
		// Nothing pipelined after the dot: an end of stream now is a
		// client that gave up waiting for the reply.
		if ss.br.Buffered() == 0 {
			if stop := ss.watchClient(func() { cancelCause(ErrClientGone) }); stop != nil {
				unwatch.Store(&stop)
			}
		}
	}
	r, sawEOF := ss.callData(ctx, env, dr)
	dr.closed, dr.onEnd = true, nil
	if t := timer.Load(); t != nil {
		t.Stop()
	}
	if stop := unwatch.Load(); stop != nil {
		(*stop)()
	}
	if errors.Is(context.Cause(ctx), ErrClientGone) && dr.err == nil && dr.done {
		ss.log.Warn("smtpd: client left before the reply to its final dot", "from", env.From)
		return true, nil
	}
	if dr.err == nil && !dr.done {
		dr.drain()
	}
	if dr.err != nil {
		// The message is incomplete: nothing was accepted, and the
		// Handler's answer is not sent.
		ss.log.Warn("smtpd: message not received whole", "from", env.From, "err", dr.err)
		return true, ss.readFailed(dr.err, "reading message data")
	}
	switch {
	case dr.tooBig:
		ss.log.Info("smtpd: message refused: too big", "from", env.From, "max", ss.srv.maxMessageSize())
		r = replyTooBig
	case (r == nil || r.Code/100 == 2) && !sawEOF:
		ss.log.Error("smtpd: Handler.Data accepted a message it did not read to the end", "from", env.From)
		r = replyHandlerBug
	case r == nil:
		r = replyDataOK
	}
	ss.log.Debug("smtpd: message", "from", env.From, "rcpts", len(env.To), "size", dr.n, "reply", r.Error())
	ss.reply(r)
	return false, nil
}

// ErrClientGone is the cause of the context given to Handler.Data when
// the client closed its connection after the final dot, before the
// reply: whatever the Handler answers, nobody hears it, so a Handler
// must not keep a message the client never heard it accept (the client
// still has it and will send it again).
var ErrClientGone = errors.New("smtpd: the client left before the reply")

// clientWatchInterval is how often a session waiting for Handler.Data
// looks whether its client is still connected.
const clientWatchInterval = 250 * time.Millisecond

// watchClient calls gone once if the client's connection ends while the
// Handler works on a message; it returns the function that stops the
// watch, or nil when the connection cannot be watched (-bs).
func (ss *session) watchClient(gone func()) (stop func()) {
	c, ok := ss.closer.(syscall.Conn)
	if !ok {
		return nil
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(clientWatchInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if peerGone(c) {
					gone()
					return
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// callData calls the Handler and reports whether it saw io.EOF from the
// stream. A panic becomes a 451.
func (ss *session) callData(ctx context.Context, env *Envelope, dr *dataReader) (r *Reply, sawEOF bool) {
	tr := &eofTracker{r: dr}
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("smtpd: Handler.Data panicked", "panic", fmt.Sprint(p))
			r, sawEOF = replyHandlerBug, false
		}
	}()
	r = ss.h.Data(ctx, env, tr)
	return r, tr.eof
}

// eofTracker notes whether the reader returned io.EOF.
type eofTracker struct {
	r   io.Reader
	eof bool
}

func (t *eofTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}
