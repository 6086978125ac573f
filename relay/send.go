package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"relaymail/message"
)

// pipelineBatch bounds how many RCPT commands go out in one write when
// pipelining, so neither side's socket buffers can fill while the other is
// not reading (RFC 2920 §3.1 leaves the group size to the client).
const pipelineBatch = 100

// Envelope is the message's envelope as relay sends it: MAIL FROM and
// RCPT TO, and the facts that choose their extension parameters. It is
// message.Envelope, the one envelope type sendmail makes and the queue
// stores.
type Envelope = message.Envelope

// Result is the outcome of one transaction, one entry per recipient.
type Result struct {
	Recipients []RecipientResult // one per Envelope.To, same order
	Data       *Reply            // the reply to the final dot; nil when the message was not sent
}

// RecipientResult is the outcome for one recipient.
type RecipientResult struct {
	Addr string
	// Err is nil when the server took the message for Addr. Otherwise
	// it is the RCPT reply (*Error: 4xx deferred, 5xx refused) or, when
	// the whole transaction failed, the error Send returned (temporary
	// ones count as deferred).
	Err error
}

// Accepted returns the recipients the server took the message for.
func (r *Result) Accepted() []string {
	var out []string
	for _, rr := range r.Recipients {
		if rr.Err == nil {
			out = append(out, rr.Addr)
		}
	}
	return out
}

// Deferred returns the recipients that failed temporarily (retry later).
func (r *Result) Deferred() []RecipientResult {
	var out []RecipientResult
	for _, rr := range r.Recipients {
		if rr.Err != nil && Temporary(rr.Err) {
			out = append(out, rr)
		}
	}
	return out
}

// Refused returns the recipients that failed permanently.
func (r *Result) Refused() []RecipientResult {
	var out []RecipientResult
	for _, rr := range r.Recipients {
		if rr.Err != nil && !Temporary(rr.Err) {
			out = append(out, rr)
		}
	}
	return out
}

