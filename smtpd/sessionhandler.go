package smtpd

import (
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
