// Package smtpd is relaymail's own small SMTP server: the engine behind
// `sendmail -bs` (one session on stdin/stdout) and `sendmail -bd` (a
// listener, loopback by default). It owns the server side of the protocol
// only: reading and answering commands, the envelope, the DATA stream and
// the limits and timeouts around them. What happens to a message is the
// Handler's business (relaymail's normal -bm path: headers, aliases, relay,
// queue; package smtpgate), so the package has no dependency on the rest
// of relaymail. Listen and ServeUntil are -bd's listener loop.
//
// # Session
//
//	220 greeting
//	HELO/EHLO            required before MAIL; resets any transaction
//	MAIL FROM:<a> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]
//	RCPT TO:<b>          repeated; Handler.Rcpt may refuse each one
//	DATA                 354, then the message streamed to Handler.Data;
//	                     its result is the reply to the final dot
//	RSET NOOP VRFY(252) HELP(214) QUIT(221)
//
// # Standards and the choices made
//
//   - RFC 5321. Commands are case-insensitive and may end in CRLF or a bare
//     LF (a command is never forwarded, so accepting LF there is harmless).
//     A command line may hold MaxLineLength octets including its line end
//     (default 1000, §4.5.3.1.4 as raised by the extensions); a longer one
//     is discarded up to its LF without being buffered and answered
//     "500 5.5.2". A NUL or a bare CR in a command is answered "500 5.5.2".
//     After 20 errors in one session the server answers 421 and closes.
//     EXPN, AUTH, STARTTLS, BDAT and the other commands of extensions not
//     offered are answered 502; an HTTP request line (GET, POST, CONNECT...,
//     a web page aiming a browser at a local port) ends the session with 421
//     before any line that follows it can be read as a command.
//   - Paths: "MAIL FROM: <a@x>" (space after the colon) is accepted, as is
//     a path without angle brackets ("MAIL FROM:a@x") for old HELO-era
//     clients, source routes are dropped (§4.1.2), the null sender "<>" is
//     allowed in MAIL only, and a bare local name ("RCPT TO:<root>") is
//     accepted for the Handler to qualify, as `sendmail root` would be.
//     A path longer than 256 octets is refused (§4.5.3.1.3).
//   - End of data (§4.5.2) is recognised only on <CRLF>.<CRLF>. A bare LF
//     or bare CR never ends a line for that purpose, so "<LF>.<LF>",
//     "<LF>.<CR><LF>" and "<CR>.<CR>" are message content (the "SMTP
//     smuggling" defence). Leading dots are removed from CRLF-delimited
//     lines only. Bare LFs and CRs inside the data are passed on to the
//     Handler unchanged; relaymail's message intake treats LF as a line end
//     and its client re-stuffs and writes CRLF, so a bare-LF dot can never
//     end the message at the smarthost either.
//   - Data lines have no length limit of their own: the data is streamed to
//     the Handler through a fixed-size buffer, so a long line costs no
//     memory, and MaxMessageSize bounds the total. (PHP's mail() writes
//     1,200-octet lines; -bs must take what -bm takes.)
//   - A message larger than MaxMessageSize is refused with 552 5.3.4: at
//     MAIL when SIZE= declares it (RFC 1870), otherwise the stream given to
//     Handler.Data fails with ErrMessageTooBig, the rest of the data is read
//     and thrown away, and 552 is the reply to the final dot whatever the
//     Handler returned.
//   - RFC 2920 PIPELINING: replies are buffered and written only when no
//     complete command is waiting in the input buffer (and always after
//     354), so a pipelining client gets its replies together. A Handler
//     that is an RcptBatcher gets the RCPTs already waiting in the input in
//     one call, so that it can ask a server behind it in one round trip;
//     their replies still go out in command order.
//   - RFC 6152 8BITMIME (BODY=), RFC 6531 SMTPUTF8 (a non-ASCII address
//     without SMTPUTF8 is refused with 553 5.6.7), RFC 2034/3463 enhanced
//     status codes on every reply after the greeting. Unknown MAIL or RCPT
//     parameters are answered 555 (RCPT has none: DSN is not offered).
//   - Timeouts (§4.5.3.2): CommandTimeout (5 min) waiting for a command,
//     DataTimeout (3 min) for each block of data and MessageTimeout
//     (10 min) for the whole of it, HandlerTimeout (10 min) for the
//     Handler to answer after the final dot. A client that stays silent,
//     or trickles its data in too slowly, is sent "421 4.4.2" and
//     dropped. A connection over MaxSessions waits SlotTimeout (30 s) for
//     a session, then is sent "421 4.3.2".
//   - A client whose connection ends after the final dot, before the
//     reply, is gone: the Handler's context is cancelled with cause
//     ErrClientGone (Linux), so that it keeps no copy of a message the
//     client will send again.
//
// # Stopping
//
// Shutdown is the graceful stop: listeners close, a session waiting for a
// command is sent "421 4.3.2" and closed (a transaction that has not reached
// DATA is simply not accepted, so the client keeps its message), and a
// session in DATA reads the message, gets its reply and is then closed.
// Cancelling the context given to Serve or ServeConn is the hard stop: the
// Handler's context is cancelled and a message still being read is cut off
// and never handed on as complete. A typical -bd:
//
//	go func() {
//		<-sigterm
//		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//		defer cancel()
//		srv.Shutdown(ctx)
//	}()
//	err := srv.Serve(context.Background(), l) // ErrServerClosed after Shutdown
package smtpd