// Send runs one mail transaction: MAIL, RCPT for each recipient, DATA, the
// message from msg (streamed: CRLF, dot-stuffed, long lines broken) and the
// final dot. A recipient refused at RCPT is a result, not an error: the
// others still get the message, and when none is accepted no message is
// sent and err is nil.
//
// err is non-nil when the message as a whole was not accepted: a client
// side check failed before MAIL (ErrTooBig, ErrUnsupported for a missing
// SMTPUTF8), MAIL, DATA or the final dot was refused, or the transport
// failed. The Result is then still complete: every recipient without an
// RCPT failure of its own carries err.
//
// Send may be called again on the same session (RSET is sent first when
// the last transaction did not finish), unless the session is broken.
func (s *Session) Send(ctx context.Context, env *Envelope, msg io.Reader) (*Result, error) {
	pre := s.pending // env's first group, when it went out behind the last final dot
	if pre != nil && pre.env != env {
		// Another transaction was written behind the dot: end it first.
		end := s.begin(ctx)
		s.settlePending()
		end()
		pre = nil
	}
	s.pending = nil
	res := &Result{Recipients: make([]RecipientResult, len(env.To))}
	for i, to := range env.To {
		res.Recipients[i].Addr = to
	}
	fail := func(err error) (*Result, error) {
		for i := range res.Recipients {
			if res.Recipients[i].Err == nil {
				res.Recipients[i].Err = err
			}
		}
		res.Data = nil
		return res, err
	}
	if len(env.To) == 0 {
		return res, errors.New("relay: no recipients")
	}
	if s.broken != nil {
		return fail(s.broken)
	}
	// A recipient no RCPT TO can carry is refused alone, without a
	// command, and the others still get the message (SPEC §3). The intake
	// refuses such an address first; this covers envelopes queued before
	// it did, and callers of relay that have no intake.
	wire := *env
	sendable, to := carried(env.To, func(i int, err error) { res.Recipients[i].Err = err })
	wire.To = to
	if len(sendable) == 0 {
		return res, nil
	}
	mail, rcpts, err := s.envelopeCommands(&wire)
	if err != nil {
		return fail(err)
	}

	end := s.begin(ctx)
	defer end()

	if pre == nil {
		if err := s.resetIfInTx(); err != nil {
			return fail(err)
		}
	}

	_, pipelining := s.ext["PIPELINING"]
	_, chunking := s.ext["CHUNKING"]
	// BDAT (RFC 3030) for a large message: the server need not scan it
	// for the final dot. A smaller one goes with DATA, where QUIT can
	// ride behind the final dot; RFC 3030 shows QUIT only after the reply
	// to BDAT LAST, and servers are known to mishandle it earlier.
	bdat := chunking && env.Size >= bdatMinSize
	s.inTx = true
	var (
		mailErr   error
		accepted  int
		envDone   bool
		dataSent  bool
		dataReply *Reply
	)
	// Groups of commands, each one write and then its replies in order.
	// Without PIPELINING: [MAIL] [RCPT] ... [DATA], one round trip each,
	// and no DATA when no RCPT was accepted. With it: [MAIL RCPT*100]
	// [RCPT*100] ... the last group ending in DATA (RFC 2920 §3.1). With
	// BDAT there is no DATA: the chunks follow once every MAIL and RCPT
	// reply is in (RFC 3030 §2).
	first, i := true, 0
	for !envDone && mailErr == nil {
		var cmds []command
		if first {
			cmds = append(cmds, mail)
		}
		n := min(pipelineBatch, len(rcpts)-i)
		if !pipelining {
			n = min(1, n)
			if first {
				n = 0
			}
		}
		base := i
		cmds = append(cmds, rcpts[i:i+n]...)
		i += n
		if i == len(rcpts) && (pipelining || len(cmds) == 0) {
			if !pipelining && accepted == 0 {
				break // no DATA without a recipient
			}
			envDone = true
			if !bdat {
				cmds = append(cmds, command{name: "DATA", line: "DATA"})
				dataSent = true
			}
		}
		if len(cmds) == 0 {
			break // BDAT without PIPELINING: the last RCPT has its reply
		}
		if first && pre != nil {
			// Written behind the last final dot (SendPipelined): only
			// the replies are due.
			if !sameLines(pre.cmds, cmds) {
				e := errors.New("relay: internal error: the pipelined envelope does not match the message")
				s.broken = e
				return fail(e)
			}
		} else if err := s.write(cmds...); err != nil {
			return fail(err)
		}
		first = false
		for _, c := range cmds {
			r, err := s.readReply(c.name, c.arg)
			if err != nil {
				return fail(err)
			}
			switch c.name {
			case "MAIL FROM":
				if err := s.expect(c.name, c.arg, r, 2); err != nil {
					if s.broken != nil {
						return fail(err)
					}
					mailErr = err
				}
			case "RCPT TO":
				idx := sendable[base]
				base++
				if mailErr != nil {
					continue // the 503s that follow a refused MAIL say nothing about the address
				}
				if err := s.expect(c.name, c.arg, r, 2); err != nil {
					if s.broken != nil {
						return fail(err)
					}
					res.Recipients[idx].Err = err
				} else {
					accepted++
				}
			case "DATA":
				dataReply = r
			}
		}
	}

	if dataSent && dataReply.Code == 354 && (mailErr != nil || accepted == 0) {
		// Pipelined DATA that the server accepted although nothing can be
		// delivered (RFC 2920 §3.1 expects 503/554 here): send an empty
		// message so the dialogue stays in sync; inTx stays set, so the
		// next Send resets first.
		s.tr.body(0)
		if err := s.write(command{name: "end of data", line: "."}); err != nil {
			return fail(err)
		}
		if _, err := s.readFinal("end of data"); err != nil {
			return fail(err)
		}
	}
	if mailErr != nil {
		return fail(mailErr)
	}
	if accepted == 0 {
		return res, nil
	}
	var (
		r    *Reply
		last = "end of data" // the command whose reply says whether the message went
	)
	if bdat {
		last = "BDAT"
		r, err = s.sendChunks(msg, pipelining)
	} else {
		if err := s.expect("DATA", "", dataReply, 3); err != nil {
			return fail(err)
		}
		r, err = s.sendData(msg)
	}
	if err == nil {
		err = s.endTx(last, r)
	}
	if err != nil {
		return fail(err)
	}
	res.Data = r
	return res, nil
}

