package smtpd

import (
	"bytes"
	"context"
	"fmt"
)

// SessionMaker is a Handler that keeps state for each session, such as a
// connection onward that lives as long as the client's session (the
// SMTP personality's live proxy keeps one smarthost session per client
// session). The Server calls NewSession when a session starts, asks the
// SessionHandler it returns instead of the SessionMaker for that session,
// and closes it when the session ends, however it ends.
type SessionMaker interface {
	Handler
	NewSession(remote string) SessionHandler
}

// SessionHandler is the Handler of one session. Its methods are called
// from the session's goroutine only, one at a time.
type SessionHandler interface {
	Handler
	// Reset is called when the client's transaction (opened by MAIL) ends
	// without reaching DATA: RSET, HELO or EHLO. ctx expires after
	// Server.CommandTimeout. A transaction that reached DATA ends in Data.
	Reset(ctx context.Context)
	// Close is called once when the session ends (QUIT, the client
	// leaving, a timeout, a stop), with any transaction still open.
	Close()
}

// startHandler picks the session's Handler: its own when the Server's
// Handler is a SessionMaker.
func (ss *session) startHandler() {
	ss.h = ss.srv.Handler
	if m, ok := ss.srv.Handler.(SessionMaker); ok {
		sh := m.NewSession(ss.remote)
		ss.h, ss.sh = sh, sh
	}
}

// resetTx drops the client's transaction, telling a SessionHandler.
func (ss *session) resetTx() {
	if ss.env == nil {
		return
	}
	ss.env = nil
	if ss.sh == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ss.ctx, ss.srv.commandTimeout())
	defer cancel()
	defer ss.recoverHandler("Reset")
	ss.sh.Reset(ctx)
}

// endHandler closes a SessionHandler when the session is over.
func (ss *session) endHandler() {
	if ss.sh == nil {
		return
	}
	defer ss.recoverHandler("Close")
	ss.sh.Close()
}

func (ss *session) recoverHandler(method string) {
	if p := recover(); p != nil {
		ss.log.Error("smtpd: Handler."+method+" panicked", "panic", fmt.Sprint(p))
	}
}

// RcptBatcher is a Handler that answers a run of pipelined RCPT commands
// at once, so that it can ask the server behind it about all of them in
// one round trip (RFC 2920) rather than one each: the live proxy relays
// each RCPT to the smarthost, and a client that pipelines fifty RCPTs
// should not cost fifty round trips to it.
//
// When a RCPT arrives with further RCPT commands already waiting in the
// input, the session calls RcptBatch once with their addresses in order
// instead of Rcpt for each, then answers each command in order with
// replies[i] for addrs[i], read as Rcpt's result (nil or 2xx accepts).
// env is the transaction before the batch. A batch holds only RCPTs the
// session would otherwise have passed to Rcpt (well-formed, no
// parameters) and never more than the transaction may still take
// (Server.MaxRecipients); a single RCPT still goes to Rcpt. ctx expires
// after Server.CommandTimeout, for the whole batch.
type RcptBatcher interface {
	RcptBatch(ctx context.Context, env *Envelope, addrs []string) (replies []*Reply)
}

// pipelinedRcpts adds to addrs the recipients of the RCPT commands that
// follow in the input buffer, up to room addresses in all, taking each
// command out of the buffer. It stops at the first line that is not yet
// whole in the buffer or is anything but a RCPT the session would pass to
// the Handler as it is: that line is left for the command loop, which
// answers it in its turn.
func (ss *session) pipelinedRcpts(addrs []string, room int) []string {
	for len(addrs) < room {
		buf, _ := ss.br.Peek(ss.br.Buffered())
		end := bytes.IndexByte(buf, '\n')
		if end < 0 || end+1 > ss.srv.maxLineLength() {
			break
		}
		line := bytes.TrimSuffix(buf[:end], []byte("\r"))
		cmd, r := parseCommand(line)
		if r != nil || cmd.verb != "RCPT" {
			break
		}
		pa, r := parsePathArg(cmd.arg, "TO", false, ss.env.SMTPUTF8)
		if r != nil || len(pa.params) > 0 {
			break
		}
		addrs = append(addrs, pa.addr)
		ss.br.Discard(end + 1)
	}
	return addrs
}

// rcptBatch asks b about addrs and answers each RCPT in order. A Handler
// that panics, or returns fewer replies than addresses, gets 451 for
// the recipients it left unanswered.
func (ss *session) rcptBatch(b RcptBatcher, addrs []string) {
	ctx, cancel := context.WithTimeout(ss.ctx, ss.srv.commandTimeout())
	replies := ss.callRcptBatch(ctx, b, addrs)
	cancel()
	if len(replies) != len(addrs) {
		ss.log.Error("smtpd: Handler.RcptBatch returned the wrong number of replies", "addrs", len(addrs), "replies", len(replies))
	}
	for i, addr := range addrs {
		r := replyHandlerBug
		if i < len(replies) {
			r = replies[i]
		}
		ss.answerRcpt(addr, r)
	}
}

// callRcptBatch calls b; after a panic it returns nil, which rcptBatch
// answers with 451s.
func (ss *session) callRcptBatch(ctx context.Context, b RcptBatcher, addrs []string) []*Reply {
	defer ss.recoverHandler("RcptBatch")
	return b.RcptBatch(ctx, ss.env, addrs)
}
