package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"relaymail/config"
	"relaymail/oauth"
	"relaymail/queue"
	"relaymail/relay"
	"relaymail/sendmail"
)

// Options is what Submit and the queue runner need besides the config
// and the message.
type Options struct {
	Logger    *slog.Logger
	Trace     io.Writer // the SMTP dialogue for -v; nil: none
	Caller    sendmail.Caller
	Now       func() time.Time             // nil: time.Now
	QueueOnly bool                         // -odq, -odb
	Queue     *queue.Queue                 // nil when not opened (yet)
	QueueErr  error                        // why Queue is nil
	OpenQueue func() (*queue.Queue, error) // opens it when first needed, if Queue is nil
	// Told: the client learns a refusal from an SMTP reply (-bs, -bd) and
	// keeps its copy to send again, so a refused message is not kept.
	Told bool
	// Abandoned, when set, reports whether the SMTP client that handed
	// the message over can no longer hear the reply (it left, or its
	// session was cut off): a message it never heard accepted is not
	// queued, since the client still has it and will send it again.
	Abandoned func() bool
	// Notice, when set, gets one line the administrator must act on even
	// though the message is safe (an OAuth2 grant that needs a new login).
	Notice func(msg string)
}

func (o *Options) abandoned() bool { return o.Abandoned != nil && o.Abandoned() }