// endTx judges r, the reply to last, the command that ended the message
// (the final dot, or BDAT LAST), for Send and Tx.Data: nil for a 250,
// else the error, and the transaction is over.
func (s *Session) endTx(last string, r *Reply) error {
	if r.Code/100 == 2 && r.Code != 250 {
		// RFC 5321 §4.3.2: 250 is the only success reply to the data.
		// Anything else of class 2 (say a 221 that answers a pipelined
		// QUIT) means the dialogue is out of step: not a delivery.
		e := replyError(last, "", r)
		e.class = ErrUnknownReply
		s.broken = e
		return e
	}
	if err := s.expect(last, "", r, 2); err != nil {
		if s.broken == nil {
			s.inTx = false // the transaction is over either way (RFC 5321 §4.1.1.4)
		}
		return err
	}
	s.inTx = false
	return nil
}

// carried returns the addresses a RCPT TO can carry, and their positions
// in addrs; each other one is refused here, without a command, with an
// *Error that refuse gets along with its position.
func carried(addrs []string, refuse func(i int, err error)) (pos []int, wire []string) {
	pos = make([]int, 0, len(addrs))
	for i, a := range addrs {
		if err := CheckAddress(a); err != nil {
			refuse(i, clientError("RCPT TO", fmt.Sprintf("%.80q", a), ErrFatal, err.Error()))
			continue
		}
		pos = append(pos, i)
		wire = append(wire, a)
	}
	return pos, wire
}

// bdatMinSize is the size on the wire from which Send uses BDAT when the
// server offers CHUNKING; below it the round trip QUIT can save after DATA
// is worth more than what BDAT saves the server.
const bdatMinSize = 1 << 20

// bdatWindow is how many BDAT chunks may await their replies when the
// server offers PIPELINING: enough to keep the connection busy while the
// replies travel, few enough that a refusal stops the rest soon.
const bdatWindow = 4

// sendData sends the message after the 354 reply to DATA: dot-stuffed,
// then the final dot (with QUIT behind it for SendAndQuit), and returns
// the reply to the dot.
func (s *Session) sendData(msg io.Reader) (*Reply, error) {
	// Nothing may follow the 354 until the final dot: a reply queued
	// behind it would be read as the answer to the dot, and the real one
	// (perhaps a 554) taken for the reply to QUIT.
	if err := s.nothingBehind("DATA", "its 354 reply, before the message"); err != nil {
		return nil, err
	}
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	// Each full buffer goes straight to the connection (bufio passes a
	// write larger than its own buffer through); the last stays in s.bw
	// for QUIT to join it.
	dw := newDotWriter(*bp, true, func(b []byte, _ bool) error {
		_, err := s.bw.Write(b[chunkHead:])
		return err
	})
	if err := s.encodeBody(dw, msg, "write message body"); err != nil {
		return nil, err
	}
	s.tr.body(dw.n)
	s.tr.client(".")
	if b := s.behind; b != nil && !s.quitAfterData && b.stop.Err() == nil {
		// RFC 2920 §3.1: the next transaction's MAIL, RCPTs and DATA may
		// follow the final dot in the same write; their replies come
		// after the dot's, and the next Send reads them.
		for _, c := range b.cmds {
			s.tr.client(c.line)
			_, _ = s.bw.WriteString(c.line)
			_, _ = s.bw.WriteString("\r\n")
		}
		s.pending = b
	}
	s.behind = nil
	if s.quitAfterData {
		// RFC 2920 §3.1: QUIT may close a group; its reply arrives with
		// the one to the final dot, saving the round trip of its own.
		if _, err := s.bw.WriteString("QUIT\r\n"); err != nil {
			return nil, s.transportErr("write QUIT", err)
		}
		s.tr.client("QUIT")
		s.quitSent = true
	}
	if err := s.bw.Flush(); err != nil {
		return nil, s.transportErr("write message body", err)
	}
	return s.readFinal("end of data")
}

