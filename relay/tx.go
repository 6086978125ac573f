package relay

import (
	"context"
	"errors"
	"io"
)

// Tx is one mail transaction opened step by step, for a caller that
// learns its envelope as it goes: the SMTP personality (-bs, -bd) relays
// each client RCPT to the smarthost when the client sends it, so that
// the client hears the smarthost's verdict in that RCPT's reply. Send
// stays the one-call form for a message whose envelope is whole (-bm,
// the queue runner).
//
// The steps are Begin (MAIL), Rcpt (any number of times), then either
// Data or Reset. Like Session, a Tx is not safe for concurrent use, and a
// failure that breaks the session (transport, 421, an unknown reply)
// leaves it refusing further commands.
type Tx struct {
	s        *Session
	env      Envelope // From and the MAIL parameters; To only for the checks
	accepted int      // recipients the server took
	done     bool
}

// Begin opens a transaction: RSET first when the session's last
// transaction did not finish, then MAIL FROM with the parameters the
// server offers. env.To is not sent: it names the recipients known so far
// and only serves the checks (SMTPUTF8 needed and not offered); env.Size
// is the size the client declared (0: none, no SIZE=). A refused MAIL is
// an *Error and leaves the session usable for another Begin.
func (s *Session) Begin(ctx context.Context, env *Envelope) (*Tx, error) {
	if s.broken != nil {
		return nil, s.broken
	}
	e := *env
	if len(e.To) == 0 {
		e.To = []string{"postmaster"} // envelopeCommands checks recipients; none is known yet
	}
	mail, _, err := s.envelopeCommands(&e)
	if err != nil {
		return nil, err
	}
	end := s.begin(ctx)
	defer end()
	if err := s.resetIfInTx(); err != nil {
		return nil, err
	}
	s.inTx = true
	r, err := s.cmd(mail)
	if err != nil {
		return nil, err
	}
	if err := s.expect(mail.name, mail.arg, r, 2); err != nil {
		return nil, err
	}
	return &Tx{s: s, env: *env}, nil
}

// resetIfInTx sends RSET when a transaction is open on the wire. A server
// that cannot reset is not one to trust with the next message.
func (s *Session) resetIfInTx() error {
	if !s.inTx {
		return nil
	}
	r, err := s.cmd(command{name: "RSET", line: "RSET"})
	if err != nil {
		return err
	}
	if err := s.expect("RSET", "", r, 2); err != nil {
		s.broken = err
		return err
	}
	s.inTx = false
	return nil
}

// Rcpt sends RCPT TO for each of addrs, all in one write when the server
// offers PIPELINING (RFC 2920; in groups of pipelineBatch), and returns
// each address's verdict in order: nil when accepted, else the *Error of
// its reply (4xx deferred, 5xx refused) or, for an address no RCPT TO can
// carry, a refusal made here without a command. err is non-nil when the
// session failed; the verdicts are then unknown.
func (t *Tx) Rcpt(ctx context.Context, addrs ...string) (verdicts []error, err error) {
	s := t.s
	if t.done {
		return nil, errors.New("relay: transaction already ended")
	}
	if s.broken != nil {
		return nil, s.broken
	}
	verdicts = make([]error, len(addrs))
	sendable, wire := carried(addrs, func(i int, err error) { verdicts[i] = err })
	if len(wire) == 0 {
		return verdicts, nil
	}
	e := t.env
	e.To = wire
	_, rcpts, err := s.envelopeCommands(&e)
	if err != nil {
		return nil, err
	}
	end := s.begin(ctx)
	defer end()
	_, pipelining := s.ext["PIPELINING"]
	batch := 1
	if pipelining {
		batch = pipelineBatch
	}
	for i := 0; i < len(rcpts); i += batch {
		group := rcpts[i:min(i+batch, len(rcpts))]
		if err := s.write(group...); err != nil {
			return nil, err
		}
		for j, c := range group {
			r, err := s.readReply(c.name, c.arg)
			if err != nil {
				return nil, err
			}
			if err := s.expect(c.name, c.arg, r, 2); err != nil {
				if s.broken != nil {
					return nil, err
				}
				verdicts[sendable[i+j]] = err
				continue
			}
			t.accepted++
		}
	}
	return verdicts, nil
}

// Data sends DATA, the message from msg (streamed: CRLF, dot-stuffed,
// long lines broken) and the final dot, and returns the reply to the
// dot, which is 250 when err is nil. It ends the transaction whatever
// happens. A message that cannot be read whole, or a connection that
// fails while it is written, is never terminated: the connection is
// closed instead, so that the server discards what it got.
func (t *Tx) Data(ctx context.Context, msg io.Reader) (*Reply, error) {
	s := t.s
	if t.done {
		return nil, errors.New("relay: transaction already ended")
	}
	t.done = true
	if t.accepted == 0 {
		return nil, errors.New("relay: no recipient accepted")
	}
	if s.broken != nil {
		return nil, s.broken
	}
	end := s.begin(ctx)
	defer end()
	r, err := s.cmd(command{name: "DATA", line: "DATA"})
	if err != nil {
		return nil, err
	}
	if err := s.expect("DATA", "", r, 3); err != nil {
		return nil, err
	}
	r, err = s.sendData(msg) // the body step Send takes after DATA
	if err != nil {
		return nil, err
	}
	if err := s.endTx("end of data", r); err != nil {
		return nil, err
	}
	return r, nil
}

// Reset ends the transaction without a message (the client sent RSET or
// left): RSET now, so that nothing half-given can be delivered. A session
// that cannot reset is broken (Close it).
func (t *Tx) Reset(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	s := t.s
	if s.broken != nil {
		return s.broken
	}
	end := s.begin(ctx)
	defer end()
	return s.resetIfInTx()
}

// Broken reports why the session refuses further commands, or nil when it
// can take another transaction.
func (s *Session) Broken() error { return s.broken }
