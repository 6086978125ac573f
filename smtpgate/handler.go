package smtpgate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"relaymail/config"
	"relaymail/delivery"
	"relaymail/queue"
	"relaymail/relay"
	"relaymail/sendmail"
	"relaymail/smtpd"
)

// Handler puts each message that arrives over SMTP through the path of
// -bm. One Handler serves every session of a server; it is safe for
// concurrent use (each Data works on its own copy of the options).
type Handler struct {
	Config *config.Config
	// Options are the command line's (-odq, -oi, -v and the like), the
	// defaults of every message.
	Options *sendmail.Options
	Logger  *slog.Logger
	Caller  sendmail.Caller
	// Queue is the spool, nil when it could not be opened (QueueErr
	// says why): messages then go straight to the smarthost or fail.
	Queue    *queue.Queue
	QueueErr error
}

// New returns the Handler for cfg and opts, with the calling user and
// the queue (opened now, so that every session shares it).
func New(cfg *config.Config, opts *sendmail.Options, logger *slog.Logger) *Handler {
	h := &Handler{Config: cfg, Options: opts, Logger: logger, Caller: sendmail.LookupCaller()}
	h.Queue, h.QueueErr = queue.Open(cfg.Queue.Dir)
	return h
}

// Server is the smtpd.Server that serves h with the [listen] limits.
func (h *Handler) Server() *smtpd.Server {
	cfg := h.Config
	return &smtpd.Server{Hostname: cfg.Hostname, Handler: h, Logger: h.Logger,
		MaxSessions: cfg.ListenMaxSessions, CommandTimeout: cfg.ListenCommandTimeout,
		MessageTimeout: cfg.ListenDataTimeout, SlotTimeout: cfg.ListenWaitTimeout}
}

// Rcpt refuses what is not an address (501) and an address the wire
// cannot carry (553, relay.CheckAddress: the rule -bm applies to each
// recipient); the smarthost's own verdict comes after DATA (see Data).
func (h *Handler) Rcpt(ctx context.Context, env *smtpd.Envelope, addr string) *smtpd.Reply {
	addrs, err := sendmail.ParseAddressList(addr, "")
	if err != nil || len(addrs) != 1 {
		return replyBadRecipient
	}
	if err := relay.CheckAddress(addrs[0]); err != nil {
		return replyUncarried(err)
	}
	return nil
}

// Data accepts the message and answers with its fate: 250 when delivered
// or queued, the smarthost's permanent reply when it refused the message
// or every recipient, 451 when it could neither deliver nor queue. A
// recipient refused while others got the message is bounced to the
// sender, as an MTA does once it has said 250. It is the path of a
// session without a live smarthost transaction (see session).
func (h *Handler) Data(ctx context.Context, env *smtpd.Envelope, r io.Reader) *smtpd.Reply {
	return h.data(ctx, env, r, false)
}

// data is Data; queueNow queues the message without trying the
// smarthost (it has just failed this very transaction).
func (h *Handler) data(ctx context.Context, env *smtpd.Envelope, r io.Reader, queueNow bool) *smtpd.Reply {
	opts := *h.Options
	msg, rep := h.accept(env, r, &opts)
	if rep != nil {
		return rep
	}
	defer msg.Close()
	o := h.deliveryOptions(ctx, &opts)
	if queueNow && h.Config.Queue.Mode != config.QueueNever {
		o.QueueOnly = true
	}
	return h.answer(ctx, msg, delivery.Submit(ctx, h.Config, msg, o), nil)
}

// accept runs the message through the intake of -bm: a nil message comes
// with the reply refusing it.
func (h *Handler) accept(env *smtpd.Envelope, r io.Reader, opts *sendmail.Options) (*sendmail.Message, *smtpd.Reply) {
	opts.Body8BitMIME = env.Body8Bit
	msg, err := delivery.NewAcceptor(h.Config, h.Caller, h.Queue).AcceptSMTP(r, opts, env.From, env.To)
	if err != nil {
		if errors.Is(err, sendmail.ErrData) {
			return nil, replyBadMessage(oneLine(err))
		}
		return nil, replyTryAgain(oneLine(err))
	}
	for _, w := range msg.Warnings {
		h.Logger.Warn(w)
	}
	return msg, nil
}

func (h *Handler) deliveryOptions(ctx context.Context, opts *sendmail.Options) delivery.Options {
	return delivery.Options{Logger: h.Logger, Caller: h.Caller, QueueOnly: opts.QueueOnly, Queue: h.Queue, QueueErr: h.QueueErr, Told: true,
		Abandoned: func() bool { return ctx.Err() != nil }}
}

// answer turns the outcome of Submit or Settle into the reply to the
// final dot. live is the smarthost's reply to the dot when the live
// proxy delivered the message with nothing left to queue: the client then
// hears what the smarthost said (its id, its wording), as if it had
// talked to it. A message queued, or delivered by Submit, gets our own
// 250 with its queue id.
func (h *Handler) answer(ctx context.Context, msg *sendmail.Message, err error, live *relay.Reply) *smtpd.Reply {
	var f *delivery.Failure
	if err == nil {
		if live != nil {
			return replyRelayed(live, "")
		}
		return replyAccepted(msg.ID, "")
	}
	if !errors.As(err, &f) {
		return replyTryAgain(oneLine(err))
	}
	switch f.Class {
	case delivery.ErrRecipientsRefused:
		if f.Sent > 0 {
			h.bounce(ctx, msg, f.Refused)
			const note = "some recipients refused, the sender is told"
			if live != nil {
				return replyRelayed(live, note)
			}
			return replyAccepted(msg.ID, note)
		}
		if len(f.Refused) > 0 {
			return replyFrom(f.Refused[0].Err, f.Text)
		}
		return replyRecipientsRefused(f.Text)
	case delivery.ErrRejected:
		return replyFrom(f.Cause, f.Text)
	default:
		return replyTryAgain(f.Text)
	}
}

// bounce sends a delivery status notification for refused recipients.
func (h *Handler) bounce(ctx context.Context, msg *sendmail.Message, refused []relay.RecipientResult) {
	if h.Queue == nil || len(refused) == 0 {
		return
	}
	r := &delivery.Runner{Config: h.Config, Queue: h.Queue, Logger: h.Logger}
	env := &queue.Envelope{ID: msg.ID, Envelope: msg.Envelope, Created: time.Now(), Header: msg.Head}
	r.Bounce(ctx, env, refused, "")
}