// readFinal reads the reply to cmd, the command that ends a message (the
// final dot, BDAT LAST), within the data timeout (RFC 5321 §4.5.3.2.6:
// the server may be scanning the message).
func (s *Session) readFinal(cmd string) (*Reply, error) {
	s.readTimeout = s.host.dataTimeout()
	r, err := s.readReply(cmd, "")
	s.readTimeout = s.timeout
	return r, err
}

// nothingBehind breaks the session when the server sent octets after
// what (the replies read so far) and before the message: the dialogue is
// out of step, and nothing is sent.
func (s *Session) nothingBehind(cmd, what string) error {
	n := s.br.Buffered()
	if n == 0 {
		return nil
	}
	e := clientError(cmd, "", ErrUnknownReply, fmt.Sprintf("server sent %d octets after %s", n, what))
	s.broken = e
	return e
}

// sendChunks sends the message as BDAT chunks (RFC 3030 §2), neither
// stuffed nor terminated, the last one "BDAT n LAST", and returns the
// reply to that one. With PIPELINING the server must take chunks
// pipelined (RFC 3030 §2), so up to bdatWindow go out before their
// replies are read; without it each chunk waits for its 250. After a
// refused chunk no other is sent (RFC 3030 §2); the replies to those
// already on their way are read, to stay in step, and the transaction is
// left for the next Send to reset.
func (s *Session) sendChunks(msg io.Reader, pipelining bool) (*Reply, error) {
	if err := s.nothingBehind("BDAT", "its replies to the envelope"); err != nil {
		return nil, err
	}
	window := 1
	if pipelining {
		window = bdatWindow
	}
	var (
		pending int   // chunks sent whose reply is not read
		refused error // the first chunk refused
		final   *Reply
	)
	// settle reads the reply to the oldest chunk in flight.
	settle := func() error {
		pending--
		r, err := s.readReply("BDAT", "")
		if err != nil {
			return err
		}
		if refused == nil {
			refused = s.expect("BDAT", "", r, 2)
		}
		return nil
	}
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	dw := newDotWriter(*bp, false, func(b []byte, last bool) error {
		line := "BDAT " + strconv.Itoa(len(b)-chunkHead)
		if last {
			line += " LAST"
		}
		// The command goes into the room in front of the chunk: one write.
		start := chunkHead - len(line) - 2
		copy(b[start:], line)
		copy(b[start+len(line):], "\r\n")
		s.tr.client(line)
		if _, err := s.bw.Write(b[start:]); err != nil {
			return s.transportErr("write "+line, err)
		}
		if err := s.bw.Flush(); err != nil {
			return s.transportErr("write "+line, err)
		}
		pending++
		for pending > 0 && (pending >= window || last) {
			if last && pending == 1 {
				r, err := s.readFinal("BDAT")
				pending--
				if err != nil {
					return err
				}
				final = r
				break
			}
			if err := settle(); err != nil {
				return err
			}
		}
		return refused
	})
	err := s.encodeBody(dw, msg, "write BDAT")
	if refused != nil && s.broken == nil {
		// Stopped sending: collect the replies to the chunks in flight.
		for pending > 0 {
			if err := settle(); err != nil {
				return nil, err
			}
		}
		return nil, refused
	}
	if err != nil {
		return nil, err
	}
	return final, nil
}

// encodeBody runs msg through dw and closes it. When the reader or the
// connection fails, the message on the wire is incomplete and must not be
// ended: the connection is dropped so that the server discards it. A
// refusal from the server (an *Error from emit) is returned as it is.
func (s *Session) encodeBody(dw *dotWriter, msg io.Reader, op string) error {
	_, err := dw.ReadFrom(msg)
	if err == nil {
		err = dw.Close()
	}
	if err == nil {
		return nil
	}
	var (
		rerr *readError
		serr *Error
		terr *TransportError
	)
	switch {
	case errors.As(err, &rerr):
		err = fmt.Errorf("relay: reading the message: %w", rerr.err)
		if s.broken == nil {
			s.broken = err
		}
	case errors.As(err, &serr):
		if s.broken == nil {
			return err // the session is in step: the refusal is the answer
		}
	case !errors.As(err, &terr):
		err = s.transportErr(op, err)
	}
	_ = s.Close()
	return err
}

