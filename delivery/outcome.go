package delivery

import (
	"errors"

	"relaymail/relay"
)

// The outcome classes of SPEC §6 that are about delivery. main maps each
// to its exit status; Failure carries the one line the caller sees.
var (
	// ErrRecipientsRefused: some recipients were refused permanently, the
	// others got the message (exit 67).
	ErrRecipientsRefused = errors.New("recipient refused")
	// ErrRejected: the message was refused permanently (exit 69).
	ErrRejected = errors.New("message refused")
	// ErrTemporary: the message could not go now and was not queued
	// (exit 75).
	ErrTemporary = errors.New("temporary failure")
	// ErrProtocol: the server answered something unexpected and the queue
	// is off (exit 76).
	ErrProtocol = errors.New("protocol error")
	// ErrAuth: the smarthost refused the credentials and the queue is off
	// (exit 77).
	ErrAuth = errors.New("authentication refused")
)

// Failure is a delivery outcome other than success: its class is one of
// the sentinels above, its text the single line SPEC §6 promises. The
// SMTP personality also needs the server's own words: Cause is the error
// that stopped the whole message, Refused the recipients refused for good.
type Failure struct {
	Class   error
	Text    string
	Cause   error
	Refused []relay.RecipientResult
	Sent    int // recipients that have the message or will get it from the queue
}

func (f *Failure) Error() string { return f.Text }

// Is lets errors.Is match the outcome class.
func (f *Failure) Is(target error) bool { return target == f.Class }
