package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"relaymail/delivery"
	"relaymail/queue"
	"relaymail/relay"
	"relaymail/sendmail"
	"relaymail/smtpd"
)

// smtpHandler puts each message that arrives over SMTP (-bs, -bd) through
// exactly the path of a message piped in (-bm): intake, header rewrites,
// aliases, delivery or the queue. Its replies carry the outcome.
type smtpHandler struct {
	inv    *invocation
	caller sendmail.Caller
	queue  *queue.Queue
	qerr   error
}

func (inv *invocation) newSMTPHandler() *smtpHandler {
	h := &smtpHandler{inv: inv, caller: sendmail.LookupCaller()}
	h.queue, h.qerr = inv.openQueue()
	return h
}

func (inv *invocation) smtpServer(h *smtpHandler) *smtpd.Server {
	return &smtpd.Server{Hostname: inv.cfg.Hostname, Handler: h, Logger: inv.log,
		MaxSessions: inv.cfg.ListenMaxSessions, CommandTimeout: inv.cfg.ListenCommandTimeout,
		MessageTimeout: inv.cfg.ListenDataTimeout, SlotTimeout: inv.cfg.ListenWaitTimeout}
}

// Rcpt refuses what is not an address (501) and an address the wire
// cannot carry (553, relay.CheckAddress: the rule -bm applies to each
// recipient); the smarthost's own verdict comes after DATA (see Data).
func (h *smtpHandler) Rcpt(ctx context.Context, env *smtpd.Envelope, addr string) *smtpd.Reply {
	addrs, err := sendmail.ParseAddressList(addr, "")
	if err != nil || len(addrs) != 1 {
		return &smtpd.Reply{Code: 501, Enhanced: "5.1.3", Text: "bad recipient address syntax"}
	}
	if err := relay.CheckAddress(addrs[0]); err != nil {
		return &smtpd.Reply{Code: 553, Enhanced: "5.1.3", Text: "recipient is an " + err.Error()}
	}
	return nil
}

// Data accepts the message and answers with its fate: 250 when delivered
// or queued, the smarthost's permanent reply when it refused the message
// or every recipient, 451 when it could neither deliver nor queue. A
// recipient refused while others got the message is bounced to the
// sender, as an MTA does once it has said 250.
func (h *smtpHandler) Data(ctx context.Context, env *smtpd.Envelope, r io.Reader) *smtpd.Reply {
	opts := *h.inv.opts
	opts.Body8BitMIME = env.Body8Bit
	msg, err := h.inv.acceptor(h.caller, h.queue).AcceptSMTP(r, &opts, env.From, env.To)
	if err != nil {
		if errors.Is(err, sendmail.ErrData) {
			return &smtpd.Reply{Code: 554, Enhanced: "5.6.0", Text: oneLine(err)}
		}
		return &smtpd.Reply{Code: 451, Enhanced: "4.3.0", Text: oneLine(err)}
	}
	defer msg.Close()
	for _, w := range msg.Warnings {
		h.inv.log.Warn(w)
	}
	o := delivery.Options{Logger: h.inv.log, Caller: h.caller, QueueOnly: opts.QueueOnly, Queue: h.queue, QueueErr: h.qerr, Told: true,
		Abandoned: func() bool { return ctx.Err() != nil }}
	err = delivery.Submit(ctx, h.inv.cfg, msg, o)
	var f *delivery.Failure
	if err == nil {
		return &smtpd.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as " + msg.ID}
	}
	if !errors.As(err, &f) {
		return &smtpd.Reply{Code: 451, Enhanced: "4.3.0", Text: oneLine(err)}
	}
	switch f.Class {
	case delivery.ErrRecipientsRefused:
		if f.Sent > 0 {
			h.bounce(ctx, msg, f.Refused)
			return &smtpd.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as " + msg.ID + "; some recipients refused, the sender is told"}
		}
		if len(f.Refused) > 0 {
			return replyFrom(f.Refused[0].Err, f.Text)
		}
		return &smtpd.Reply{Code: 550, Enhanced: "5.1.3", Text: f.Text}
	case delivery.ErrRejected:
		return replyFrom(f.Cause, f.Text)
	default:
		return &smtpd.Reply{Code: 451, Enhanced: "4.3.0", Text: f.Text}
	}
}

// bounce sends a delivery status notification for refused recipients.
func (h *smtpHandler) bounce(ctx context.Context, msg *sendmail.Message, refused []relay.RecipientResult) {
	if h.queue == nil || len(refused) == 0 {
		return
	}
	r := &delivery.Runner{Config: h.inv.cfg, Queue: h.queue, Logger: h.inv.log}
	env := &queue.Envelope{ID: msg.ID, Envelope: msg.Envelope, Created: time.Now(), Header: msg.Head}
	r.Bounce(ctx, env, refused, "")
}

// replyFrom passes on the smarthost's permanent reply; text is ours.
func replyFrom(err error, text string) *smtpd.Reply {
	var e *relay.Error
	if errors.As(err, &e) && e.Code >= 500 && e.Code < 600 {
		return &smtpd.Reply{Code: e.Code, Enhanced: e.Enhanced, Text: strings.Join(e.Lines, " ")}
	}
	return &smtpd.Reply{Code: 554, Enhanced: "5.0.0", Text: text}
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// speakSMTP is -bs: one SMTP session on stdin and stdout.
func (inv *invocation) speakSMTP(ctx context.Context) error {
	srv := inv.smtpServer(inv.newSMTPHandler())
	if err := srv.ServeConn(ctx, inv.stdin, inv.stdout, ""); err != nil && ctx.Err() == nil {
		inv.log.Warn("smtp session: " + err.Error())
	}
	return nil
}

// daemon is -bd: listen on the configured loopback addresses until
// SIGTERM, then let the sessions finish; with -q30m also run the queue.
func (inv *invocation) daemon(ctx context.Context) error {
	if err := inv.cfg.CheckListen(); err != nil {
		return err
	}
	srv := inv.smtpServer(inv.newSMTPHandler())
	var listeners []net.Listener
	for _, addr := range inv.cfg.Listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("%w: listen on %s: %v", delivery.ErrTemporary, addr, err)
		}
		listeners = append(listeners, l)
	}
	// Serve runs on its own context: a signal asks for a graceful
	// Shutdown, not for sessions to be cut off.
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(serveCtx, l); err != nil && !errors.Is(err, smtpd.ErrServerClosed) {
				inv.log.Warn("listener " + l.Addr().String() + ": " + err.Error())
			}
		}()
	}
	inv.log.Info("listening", "addrs", strings.Join(inv.cfg.Listen, ","))
	if inv.opts.QueueInterval > 0 {
		if q, err := inv.openQueue(); err == nil {
			r := &delivery.Runner{Config: inv.cfg, Queue: q, Logger: inv.log}
			wg.Add(1)
			go func() { defer wg.Done(); r.Loop(ctx, inv.opts.QueueInterval) }()
		} else {
			inv.log.Warn("queue: " + err.Error())
		}
	}
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	stopServe()
	wg.Wait()
	return nil
}
