package delivery

import (
	"fmt"
	"log/slog"
	"relaymail/config"
	"time"

	"relaymail/queue"
	"relaymail/sendmail"
)

// enqueue commits msg to the queue for recipients (msg.To, or the ones
// still to do after an attempt); as the attempt left them. The queue
// links a body it spilled into place rather than copying it (Queue.Store).
func enqueue(msg *sendmail.Message, o *Options, recipients []string, after attempt) error {
	q, err := o.queue()
	if err != nil {
		return err
	}
	now := o.now()
	env := &queue.Envelope{ID: msg.ID, Envelope: msg.Envelope, Delivered: after.delivered,
		Created: now, Attempts: after.attempts, LastError: after.lastErr, Header: msg.Head}
	env.To = recipients
	if after.attempts > 0 {
		env.NextAttempt = now.Add(queue.Backoff(after.attempts, nil))
	}
	return q.Store(env, msg.Body)
}

// attempt is what a failed delivery attempt leaves for the queue: the
// recipients that already have the message (for a later DSN), and the
// attempts so far and why the last failed. The zero attempt is a message
// queued without trying.
type attempt struct {
	delivered []string
	attempts  int
	lastErr   string
}

// keepFailed keeps a message refused for good where the administrator
// finds it: the queue's failed/ (relaymail --requeue ID sends it again),
// else dead.letter.
func keepFailed(msg *sendmail.Message, o *Options, now time.Time, f *Failure) error {
	if err := enqueue(msg, o, msg.To, attempt{attempts: 1, lastErr: f.Text}); err != nil {
		return keep(msg, *o, now, f)
	}
	// The body's lock is held until the message is closed.
	msg.Close()
	q, _ := o.queue()
	it, err := q.Lock(msg.ID)
	if err == nil {
		err = it.Fail()
		it.Unlock()
	}
	if err != nil {
		// Still safe in the queue; a runner will bounce it.
		f.Text += fmt.Sprintf(" (message queued as %s: %v)", msg.ID, err)
		return f
	}
	f.Text += fmt.Sprintf(" (message kept as %s in %s/failed)", msg.ID, q.Dir())
	return f
}

// logQueued is the log line of a message queued without an attempt.
func logQueued(log *slog.Logger, msg *sendmail.Message, to []string, delay time.Duration) {
	logLine{id: msg.ID, from: msg.From, to: to, status: "queued", size: msg.Size(), delay: delay}.write(log)
}

// NewAcceptor returns the sendmail.Acceptor that reads caller's messages.
// With a queue, a body that outgrows memory is spilled into the queue's
// filesystem (Queue.NewBody): if the message ends up queued, Queue.Store
// links that file into place instead of copying it.
func NewAcceptor(cfg *config.Config, caller sendmail.Caller, q *queue.Queue) *sendmail.Acceptor {
	a := &sendmail.Acceptor{Config: cfg, Caller: caller}
	if q != nil {
		a.Spill = func() (sendmail.SpillFile, error) { return q.NewBody() }
	}
	return a
}