// queue returns the queue, opening it on first use.
func (o *Options) queue() (*queue.Queue, error) {
	if o.Queue == nil && o.QueueErr == nil {
		if o.OpenQueue == nil {
			o.QueueErr = errors.New("no queue")
		} else {
			o.Queue, o.QueueErr = o.OpenQueue()
		}
	}
	return o.Queue, o.QueueErr
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Hosts are the relay hosts of the configured smarthost and fallbacks,
// in order, as config resolved them.
func Hosts(cfg *config.Config) []relay.Host { return hostsNotice(cfg, nil) }

// hostsNotice is Hosts with each OAuth2 smarthost's token source, whose
// Notice is notice: the one thing config cannot resolve, since the token
// cache lives in the queue directory.
func hostsNotice(cfg *config.Config, notice func(string)) []relay.Host {
	hosts := make([]relay.Host, len(cfg.Smarthosts))
	for i := range cfg.Smarthosts {
		sh := &cfg.Smarthosts[i]
		hosts[i] = sh.Host
		if sh.OAuth2 != nil {
			hosts[i].Token = tokenSource(cfg, sh, notice)
		}
	}
	return hosts
}

// Submit hands over a message relaymail has accepted, as [queue] mode
// and -odq say (SPEC §6, §7), and reports the outcome: nil when every
// recipient has the message or it is safely queued for the ones that do
// not yet, else a *Failure whose class gives the exit status.
//
//   - mode "always" or -odq: queue it, do not try now;
//   - mode "fallback": try now; queue what failed temporarily (the whole
//     message, or just the deferred recipients);
//   - mode "never": try now; what failed stays failed.
//
// A message that could not go and could not be queued is appended to
// dead.letter; one refused for good is kept in the queue's failed/ (or
// dead.letter). Nothing accepted is ever dropped.
func Submit(ctx context.Context, cfg *config.Config, msg *sendmail.Message, o Options) error {
	now := o.now()
	start := now
	refused := append([]string(nil), msg.Invalid...) // "<addr>: reason" per recipient refused for good
	if len(msg.To) == 0 {
		return &Failure{Class: ErrRecipientsRefused, Text: "no valid recipient: " + strings.Join(refused, "; ")}
	}
	mode := cfg.Queue.Mode
	if o.QueueOnly {
		mode = config.QueueAlways
	}
	if mode == config.QueueAlways {
		if o.abandoned() {
			return &Failure{Class: ErrTemporary, Text: "not queued: the client left before the reply"}
		}
		if err := enqueue(msg, &o, msg.To, attempt{}); err != nil {
			return keep(msg, o, now, &Failure{Class: ErrTemporary, Text: "could not queue the message: " + err.Error()})
		}
		logQueued(o.Logger, msg, msg.To, o.now().Sub(start))
		return refusal(refused, nil, 0, len(msg.To))
	}

	final, failed, _ := relay.Deliver(ctx, hostsNotice(cfg, o.Notice), relay.Options{LocalName: cfg.Hostname, Trace: o.Trace},
		&msg.Envelope, msg.Content(), msg.Size())
	return Settle(cfg, msg, o, start, final, failed)
}

// Settle finishes a message once its delivery was attempted: final is the
// last attempt (its Result one entry per msg.To when a transaction took
// place), failed the hosts tried before it. It queues what failed
// temporarily, as the mode allows, keeps what must be kept, writes the log
// lines and returns Submit's outcome. Submit uses it after relay.Deliver;
// the live proxy of -bs and -bd (package smtpgate) after the transaction
// it ran step by step.
func Settle(cfg *config.Config, msg *sendmail.Message, o Options, start time.Time, final relay.Attempt, failed []relay.Attempt) error {
	now := start
	err := final.Err
	refused := append([]string(nil), msg.Invalid...)
	mode := cfg.Queue.Mode
	var deferred, refusedRes []relay.RecipientResult
	var accepted []string
	if err == nil {
		accepted = final.Result.Accepted()
		for _, r := range final.Result.Recipients {
			switch {
			case r.Err == nil:
			case relay.Temporary(r.Err):
				deferred = append(deferred, r)
			default:
				refused = append(refused, recipientReason(r))
				refusedRes = append(refusedRes, r)
			}
		}
	}
	var whole *Failure
	if err != nil {
		whole = classify(cfg, err)
	}
	// Queue what can be tried again, if the mode allows it.
	var queueErr error
	queued := false
	if mode == config.QueueFallback && !o.abandoned() {
		switch {
		case whole != nil && whole.Class == ErrTemporary:
			queueErr = enqueue(msg, &o, msg.To, attempt{attempts: 1, lastErr: whole.Text})
			queued = queueErr == nil
		case whole == nil && len(deferred) > 0:
			queueErr = enqueue(msg, &o, addrs(deferred), attempt{delivered: accepted, attempts: 1, lastErr: reasons(deferred)})
			queued = queueErr == nil
		}
	}
	for _, a := range append(failed, final) {
		logAttempt(o.Logger, msg, a, o.now().Sub(start), queued)
	}

	switch {
	case whole != nil && queued:
		return nil
	case whole != nil && whole.Class == ErrTemporary:
		if queueErr != nil {
			whole.Text += "; could not queue the message: " + queueErr.Error()
		}
		return keep(msg, o, now, whole)
	case whole != nil && whole.Class == ErrRejected && !o.Told:
		return keepFailed(msg, &o, now, whole)
	case whole != nil:
		return whole
	case len(deferred) > 0 && !queued:
		text := fmt.Sprintf("%s: deferred %s", hostName(final.Host), reasons(deferred))
		if queueErr != nil {
			text += "; could not queue the message: " + queueErr.Error()
		}
		if len(refused) > 0 {
			text += "; refused " + strings.Join(refused, "; ")
		}
		return keep(msg, o, now, &Failure{Class: ErrTemporary, Text: text + othersText(len(accepted))})
	}
	return refusal(refused, refusedRes, len(accepted), len(deferred))
}

// refusal is the 67 outcome when any recipient was refused for good;
// delivered and queued count the others.
func refusal(refused []string, results []relay.RecipientResult, delivered, queued int) error {
	if len(refused) == 0 {
		return nil
	}
	text := "refused " + strings.Join(refused, "; ") + othersText(delivered)
	if queued > 0 {
		text += fmt.Sprintf("; queued for %d", queued)
	}
	return &Failure{Class: ErrRecipientsRefused, Text: text, Refused: results, Sent: delivered + queued}
}

func addrs(rs []relay.RecipientResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}

func reasons(rs []relay.RecipientResult) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = recipientReason(r)
	}
	return strings.Join(out, "; ")
}

