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
// each following host (the fallbacks) in order. It stops at the first host
// that takes the transaction (even when some recipients were refused or
// deferred: those are per-recipient results, not a reason to move on) and
// at the first permanent failure.
//
// Moving on: any failure of Dial (a *SessionError: connect, greeting,
// EHLO, TLS, AUTH, whatever the code), a 4xx to MAIL, DATA or the final
// dot, a lost connection or a timeout, and a reply that cannot be
// understood (SPEC §6 treats an unknown reply like a temporary failure).
// A permanent refusal of the transaction (5xx, too big) stops: another
// host of the same site would say the same.
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
	for i, h := range hosts {
		last = attempt(ctx, h, o, &e, io.NewSectionReader(msg, 0, size))
		if last.Err == nil || i == len(hosts)-1 || !TryNextHost(last.Err) || ctx.Err() != nil {
			break
		}
		failed = append(failed, last)
	}
	return last, failed, last.Err
}

// TryNextHost reports whether a failure at one host is a reason to try the
// next: a temporary failure, or a reply that cannot be understood. Callers
// that open sessions themselves (the queue runner) use the same rule.
func TryNextHost(err error) bool {
	return Temporary(err) || errors.Is(err, ErrUnknownReply)
}

// attempt is one Dial, then SendAndQuit.
func attempt(ctx context.Context, h Host, o Options, env *Envelope, msg io.Reader) Attempt {
	a := Attempt{Host: h}
	s, err := Dial(ctx, h, o)
	if err != nil {
		a.Err = err
		var se *SessionError
		if errors.As(err, &se) {
			a.TLS = se.TLS // e.g. AUTH refused after STARTTLS
		}
		return a
	}
	a.Host = s.Host()
	if st, ok := s.TLSState(); ok {
		a.TLS = &st
	}
	a.Result, a.Err = s.SendAndQuit(ctx, env, msg)
	return a
}
