// Package smtpgate is relaymail's SMTP personality (-bs, -bd): the
// smtpd.Handler that puts each message a client hands over through
// exactly the path of a message piped in (-bm): sendmail's intake,
// header rewrites and aliases, then delivery (the smarthost, or the
// queue). Its replies, named in reply.go, carry the outcome.
//
// smtpd is the protocol engine and knows nothing of relaymail; this
// package owns what relaymail answers. Handler is an smtpd.SessionMaker:
// each client session is a live proxy (proxy.go) with one smarthost
// session, the smarthost's RCPT verdicts relayed at RCPT time and the
// spooled message streamed at DATA; what the smarthost cannot take goes
// the -bm way (Handler.Data) and is queued.
package smtpgate
