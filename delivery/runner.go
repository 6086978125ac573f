package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"relaymail/config"
	"relaymail/dsn"
	"relaymail/message"
	"relaymail/queue"
	"relaymail/relay"
)

// Runner delivers what is queued (relaymail -q, -q30m): each message it
// can lock, several per SMTP session, and for each recipient one of
// delivered, deferred to a later run (with growing intervals), or given
// up (refused for good, or queued longer than max_age) with a delivery
// status notification to the sender.
type Runner struct {
	Config *config.Config
	Queue  *queue.Queue
	Logger *slog.Logger
	Trace  io.Writer        // -v
	Now    func() time.Time // nil: time.Now
	Notice func(string)     // as Options.Notice

	sess *relay.Session // the open session, reused from message to message
	tls  string         // TLS of the last session or attempt, for the log
	// dead holds the hosts whose session failed in this pass (SPEC §7): a
	// hung or hostile smarthost costs one attempt per pass, not one per
	// message.
	dead relay.DeadHosts
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Pass says which queued messages a Run tries.
type Pass int

const (
	// DuePass tries the messages whose retry time has come (each run of
	// -q30m).
	DuePass Pass = iota
	// FullPass tries every message now (-q, like postqueue -f).
	FullPass
)

// Run makes one pass over the queue, as pass says. Bounces it
// generates are delivered in the same pass.
//
// Cancelling ctx (SIGTERM, SIGINT) is a stop, not an error (SPEC §7): no
// new transaction starts, the one in flight runs to its final reply
// (bounded by the smarthost's timeouts, not by ctx) and is recorded, the
// session ends with QUIT, and Run returns nil. Abandoning the wait for
// the final reply would leave a message the smarthost may have taken
// recorded as deferred, to be sent again.
func (r *Runner) Run(ctx context.Context, pass Pass) error {
	r.dead = relay.DeadHosts{}
	defer r.closeSession()
	// One fsync of the queue directory for all the messages delivered in
	// this pass, instead of one each: a crash in between may send one
	// again, never lose one.
	defer func() {
		if err := r.Queue.Sync(); err != nil {
			r.Logger.Warn("queue: " + err.Error())
		}
	}()
	if err := r.Queue.Cleanup(r.now()); err != nil {
		r.Logger.Warn("queue cleanup: " + err.Error())
	}
	r.failBodiless()
	// One message at a time, oldest first (queue.Walk): a pass does not
	// hold the queue's envelopes, so its memory barely grows with the
	// queue. The files it cannot read are known once the walk has
	// started, and named then, once.
	w := r.Queue.Walk()
	if err := w.Err(); err != nil {
		r.Logger.Warn("queue: " + err.Error())
	}
	var bounces []string
	// The message after the one being sent is locked and read first, so
	// that its MAIL can go out behind the final dot (SendPipelined): at
	// most two messages are held at a time, whatever the queue's size.
	take := func() *job {
		for ctx.Err() == nil && w.Next() {
			if pass != FullPass && !w.Due(r.now()) {
				continue
			}
			j, b := r.prepare(w.ID())
			bounces = append(bounces, b...)
			if j != nil {
				return j
			}
		}
		return nil
	}
	for cur := take(); cur != nil; {
		next := take()
		bounces = append(bounces, r.deliver(ctx, cur, next)...)
		cur.it.Unlock()
		if ctx.Err() != nil {
			if next != nil {
				next.it.Unlock() // its MAIL may be out: closeSession ends that transaction
			}
			return nil
		}
		cur = next
	}
	for _, id := range bounces {
		if ctx.Err() != nil {
			return nil
		}
		r.process(ctx, id)
	}
	return nil
}

// failBodiless moves envelopes that lost their body to failed/ and says
// so once, in one log line each.
func (r *Runner) failBodiless() {
	moved, err := r.Queue.FailBodiless()
	for _, env := range moved {
		l := r.logLine(env, env.To, "", "failed")
		l.msg = env.LastError + "; moved to failed/"
		l.write(r.Logger)
	}
	if err != nil {
		r.Logger.Warn(err.Error())
	}
}

// Loop runs the queue at once and then every interval until ctx ends
// (relaymail -q30m), trying each message when its retry time has come.
func (r *Runner) Loop(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.Run(ctx, DuePass); err != nil && ctx.Err() == nil {
			r.Logger.Warn("queue run: " + err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// job is a locked message ready to send: its envelope as it goes on the
// wire (the stored one, with the size as sent) and its content.
type job struct {
	it   *queue.Item
	renv relay.Envelope
	msg  *io.SectionReader
}

// process takes one message, tries it, and records the outcome. It
// returns the ids of bounces it queued.
func (r *Runner) process(ctx context.Context, id string) []string {
	j, bounce := r.prepare(id)
	if j == nil {
		return bounce
	}
	defer j.it.Unlock()
	return r.deliver(ctx, j, nil)
}

// prepare locks message id and returns it ready to send; nil when it
// cannot be had (locked by another runner, gone) or is settled already:
// queued longer than max_age, it is given up here, and the ids of the
// bounces queued for it are returned. The caller unlocks the job.
func (r *Runner) prepare(id string) (*job, []string) {
	it, err := r.Queue.Lock(id)
	if err != nil {
		if !errors.Is(err, queue.ErrLocked) && !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrNoBody) {
			r.Logger.Warn("queue: " + err.Error())
		}
		return nil, nil
	}
	env := it.Env

	if r.now().Sub(env.Created) > r.Config.Queue.MaxAge {
		reason := fmt.Sprintf("not delivered within %s", r.Config.Queue.MaxAge)
		if env.LastError != "" {
			reason += "; last error: " + env.LastError
		}
		failed := make([]dsn.Recipient, len(env.To))
		for i, to := range env.To {
			failed[i] = dsn.Recipient{Addr: to, Action: "failed", Status: "5.4.7", DiagnosticCode: diagnostic(env.LastError)}
		}
		l := r.logLine(env, env.To, "", "expired")
		l.msg = reason
		l.write(r.Logger)
		bounce := r.bounce(env, failed, "The message could not be delivered within "+r.Config.Queue.MaxAge.String()+".")
		r.giveUp(it)
		it.Unlock()
		return nil, bounce
	}
	content, size := it.Content()
	j := &job{it: it, renv: env.Envelope, msg: io.NewSectionReader(content, 0, size)}
	j.renv.Size, _ = relay.WireSize(io.NewSectionReader(content, 0, size)) // 0 (no SIZE=) when unreadable: sending fails then too
	return j, nil
}

// deliver tries j and records the outcome; next, when not nil, is the
// message the caller sends after it, whose envelope may go out behind
// j's final dot. It returns the ids of bounces it queued.
func (r *Runner) deliver(ctx context.Context, j *job, next *job) []string {
	it, env := j.it, j.it.Env
	var nextEnv *relay.Envelope
	if next != nil {
		nextEnv = &next.renv
	}
	host, res, err := r.send(ctx, &j.renv, j.msg, nextEnv)
	if err != nil && host == "" && ctx.Err() != nil {
		return nil // stopped while connecting: no attempt was made
	}
	if err != nil {
		f := classify(r.Config, err)
		if f.Class != ErrRejected {
			r.logLine(env, env.To, host, "deferred").reply(err).write(r.Logger)
			r.deferred(it, env.To, f.Text)
			return nil
		}
		r.logLine(env, env.To, host, "bounced").reply(err).write(r.Logger)
		var failed []dsn.Recipient
		for _, to := range env.To {
			failed = append(failed, failure(to, host, err))
		}
		bounce := r.bounce(env, failed, "The mail server refused the message.")
		r.giveUp(it)
		return bounce
	}

	var remaining, lastErrs []string
	var failed []dsn.Recipient
	if accepted := res.Accepted(); len(accepted) > 0 {
		code, enh, text := 0, "", ""
		if res.Data != nil {
			code, enh, text = res.Data.Code, res.Data.Enhanced, strings.Join(res.Data.Lines, " ")
		}
		l := r.logLine(env, accepted, host, "sent")
		l.code, l.dsn, l.msg = code, enh, text
		l.write(r.Logger)
		env.Delivered = append(env.Delivered, accepted...)
	}
	for _, rr := range res.Recipients {
		switch {
		case rr.Err == nil:
		case relay.Temporary(rr.Err):
			remaining = append(remaining, rr.Addr)
			lastErrs = append(lastErrs, recipientReason(rr))
			r.logLine(env, []string{rr.Addr}, host, "deferred").reply(rr.Err).write(r.Logger)
		default:
			failed = append(failed, failure(rr.Addr, host, rr.Err))
			r.logLine(env, []string{rr.Addr}, host, "bounced").reply(rr.Err).write(r.Logger)
		}
	}
	var bounce []string
	if len(failed) > 0 {
		bounce = r.bounce(env, failed, "The mail server refused some recipients.")
	}
	switch {
	case len(remaining) > 0:
		r.deferred(it, remaining, strings.Join(lastErrs, "; "))
	case len(failed) > 0:
		r.giveUp(it) // keep a copy for the administrator
	default:
		if err := it.Delivered(); err != nil {
			r.Logger.Warn(fmt.Sprintf("queue: %s: %v", env.ID, err))
		}
	}
	return bounce
}

// send delivers one message over the open session, opening one (the
// smarthost, then each fallback after a temporary failure: relay.Dialer)
// when there is none. A session that failed a transaction is not reused.
// A host whose Dial failed (refused, timed out, no greeting, TLS or
// STARTTLS failure, AUTH) is not dialled again in this pass (r.dead): the
// message gets that host's error, and the next host is tried.
func (r *Runner) send(ctx context.Context, env *relay.Envelope, msg io.Reader, next *relay.Envelope) (string, *relay.Result, error) {
	if r.sess == nil {
		d := relay.Dialer{Hosts: hostsNotice(r.Config, r.Notice), Dead: &r.dead,
			Options: relay.Options{LocalName: r.Config.Hostname, Trace: r.Trace}}
		keep := func(s *relay.Session) (*relay.Result, error) { r.sess = s; return nil, nil }
		last, _, err := d.Try(ctx, keep)
		if err != nil {
			r.sess, r.tls = nil, ""
			if ctx.Err() != nil {
				return "", nil, err // stopped while connecting: not an attempt
			}
			var se *relay.SessionError
			if errors.As(err, &se) {
				r.tls = tlsName(last.TLS)
			}
			return hostName(last.Host), nil, err
		}
		r.tls = tlsName(last.TLS)
	}
	host := hostName(r.sess.Host())
	// Once a transaction starts, a stop no longer interrupts it (see Run),
	// but it keeps the next one from going out behind the final dot.
	res, err := r.sess.SendPipelined(context.WithoutCancel(ctx), env, msg, next, ctx)
	if err != nil {
		r.closeSession()
	}
	return host, res, err
}

func (r *Runner) closeSession() {
	if r.sess != nil {
		r.sess.Quit()
		r.sess = nil
	}
}

// deferred records a failed attempt: the recipients still to do, when to
// try next, and why.
func (r *Runner) deferred(it *queue.Item, remaining []string, why string) {
	env := it.Env
	env.To = remaining
	env.Attempts++
	env.LastError = why
	env.NextAttempt = r.now().Add(queue.Backoff(env.Attempts, nil))
	if err := it.Update(); err != nil {
		r.Logger.Warn(fmt.Sprintf("queue: %s: %v", env.ID, err))
	}
}

// giveUp moves the message to failed/, where the administrator can look
// at it and send it again (relaymail --requeue ID).
func (r *Runner) giveUp(it *queue.Item) {
	if err := it.Fail(); err != nil {
		r.Logger.Warn(fmt.Sprintf("queue: %s: %v", it.Env.ID, err))
	}
}

// bounce queues a delivery status notification to env's sender and
// returns its id. A message from the null sender is itself a bounce:
// it is never bounced, so a bounce that fails cannot start a storm.
func (r *Runner) bounce(env *queue.Envelope, failed []dsn.Recipient, reason string) []string {
	if env.From == "" {
		r.Logger.Info("", "id", env.ID, "status", "failed", "msg", "not bounced: the null sender")
		return nil
	}
	report, err := dsn.Build(dsn.Report{
		ReportingMTA: r.Config.Hostname,
		From:         "MAILER-DAEMON@" + r.Config.Domain,
		To:           env.From,
		EnvID:        env.EnvID,
		Arrival:      env.Created,
		Recipients:   failed,
		Reason:       reason,
		Header:       env.Header,
		Now:          r.now(),
	})
	if err != nil {
		r.Logger.Warn(fmt.Sprintf("bounce for %s: %v", env.ID, err))
		return nil
	}
	header, body := splitMessage(report)
	b := &queue.Envelope{
		Envelope: message.Envelope{From: "", To: []string{env.From},
			EightBit: bytes.ContainsFunc(report, func(c rune) bool { return c >= 0x80 })},
		Created: r.now(),
		Header:  header,
	}
	if err := r.Queue.Enqueue(b, bytes.NewReader(body)); err != nil {
		r.Logger.Warn(fmt.Sprintf("bounce for %s: %v", env.ID, err))
		return nil
	}
	r.Logger.Info("", "id", b.ID, "from", "", "to", env.From, "status", "queued", "msg", "delivery status notification for "+env.ID)
	return []string{b.ID}
}

// splitMessage splits a message after the blank line that ends its header.
func splitMessage(m []byte) (header, body []byte) {
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(m, sep); i >= 0 {
			return m[:i+len(sep)], m[i+len(sep):]
		}
	}
	return m, nil
}

// failure describes a recipient refused for good, for the DSN.
func failure(addr, host string, err error) dsn.Recipient {
	d := dsn.Recipient{Addr: addr, Action: "failed", Status: "5.0.0", DiagnosticCode: diagnostic(strings.TrimPrefix(err.Error(), "relay: "))}
	var e *relay.Error
	if errors.As(err, &e) {
		d.Status = dsn.StatusFor(e.Code, e.Enhanced)
		if e.Code != 0 {
			d.DiagnosticCode = fmt.Sprintf("smtp; %d %s", e.Code, strings.TrimSpace(e.Enhanced+" "+strings.Join(e.Lines, " ")))
		}
	}
	if host != "" {
		d.RemoteMTA = "dns; " + strings.Split(host, ":")[0]
	}
	return d
}

func diagnostic(text string) string {
	if text == "" {
		return ""
	}
	return "X-relaymail; " + text
}

// logLine starts the SPEC §8 line about env for an attempt at host
// (empty when there was none).
func (r *Runner) logLine(env *queue.Envelope, to []string, host, status string) logLine {
	l := logLine{id: env.ID, from: env.From, to: to, relay: host, status: status, size: env.Size(),
		delay: r.now().Sub(env.Created), attempts: env.Attempts + 1}
	if host != "" {
		l.tls = r.tls
	}
	return l
}

// Bounce tells env's sender that refused did not get the message, with a
// delivery status notification queued and tried at once. The SMTP
// personality needs it: by the time the smarthost refuses a recipient,
// relaymail has already told its own client that it took the message.
func (r *Runner) Bounce(ctx context.Context, env *queue.Envelope, refused []relay.RecipientResult, host string) {
	failed := make([]dsn.Recipient, len(refused))
	for i, rr := range refused {
		failed[i] = failure(rr.Addr, host, rr.Err)
	}
	for _, id := range r.bounce(env, failed, "The mail server refused some recipients.") {
		r.process(ctx, id)
	}
	r.closeSession()
	r.Queue.Sync()
}
