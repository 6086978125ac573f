package smtpgate

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"relaymail/config"
	"relaymail/delivery"
	"relaymail/relay"
	"relaymail/sendmail"
	"relaymail/smtpd"
)

// session is the live proxy of one client session (issue 11): one
// smarthost session for all of the client's transactions (RSET between
// them, so that a batch of N messages costs one TLS handshake and one
// AUTH), and in each transaction the smarthost's verdict on every
// recipient relayed at RCPT time.
//
//	client MAIL           nothing yet (250 from smtpd)
//	client RCPT (first)   dial (failover hosts as -bm) or RSET, MAIL FROM
//	client RCPT           aliases and qualification, then the smarthost's
//	                      RCPT for each address (pipelined when offered,
//	                      with those of the RCPTs the client pipelined:
//	                      RcptBatch); its 4xx/5xx is the client's reply
//	client DATA           the intake of -bm spools the message, then it
//	                      streams to the smarthost; the reply to the dot
//	                      is the smarthost's (its 250 too), or our 250
//	                      "queued as ID" when the smarthost failed after
//	                      accepting the recipients
//	client RSET/EHLO      RSET to the smarthost
//	client leaves, QUIT   RSET (if in a transaction) and QUIT
//
// The message is spooled whole before DATA goes to the smarthost, so a
// client that leaves mid-DATA leaves nothing on the smarthost's side, and
// a smarthost that fails after the recipients were accepted leaves a
// complete message to queue. A transaction the smarthost cannot take
// (unreachable, 4xx at MAIL, failure mid-transaction) falls back to the
// path of -bm (Handler.Data): accepted locally and queued, as the log line
// says.
type session struct {
	h      *Handler
	remote string

	rs   *relay.Session // the smarthost session; nil before the first transaction or after it failed
	down error          // why no smarthost could be had: the rest of the session is local

	tx      *relay.Tx
	local   string // non-empty: this transaction goes the -bm way, and why
	mailErr error  // the smarthost refused MAIL for good: every RCPT gets its reply
	aliases *sendmail.Aliases
	sender  string
	// verdicts are the smarthost's replies per address (lower case) in
	// this transaction: nil accepted, else its *relay.Error.
	verdicts map[string]error
	// declared8Bit: MAIL carried BODY=8BITMIME
	declared8Bit bool
}

// NewSession makes the session state of the live proxy (smtpd.SessionMaker).
func (h *Handler) NewSession(remote string) smtpd.SessionHandler {
	return &session{h: h, remote: remote}
}

// live reports whether messages may go to the smarthost now: not with
// -odq or mode "always", which queue everything.
func (s *session) live() bool {
	return !s.h.Options.QueueOnly && s.h.Config.Queue.Mode != config.QueueAlways
}

// Rcpt refuses what is not an address and what the wire cannot carry,
// then asks the smarthost about each address the recipient stands for.
func (s *session) Rcpt(ctx context.Context, env *smtpd.Envelope, addr string) *smtpd.Reply {
	return s.RcptBatch(ctx, env, []string{addr})[0]
}

