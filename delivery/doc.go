// Package delivery decides what becomes of a message relaymail has
// accepted: it relays it through the configured smarthosts with package
// relay, turns the per-recipient outcome into one of the outcomes of SPEC
// §6, logs one line per attempt (SPEC §8), and makes sure that a message
// that could not be delivered is never lost (dead.letter until the queue
// exists). Which host to try next is relay's rule (relay.Dialer), for
// Submit and for the queue runner alike; the runner only keeps the
// hosts found dead in its pass.
//
// It takes the message as sendmail produced it (a message.Message with
// the intake's extras) and hands its envelope to relay and the queue as
// it is; NewAcceptor wires sendmail's spill files to the queue, whose
// Store links such a body into place rather than copying it.
package delivery
