package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
)

// Attempt is one try at one host, for the log line of SPEC §8.
type Attempt struct {
	Host   Host
	TLS    *tls.ConnectionState // as negotiated, also when a later step failed; nil: never encrypted
	Result *Result              // nil when no transaction was attempted
	Err    error                // nil: the message went (see Result for each recipient)
}

// Deliver sends the message over hosts[0] (the smarthost) and, after a
// temporary failure of the session or the transaction as a whole, over
// each following host (the fallbacks) in order: Dialer.Try with a
// transaction that sends the message and quits. It stops at the first
// host that takes the transaction (even when some recipients were refused
// or deferred: those are per-recipient results, not a reason to move on)
// and at the first permanent failure.
//
// msg is re-read from offset 0 for each host, size octets long; env.Size
// 0 is measured with WireSize. It returns the last attempt, the earlier failed
// attempts in order, and last.Err.
func Deliver(ctx context.Context, hosts []Host, o Options, env *Envelope, msg io.ReaderAt, size int64) (last Attempt, failed []Attempt, err error) {
	if len(hosts) == 0 {
		return Attempt{}, nil, errors.New("relay: no smarthost configured")
	}
	e := *env
	if e.Size == 0 {
		n, err := WireSize(io.NewSectionReader(msg, 0, size))
		if err != nil {
			return Attempt{Host: hosts[0], Err: err}, nil, err
		}
		e.Size = n
	}
	d := Dialer{Hosts: hosts, Options: o}
	return d.Try(ctx, func(s *Session) (*Result, error) {
		return s.SendAndQuit(ctx, &e, io.NewSectionReader(msg, 0, size))
	})
}

// TryNextHost reports whether a failure at one host is a reason to try the
// next: a temporary failure, or a reply that cannot be understood (SPEC §6
// treats an unknown reply like a temporary failure). Dialer.Try applies
// it; it is exported for the tests that pin it down.
func TryNextHost(err error) bool {
	return Temporary(err) || errors.Is(err, ErrUnknownReply)
}

// Dialer tries a smarthost and its fallbacks in order: the one loop over
// hosts, for Deliver (a message now) and for the queue runner (a session
// kept open for a pass).
type Dialer struct {
	Hosts   []Host
	Options Options
	// Dead, when set, is the record of the hosts whose session failed
	// earlier, kept by the caller across calls: the queue runner keeps one
	// per pass (SPEC §7), so a hung or hostile smarthost costs one attempt
	// per pass, not one per message.
	Dead *DeadHosts
}

// DeadHosts records, by position in a Dialer's Hosts, the hosts whose Dial
// failed (refused, timed out, no greeting, TLS, STARTTLS, AUTH: a
// *SessionError) and the error each gave. The zero value records nothing
// yet.
type DeadHosts struct{ err map[int]error }

// Try makes one attempt per host, in order, until one succeeds or fails
// for a reason TryNextHost does not accept, or ctx ends. An attempt at a
// host in d.Dead fails at once with the error it gave before; any other
// attempt dials the host and, when a session opened, runs transact on it.
// transact owns the session: it closes it (SendAndQuit) or keeps it (the
// queue runner, whose transact only keeps it and never fails, so a failed
// transaction there is the runner's to record, not a reason to move on).
//
// Moving on: any failure of Dial (a *SessionError: connect, greeting,
// EHLO, TLS, AUTH, whatever the code), a 4xx to MAIL, DATA or the final
// dot, a lost connection or a timeout, and a reply that cannot be
// understood. A permanent refusal of the transaction (5xx, too big)
// stops: another host of the same site would say the same.
//
// It returns the last attempt, the earlier failed attempts in order, and
// last.Err.
func (d Dialer) Try(ctx context.Context, transact func(*Session) (*Result, error)) (last Attempt, failed []Attempt, err error) {
	for i, h := range d.Hosts {
		last = d.attempt(ctx, i, h, transact)
		if last.Err == nil || i == len(d.Hosts)-1 || !TryNextHost(last.Err) || ctx.Err() != nil {
			break
		}
		failed = append(failed, last)
	}
	return last, failed, last.Err
}

// attempt is one Dial of host i, then transact; or, for a dead host, its
// earlier failure.
func (d Dialer) attempt(ctx context.Context, i int, h Host, transact func(*Session) (*Result, error)) Attempt {
	if err := d.Dead.failure(i); err != nil {
		return failedDial(h, err)
	}
	s, err := Dial(ctx, h, d.Options)
	if err != nil {
		var se *SessionError
		if errors.As(err, &se) && ctx.Err() == nil {
			d.Dead.add(i, err)
		}
		return failedDial(h, err)
	}
	a := Attempt{Host: s.Host()}
	if st, ok := s.TLSState(); ok {
		a.TLS = &st
	}
	a.Result, a.Err = transact(s)
	return a
}

// failedDial is the attempt at h whose Dial failed with err.
func failedDial(h Host, err error) Attempt {
	a := Attempt{Host: h, Err: err}
	var se *SessionError
	if errors.As(err, &se) {
		a.TLS = se.TLS // e.g. AUTH refused after STARTTLS
	}
	return a
}

// failure is host i's recorded error; nil when it is not dead.
func (d *DeadHosts) failure(i int) error {
	if d == nil {
		return nil
	}
	return d.err[i]
}

func (d *DeadHosts) add(i int, err error) {
	if d == nil {
		return
	}
	if d.err == nil {
		d.err = map[int]error{}
	}
	d.err[i] = err
}