// classify turns an error that kept the message from every recipient
// into its SPEC §6 outcome. With the queue off (mode = "never"),
// authentication and protocol errors have statuses of their own; a
// permanent refusal is final; everything else is worth trying again,
// including a password_command that failed (the administrator can mend
// it without the message being lost).
func classify(cfg *config.Config, err error) *Failure {
	never := cfg.Queue.Mode == config.QueueNever
	f := &Failure{Class: ErrRejected, Text: strings.TrimPrefix(err.Error(), "relay: "), Cause: err}
	switch {
	case never && errors.Is(err, relay.ErrAuth):
		f.Class = ErrAuth
	case never && errors.Is(err, relay.ErrUnknownReply):
		f.Class = ErrProtocol
	case relay.Temporary(err), errors.Is(err, relay.ErrAuth), errors.Is(err, relay.ErrUnknownReply),
		errors.Is(err, config.ErrConfig), errors.Is(err, oauth.ErrToken):
		f.Class = ErrTemporary
	}
	f.Text += authHint(err)
	return f
}

// keep saves msg where its owner can find it and adds where to f's text.
func keep(msg *sendmail.Message, o Options, now time.Time, f *Failure) error {
	if o.Told {
		return f // the SMTP client keeps its copy and tries again
	}
	path, err := SaveDeadLetter(o.Caller.Home, msg.From, msg.Content(), msg.Size(), now)
	if err != nil {
		f.Text += fmt.Sprintf(" (and the message could not be saved: %v)", err)
	} else {
		f.Text += " (message saved in " + path + ")"
	}
	return f
}

func othersText(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "; delivered to the 1 other recipient"
	default:
		return fmt.Sprintf("; delivered to the %d other recipients", n)
	}
}

// recipientReason is "<addr>: 550 5.1.1 text" without the relay prefix.
func recipientReason(r relay.RecipientResult) string {
	var e *relay.Error
	if errors.As(r.Err, &e) {
		return fmt.Sprintf("<%s>: %d %s", r.Addr, e.Code, strings.TrimSpace(e.Enhanced+" "+strings.Join(e.Lines, " ")))
	}
	return fmt.Sprintf("<%s>: %v", r.Addr, r.Err)
}

func hostName(h relay.Host) string {
	return h.Name + ":" + strconv.Itoa(h.Port)
}

// logAttempt writes the SPEC §8 lines for one attempt: one per group of
// recipients that shared an outcome.
func logAttempt(log *slog.Logger, msg *sendmail.Message, a relay.Attempt, delay time.Duration, queued bool) {
	line := logLine{id: msg.ID, from: msg.From, relay: hostName(a.Host), tls: tlsName(a.TLS),
		size: msg.Size(), delay: delay}
	if a.Err != nil {
		line.status = "failed"
		if relay.Temporary(a.Err) {
			line.status = "deferred"
		}
		if queued {
			line.status = "queued"
		}
		line.to = msg.To
		line.reply(a.Err).write(log)
		return
	}
	var sent []string
	for _, r := range a.Result.Recipients {
		if r.Err == nil {
			sent = append(sent, r.Addr)
			continue
		}
		l := line
		l.to, l.status = []string{r.Addr}, "bounced"
		if relay.Temporary(r.Err) {
			l.status = "deferred"
			if queued {
				l.status = "queued"
			}
		}
		l.reply(r.Err).write(log)
	}
	if len(sent) > 0 {
		line.to, line.status = sent, "sent"
		if d := a.Result.Data; d != nil {
			line.code, line.dsn, line.msg = d.Code, d.Enhanced, strings.Join(d.Lines, " ")
		}
		line.write(log)
	}
}

// replyFields extracts code, enhanced code and text from a reply error,
// or just the text from any other error. When the session could not be
// set up, the text says at which step ("STARTTLS: not implemented"): a
// code alone does not tell a refused STARTTLS from a refused password.
func replyFields(err error) (int, string, string) {
	var e *relay.Error
	if errors.As(err, &e) {
		text := strings.Join(e.Lines, " ")
		if errors.Is(err, relay.ErrSession) {
			text = strings.TrimSpace(e.Command+" "+e.Arg) + ": " + text
		}
		return e.Code, e.Enhanced, text
	}
	return 0, "", strings.TrimPrefix(err.Error(), "relay: ")
}

func tlsName(cs *tls.ConnectionState) string {
	if cs == nil {
		return "none"
	}
	return strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")
}
