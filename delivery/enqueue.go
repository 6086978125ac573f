package delivery

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"time"

	"relaymail/queue"
	"relaymail/sendmail"
)

// enqueue commits msg to the queue for recipients. delivered are the
// recipients that already have it (for a later DSN); attempts and
// lastErr describe the attempt that failed, if any.
//
// When the body was spooled into the queue's filesystem (Acceptor.Spill
// = Queue.NewBody), it is linked into place, not copied: a large message
// is written to disk once.
func enqueue(msg *sendmail.Message, o *Options, recipients, delivered []string, attempts int, lastErr string) error {
	q, err := o.queue()
	if err != nil {
		return err
	}
	now := o.now()
	env := &queue.Envelope{
		ID:         msg.ID,
		Sender:     msg.Sender,
		Recipients: recipients,
		Delivered:  delivered,
		Created:    now,
		Attempts:   attempts,
		LastError:  lastErr,
		EightBit:   msg.EightBit,
		Notify:     msg.Notify,
		Ret:        msg.Ret,
		EnvID:      msg.EnvID,
		Header:     msg.HeaderBytes(),
	}
	if attempts > 0 {
		env.NextAttempt = now.Add(queue.Backoff(attempts, nil))
	}
	spool := msg.Body()
	if body, ok := spool.Spilled().(*queue.Body); ok {
		if err := spool.Flush(); err != nil {
			return err
		}
		return q.Commit(env, body)
	}
	if spool.Spilled() != nil {
		return q.Enqueue(env, io.NewSectionReader(spool, 0, spool.Size()))
	}
	return q.Enqueue(env, bytes.NewReader(spool.Bytes()))
}

// keepFailed keeps a message refused for good where the administrator
// finds it: the queue's failed/ (relaymail --requeue ID sends it again),
// else dead.letter.
func keepFailed(msg *sendmail.Message, o *Options, now time.Time, f *Failure) error {
	if err := enqueue(msg, o, msg.Recipients, nil, 1, f.Text); err != nil {
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
	logLine{id: msg.ID, from: msg.Sender, to: to, status: "queued", size: msg.Size(), delay: delay}.write(log)
}