// pendingTx is a transaction's first group of commands (MAIL, RCPTs and
// DATA) to be written, or already written, behind the previous message's
// final dot.
type pendingTx struct {
	env  *Envelope
	cmds []command
	stop context.Context // done: do not write it
}

// SendPipelined is Send for a message with another behind it. When the
// server offers PIPELINING and both go with DATA (not BDAT), next's MAIL,
// RCPTs (up to pipelineBatch) and DATA travel in the same write as this
// message's final dot (RFC 2920 §3.1), unless stop is done by then: a
// session of many messages then costs one round trip per message, not
// two. The replies to next's commands are read by the following Send or
// SendPipelined for next, the same *Envelope, which must come next;
// Quit instead reads them and ends that transaction unsent (closing
// the connection when the server already answered DATA with 354: no
// command can end a message body, and a server delivers only on the
// final dot, RFC 5321 §4.1.1.4).
//
// The result for env is exactly Send's: the replies that follow the one
// to its dot belong to next. Whatever that reply was (a 554, or none
// because the connection dropped), next's own outcome comes from its own
// replies, or from the broken session.
//
// A message sent with BDAT is never pipelined across its BDAT LAST: RFC
// 3030 shows the commands after a BDAT LAST only once its reply is in
// (§4.2), and says nothing of a transaction that follows it.
func (s *Session) SendPipelined(ctx context.Context, env *Envelope, msg io.Reader, next *Envelope, stop context.Context) (*Result, error) {
	s.behind = s.firstGroup(env, next, stop)
	defer func() { s.behind = nil }()
	return s.Send(ctx, env, msg)
}

// firstGroup returns next's first group of commands to go behind env's
// final dot, or nil when it may not: no PIPELINING, either message goes
// with BDAT, or next would fail a check before MAIL (Send then reports
// that for next on its own).
func (s *Session) firstGroup(env, next *Envelope, stop context.Context) *pendingTx {
	_, pipelining := s.ext["PIPELINING"]
	_, chunking := s.ext["CHUNKING"]
	if next == nil || next == env || !pipelining || len(next.To) == 0 ||
		chunking && (env.Size >= bdatMinSize || next.Size >= bdatMinSize) {
		return nil
	}
	for _, to := range next.To {
		if CheckAddress(to) != nil {
			return nil
		}
	}
	mail, rcpts, err := s.envelopeCommands(next)
	if err != nil {
		return nil
	}
	n := min(pipelineBatch, len(rcpts))
	cmds := append([]command{mail}, rcpts[:n]...)
	if n == len(rcpts) {
		cmds = append(cmds, command{name: "DATA", line: "DATA"})
	}
	return &pendingTx{env: next, cmds: cmds, stop: stop}
}

// settlePending reads the replies to a group written behind the last
// final dot that no Send took up, and reports whether the session is
// still in step. When the server answered its DATA with 354, it waits for
// a message body that will not come and no command can end: the
// connection is closed, and the server, which delivers only on the final
// dot, drops the transaction.
func (s *Session) settlePending() bool {
	p := s.pending
	s.pending = nil
	if p == nil || s.broken != nil {
		return s.broken == nil
	}
	s.inTx = true // MAIL may have been taken: RSET before another
	for _, c := range p.cmds {
		r, err := s.readReply(c.name, c.arg)
		if err != nil {
			return false
		}
		if c.name == "DATA" && r.Code == 354 {
			_ = s.Close()
			return false
		}
	}
	return true
}

func sameLines(a, b []command) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].line != b[i].line {
			return false
		}
	}
	return true
}

