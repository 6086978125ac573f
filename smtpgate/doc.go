// Package smtpgate is relaymail's SMTP personality (-bs, -bd): the
// smtpd.Handler that puts each message a client hands over through
// exactly the path of a message piped in (-bm): sendmail's intake,
// header rewrites and aliases, then delivery (the smarthost, or the
// queue). Its replies, named in reply.go, carry the outcome.
//
// smtpd is the protocol engine and knows nothing of relaymail; this
// package owns what relaymail answers. The live proxy of issue 11 (one
// smarthost session per client session, the smarthost's RCPT verdicts
// relayed at RCPT time, the message streamed while it is spooled) grows
// here: Handler already holds the per-server state a session needs.
package smtpgate
