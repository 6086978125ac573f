// Package relay is relaymail's embedded SMTP submission client: it owns
// everything between "here is an envelope and a message" and the
// smarthost's reply to the final dot.
//
// A Session follows one fixed sequence:
//
//	Dial: connect (TCP, or TLS from the first byte for TLSImplicit),
//	      read the 220 greeting, EHLO (HELO only when EHLO gets 500/502),
//	      STARTTLS and EHLO again (TLSStartTLS), AUTH when a username is set
//	Send: [RSET] MAIL, RCPT..., DATA, the message, "." (repeatable)
//	Quit: QUIT, then close (the connection is closed on every path)
//
// A Dialer tries a smarthost and its fallbacks in order: the one place
// where the fallback rule (TryNextHost) is applied, with the hosts already
// dead in a queue pass skipped (DeadHosts). Deliver is a Dialer whose
// transaction sends one message and quits; the queue runner's keeps the
// session open for the next message.
//
// relay owns the wire's shapes: Host is the one host shape (config
// resolves each smarthost into it once, with the one TLSMode and its
// DefaultPort) and Envelope is message.Envelope, the envelope sendmail
// makes and the queue stores, sent without conversion.
//
// Standards implemented, and where a choice was made:
//
//   - RFC 5321 (SMTP): replies, multi-line replies, line limits (998 octets
//     of text per line, §4.5.3.1.6), dot-stuffing (§4.5.2), timeouts
//     (§4.5.3.2: the end-of-data reply may take up to 10 minutes; each
//     deadline covers a whole reply, so a server cannot stretch it by
//     dripping octets), only 250 accepts the data (§4.3.2), and nothing
//     may wait behind the 354 (the dialogue would be out of step).
//   - RFC 3207 (STARTTLS): EHLO again after the handshake; no downgrade when
//     STARTTLS is not offered; bytes the server sent between its 220 and the
//     handshake are refused (they would be read as if they came over TLS).
//   - RFC 4954 (AUTH) with RFC 4616 PLAIN, LOGIN, RFC 2195 CRAM-MD5, XOAUTH2
//     and RFC 7628 OAUTHBEARER. Credentials are sent only over TLS or to a
//     loopback host.
//   - RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531
//     SMTPUTF8, RFC 3461 DSN (NOTIFY, RET, ENVID), RFC 2034/3463 enhanced
//     status codes.
//
// Errors: every SMTP reply that ends an operation is an *Error that carries
// the command, the code, the enhanced code and all the text, and matches one
// class sentinel with errors.Is (ErrAuth, ErrBusy, ErrSyntax, ErrFatal,
// ErrUnknownReply, ErrUnsupported, ErrTooBig). Network failures are a
// *TransportError that matches ErrTransport and keeps its cause. Dial
// wraps whichever it got in a *SessionError (ErrSession): a failure to
// set up the session is never a verdict on a message, so it is temporary
// whatever the code.
//
// Credentials never appear in an error or in the trace written for -v.
package relay