// SendAndQuit is Send for the last message of a session, followed by
// Quit. When the server offers PIPELINING, QUIT travels in the same write
// as the final dot (one round trip less per session than Send then Quit);
// otherwise it is Send then Quit. The session is closed when it returns.
func (s *Session) SendAndQuit(ctx context.Context, env *Envelope, msg io.Reader) (*Result, error) {
	if _, ok := s.ext["PIPELINING"]; !ok {
		res, err := s.Send(ctx, env, msg)
		_ = s.Quit()
		return res, err
	}
	s.quitAfterData = true
	res, err := s.Send(ctx, env, msg)
	s.quitAfterData = false
	if !s.quitSent {
		_ = s.Quit() // no DATA was sent (every recipient refused): QUIT alone
		return res, err
	}
	if s.broken == nil {
		// The reply to QUIT changes nothing: the message's fate is known.
		end := s.begin(ctx)
		_, _ = s.readReply("QUIT", "")
		end()
	}
	_ = s.Close()
	return res, err
}

// envelopeCommands checks env against the server's extensions and builds
// MAIL FROM and the RCPT TOs with the parameters the server offers. The
// checks that make sending pointless happen here, before MAIL: an address
// that needs SMTPUTF8 the server lacks, a message over the advertised SIZE.
func (s *Session) envelopeCommands(env *Envelope) (mail command, rcpts []command, err error) {
	if err := CheckAddress(env.From); err != nil {
		return mail, nil, fmt.Errorf("relay: invalid sender %.80q: %w", env.From, err)
	}
	if env.To == nil {
		return mail, nil, errors.New("relay: no recipients")
	}
	for _, a := range env.To {
		if a == "" {
			return mail, nil, errors.New("relay: empty recipient address")
		}
	}
	utf8 := "" // the first address that needs SMTPUTF8
	for _, a := range append([]string{env.From}, env.To...) {
		if utf8 == "" && !isASCII(a) {
			utf8 = a
		}
	}
	if _, ok := s.ext["SMTPUTF8"]; utf8 != "" && !ok {
		return mail, nil, clientError("MAIL FROM", env.From, ErrUnsupported,
			"<"+utf8+"> is not ASCII and the server does not offer SMTPUTF8")
	}
	params := ""
	if v, ok := s.ext["SIZE"]; ok && env.Size > 0 {
		if limit, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64); perr == nil && limit > 0 && env.Size > limit {
			return mail, nil, clientError("MAIL FROM", env.From, ErrTooBig,
				fmt.Sprintf("message of %d octets is larger than the server's limit of %d", env.Size, limit))
		}
		params += " SIZE=" + strconv.FormatInt(env.Size, 10)
	}
	if _, ok := s.ext["8BITMIME"]; ok && env.EightBit {
		params += " BODY=8BITMIME"
	}
	if utf8 != "" {
		params += " SMTPUTF8"
	}
	_, dsn := s.ext["DSN"]
	if dsn && env.Ret != "" {
		ret := strings.ToUpper(env.Ret)
		if ret != "FULL" && ret != "HDRS" {
			return mail, nil, fmt.Errorf("relay: invalid DSN RET %q", env.Ret)
		}
		params += " RET=" + ret
	}
	if dsn && env.EnvID != "" {
		params += " ENVID=" + xtext(env.EnvID)
	}
	notify := ""
	if dsn && len(env.Notify) > 0 {
		vals := make([]string, len(env.Notify))
		for i, v := range env.Notify {
			v = strings.ToUpper(strings.TrimSpace(v))
			switch v {
			case "NEVER", "SUCCESS", "DELAY", "FAILURE":
			default:
				return mail, nil, fmt.Errorf("relay: invalid DSN NOTIFY value %q", v)
			}
			if v == "NEVER" && len(env.Notify) > 1 {
				return mail, nil, errors.New("relay: DSN NOTIFY=NEVER cannot be combined with other values")
			}
			vals[i] = v
		}
		notify = " NOTIFY=" + strings.Join(vals, ",")
	}
	mail = command{name: "MAIL FROM", arg: env.From, line: "MAIL FROM:<" + env.From + ">" + params}
	for _, a := range env.To {
		rcpts = append(rcpts, command{name: "RCPT TO", arg: a, line: "RCPT TO:<" + a + ">" + notify})
	}
	return mail, rcpts, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// xtext encodes s as RFC 3461 §4 xtext: "+" , "=" and octets outside
// 33..126 become "+XX".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