// RcptBatch is Rcpt for the RCPTs a client pipelined (smtpd.RcptBatcher):
// the smarthost is asked about every address they stand for in one
// Tx.Rcpt, so in one write when it offers PIPELINING, and each RCPT gets
// the reply Rcpt would have given it.
func (s *session) RcptBatch(ctx context.Context, env *smtpd.Envelope, addrs []string) []*smtpd.Reply {
	replies := make([]*smtpd.Reply, len(addrs))
	var pending []int // the RCPTs the smarthost decides
	for i, addr := range addrs {
		if replies[i] = s.h.Rcpt(ctx, env, addr); replies[i] == nil {
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 || !s.live() || s.local != "" {
		return replies
	}
	if s.mailErr != nil {
		return s.refuseAll(replies, pending)
	}
	if s.tx == nil {
		s.aliases, _ = sendmail.LoadAliases(s.h.Config) // warnings come with the message's intake
	}
	targets := make([][]string, len(addrs))
	var all, first []string
	for _, i := range pending {
		targets[i] = s.targets(addrs[i])
		all = append(all, targets[i]...)
		if first == nil {
			first = targets[i]
		}
	}
	if len(all) == 0 {
		return replies // nothing the smarthost could be asked about: the intake decides
	}
	// MAIL is checked against the first recipient's addresses, as when
	// the RCPTs come one by one.
	if s.tx == nil && !s.begin(ctx, env, first) {
		if s.mailErr != nil {
			return s.refuseAll(replies, pending)
		}
		return replies
	}
	var ask []string
	asked := map[string]bool{}
	for _, t := range all {
		key := strings.ToLower(t)
		if _, seen := s.verdicts[key]; !seen && !asked[key] {
			ask, asked[key] = append(ask, t), true
		}
	}
	if len(ask) > 0 {
		vs, err := s.tx.Rcpt(ctx, ask...)
		if err != nil {
			s.fallBack(ctx, "the smarthost failed at RCPT", err)
			return replies
		}
		for i, a := range ask {
			s.verdicts[strings.ToLower(a)] = vs[i]
		}
	}
	for _, i := range pending {
		if len(targets[i]) > 0 {
			replies[i] = s.verdict(targets[i])
		}
	}
	return replies
}

// refuseAll gives each pending RCPT the smarthost's refusal of MAIL.
func (s *session) refuseAll(replies []*smtpd.Reply, pending []int) []*smtpd.Reply {
	for _, i := range pending {
		replies[i] = replySmarthost(s.mailErr, "")
	}
	return replies
}

// verdict is the reply to a RCPT that stands for targets, from the
// smarthost's verdicts: accepted when it took any of them (the others are
// bounced or queued after DATA, as -bm does); otherwise a deferral wins
// over a refusal, so that the client tries again.
func (s *session) verdict(targets []string) *smtpd.Reply {
	var temp, perm error
	var tempAddr, permAddr string
	for _, t := range targets {
		v := s.verdicts[strings.ToLower(t)]
		switch {
		case v == nil:
			return nil
		case relay.Temporary(v) && temp == nil:
			temp, tempAddr = v, t
		case !relay.Temporary(v) && perm == nil:
			perm, permAddr = v, t
		}
	}
	if temp != nil {
		return replySmarthost(temp, tempAddr)
	}
	return replySmarthost(perm, permAddr)
}

// targets are the addresses addr stands for after aliases and
// qualification, as the intake will resolve them, leaving out what no
// RCPT TO can carry (the intake refuses those).
func (s *session) targets(addr string) []string {
	addrs, err := sendmail.ParseAddressList(addr, "")
	if err != nil || len(addrs) != 1 {
		return nil
	}
	var out []string
	for _, t := range sendmail.ResolveRecipients(addrs, s.aliases, s.h.Config.Domain) {
		if relay.CheckAddress(t) == nil {
			out = append(out, t)
		}
	}
	return out
}

// begin opens the smarthost transaction: a session (kept from the last
// transaction, or dialled), then MAIL FROM with the sender relaymail
// will use. It reports whether the transaction is open; when it is not,
// the transaction is local (s.local says why) or MAIL was refused for
// good (s.mailErr).
func (s *session) begin(ctx context.Context, env *smtpd.Envelope, targets []string) bool {
	sender, err := sendmail.EnvelopeSender(&sendmail.Options{Sender: env.From, SenderSet: true}, s.h.Config, s.h.Caller)
	if err != nil {
		s.local = "the sender: " + err.Error() // the intake refuses it at DATA
		return false
	}
	if s.down != nil {
		s.local = "the smarthost is unavailable: " + oneLine(s.down)
		return false
	}
	kept := s.rs != nil
	if !kept {
		if err := s.dial(ctx); err != nil {
			s.down = err
			s.fallBack(ctx, "the smarthost is unavailable", err)
			return false
		}
	}
	// The content is not known before DATA: BODY=8BITMIME and SIZE as
	// the client declared them (Data opens the transaction again for a
	// body that turns out 8-bit undeclared).
	renv := &relay.Envelope{From: sender, To: targets, Size: env.Size, EightBit: env.Body8Bit,
		Notify: s.h.Options.Notify, Ret: s.h.Options.Ret, EnvID: s.h.Options.EnvID}
	tx, err := s.rs.Begin(ctx, renv)
	if err != nil && kept && s.rs.Broken() != nil {
		// The session kept from the last transaction went stale (the
		// smarthost dropped an idle connection): one fresh one.
		s.rs.Close()
		s.rs = nil
		if err = s.dial(ctx); err != nil {
			s.down = err
			s.fallBack(ctx, "the smarthost is unavailable", err)
			return false
		}
		tx, err = s.rs.Begin(ctx, renv)
	}
	if err != nil {
		if relay.Temporary(err) || s.rs.Broken() != nil {
			s.fallBack(ctx, "the smarthost did not take MAIL", err)
			return false
		}
		s.mailErr = err
		return false
	}
	s.tx, s.sender, s.verdicts, s.declared8Bit = tx, sender, map[string]error{}, env.Body8Bit
	return true
}

// reopen runs the transaction again with what only the message could
// tell: BODY=8BITMIME for an 8-bit body the client did not declare
// (RFC 6152: the smarthost must be told), and the exact SIZE. RSET, MAIL,
// then RCPT for each address accepted before; the verdicts are the new
// ones. It reports false when the smarthost failed (the session is then
// closed and the message is to be queued).
func (s *session) reopen(ctx context.Context, msg *sendmail.Message) bool {
	var again []string
	for _, to := range msg.To {
		if v, ok := s.verdicts[strings.ToLower(to)]; ok && v == nil {
			again = append(again, to)
		}
	}
	if err := s.tx.Reset(ctx); err != nil {
		return false
	}
	env := msg.Envelope
	env.To = again
	if env.Size == 0 { // not counted by the intake (rare): measure it
		if n, err := relay.WireSize(io.NewSectionReader(msg.Content(), 0, msg.Size())); err == nil {
			env.Size = n
		}
	}
	tx, err := s.rs.Begin(ctx, &env)
	if err != nil {
		s.tx = nil
		return false
	}
	s.tx = tx
	vs, err := tx.Rcpt(ctx, again...)
	if err != nil {
		return false
	}
	for i, a := range again {
		s.verdicts[strings.ToLower(a)] = vs[i]
	}
	return true
}

// dial connects to the smarthost, then to each fallback host in turn
// after a temporary failure, as -bm does.
func (s *session) dial(ctx context.Context) error {
	var err error
	for _, h := range delivery.Hosts(s.h.Config) {
		var rs *relay.Session
		rs, err = relay.Dial(ctx, h, relay.Options{LocalName: s.h.Config.Hostname})
		if err == nil {
			s.rs = rs
			return nil
		}
		if !relay.TryNextHost(err) || ctx.Err() != nil {
			break
		}
	}
	if err == nil {
		err = errors.New("no smarthost configured")
	}
	return err
}

// fallBack makes the rest of this transaction local (-bm's path: the
// message is queued), says so in the log and drops the smarthost
// transaction (and the session when it is broken).
func (s *session) fallBack(ctx context.Context, why string, err error) {
	s.local = why + ": " + oneLine(err)
	s.h.Logger.Info("smtpgate: "+why+"; the message will be accepted locally and queued", "remote", s.remote, "err", oneLine(err))
	s.endTx(ctx)
}

// endTx ends the smarthost transaction with RSET; a session that cannot
// reset, or is broken, is closed (the next transaction dials again).
func (s *session) endTx(ctx context.Context) {
	if s.tx != nil {
		if err := s.tx.Reset(ctx); err != nil && s.rs != nil {
			s.rs.Close()
			s.rs = nil
		}
		s.tx = nil
	}
	if s.rs != nil && s.rs.Broken() != nil {
		s.rs.Close()
		s.rs = nil
	}
}

// clear forgets the transaction's state once it has ended.
func (s *session) clear() {
	s.tx, s.local, s.mailErr, s.verdicts, s.aliases, s.sender, s.declared8Bit = nil, "", nil, nil, nil, "", false
}

// Reset is the client's RSET (or HELO/EHLO) in a transaction.
func (s *session) Reset(ctx context.Context) {
	s.endTx(ctx)
	s.clear()
}

// Close ends the smarthost session: RSET of an open transaction (nothing
// half-given is delivered), then QUIT.
func (s *session) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), relay.DefaultTimeout)
	defer cancel()
	s.endTx(ctx)
	s.clear()
	if s.rs != nil {
		s.rs.Quit()
		s.rs = nil
	}
}

// Data accepts the message through the intake of -bm and, in a live
// transaction, sends it to the smarthost and answers with its verdict.
func (s *session) Data(ctx context.Context, env *smtpd.Envelope, r io.Reader) *smtpd.Reply {
	defer s.clear()
	if s.tx == nil {
		// No live transaction: -bm's path, queueing at once when the
		// smarthost has just failed this transaction.
		s.endTx(ctx)
		return s.h.data(ctx, env, r, s.local != "")
	}
	start := time.Now()
	opts := *s.h.Options
	msg, rep := s.h.accept(env, r, &opts)
	if rep != nil {
		s.endTx(ctx) // a message not received whole goes nowhere
		return rep
	}
	defer msg.Close()
	o := s.h.deliveryOptions(ctx, &opts)
	host := s.rs.Host()
	a := relay.Attempt{Host: host, Result: &relay.Result{}}
	if st, ok := s.rs.TLSState(); ok {
		a.TLS = &st
	}
	if msg.From != s.sender {
		// The intake and begin work the sender out the same way; a
		// difference would send the message with the wrong MAIL FROM.
		s.endTx(ctx)
		s.h.Logger.Error("smtpgate: sender differs from MAIL FROM sent", "id", msg.ID)
		return s.h.answer(ctx, msg, delivery.Submit(ctx, s.h.Config, msg, o), nil)
	}
	if _, offered := s.rs.Extensions()["8BITMIME"]; msg.EightBit && !s.declared8Bit && offered && !s.reopen(ctx, msg) {
		s.endTx(ctx)
		s.h.Logger.Info("smtpgate: the smarthost failed; the message is queued", "id", msg.ID)
		o.QueueOnly = s.h.Config.Queue.Mode != config.QueueNever
		return s.h.answer(ctx, msg, delivery.Submit(ctx, s.h.Config, msg, o), nil)
	}
	accepted := 0
	for _, to := range msg.To {
		v, ok := s.verdicts[strings.ToLower(to)]
		if !ok {
			v = errNotAsked
		}
		if v == nil {
			accepted++
		}
		a.Result.Recipients = append(a.Result.Recipients, relay.RecipientResult{Addr: to, Err: v})
	}
	if accepted == 0 {
		s.endTx(ctx)
		a.Err = errNotAsked
	} else {
		a.Result.Data, a.Err = s.tx.Data(ctx, io.NewSectionReader(msg.Content(), 0, msg.Size()))
		s.tx = nil
		if a.Err != nil {
			for i := range a.Result.Recipients {
				if a.Result.Recipients[i].Err == nil {
					a.Result.Recipients[i].Err = a.Err
				}
			}
		}
		s.endTx(ctx) // closes a broken session
	}
	return s.h.answer(ctx, msg, delivery.Settle(s.h.Config, msg, o, start, a, nil), liveReply(a))
}

// liveReply is the smarthost's reply to the final dot when it took the
// message and nothing of it is left to queue (no recipient deferred):
// the reply the client hears. nil when part or all of it was queued, so
// that the client hears our 250 with the queue id.
func liveReply(a relay.Attempt) *relay.Reply {
	if a.Err != nil || a.Result == nil || a.Result.Data == nil {
		return nil
	}
	for _, r := range a.Result.Recipients {
		if r.Err != nil && relay.Temporary(r.Err) {
			return nil
		}
	}
	return a.Result.Data
}

// errNotAsked stands for a recipient of the message the smarthost was not
// asked about in this transaction (the intake resolved the envelope
// differently): temporary, so that it is queued, never lost.
var errNotAsked = &relay.Error{Command: "RCPT TO", Code: 451, Enhanced: "4.3.0",
	Lines: []string{"recipient not offered to the smarthost in this transaction"}}
