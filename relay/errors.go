package relay

import (
	"crypto/tls"
	"errors"
	"strconv"
	"strings"
)

// classError is the type of the class sentinels; its text is what a caller
// sees if it prints a sentinel by itself.
type classError string

func (c classError) Error() string { return string(c) }

// The class sentinels. Every *Error matches exactly one of ErrAuth, ErrBusy,
// ErrSyntax, ErrFatal, ErrUnknownReply and ErrUnsupported with errors.Is, so
// callers can map an outcome to an exit status (SPEC §6) without looking at
// reply codes. ErrTooBig additionally marks a message that is too large; it
// is always also ErrFatal (the message will never fit that server).
// ErrTransport marks a *TransportError.
var (
	// ErrAuth: 530, 534, 535 and 538 replies (authentication required,
	// mechanism too weak, credentials invalid, encryption required).
	ErrAuth error = classError("relay: authentication error")
	// ErrBusy: any 4xx reply; try again later.
	ErrBusy error = classError("relay: server busy")
	// ErrSyntax: 500 and 501 replies; the server did not understand us.
	ErrSyntax error = classError("relay: syntax error")
	// ErrFatal: any other 5xx reply; the server will never accept this.
	ErrFatal error = classError("relay: fatal error")
	// ErrUnknownReply: a reply of a class that makes no sense at this
	// point (e.g. 354 to RCPT), or one that cannot be parsed. The session
	// is unusable afterwards.
	ErrUnknownReply error = classError("relay: unknown reply")
	// ErrUnsupported: 502 and 504 replies, or an extension we need
	// (STARTTLS, AUTH, SMTPUTF8) that the server does not offer.
	ErrUnsupported error = classError("relay: unsupported command")
	// ErrTooBig: the message is larger than the SIZE the server
	// advertised, or the server said so with 5.3.4. Also matches ErrFatal.
	ErrTooBig error = classError("relay: message too big")
	// ErrTransport: DNS, connect, TLS handshake, timeout, connection
	// lost. Always temporary.
	ErrTransport error = classError("relay: transport error")
	// ErrSession marks a *SessionError: Dial failed, before any
	// transaction. It is not a class of its own (the reply inside keeps
	// its class) but says the failure is about the path to the host, not
	// about a message. Always temporary.
	ErrSession error = classError("relay: session failed")
)

// Error is an SMTP reply that ended an operation, or a condition the client
// found itself (then Code is 0 and Lines says what), with the command it
// answered. It is the one error type callers need to log a failure: the
// code, enhanced code and every text line the server sent are kept.
type Error struct {
	Command  string   // "greeting", "EHLO", "STARTTLS", "AUTH", "MAIL FROM", "RCPT TO", "DATA", "end of data", "RSET", "QUIT"
	Arg      string   // the address for MAIL FROM/RCPT TO, the mechanism for AUTH; never a credential
	Code     int      // the reply code; 0 when the client detected the problem
	Enhanced string   // RFC 3463 code such as "5.1.1", or ""
	Lines    []string // the reply text, one element per line, enhanced code removed

	class error // overrides the class derived from Code when set
}

// Error formats as "relay: RCPT TO:<x@y>: 550 5.1.1 no such user; line 2".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("relay: ")
	b.WriteString(commandString(e.Command, e.Arg))
	b.WriteString(":")
	if e.Code != 0 {
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(e.Code))
	}
	if e.Enhanced != "" {
		b.WriteString(" ")
		b.WriteString(e.Enhanced)
	}
	if len(e.Lines) > 0 {
		b.WriteString(" ")
		b.WriteString(strings.Join(e.Lines, "; "))
	}
	return b.String()
}

// commandString renders a command for messages: "RCPT TO:<a@x>", "AUTH PLAIN".
func commandString(cmd, arg string) string {
	switch cmd {
	case "MAIL FROM", "RCPT TO":
		return cmd + ":<" + arg + ">"
	}
	if arg != "" {
		return cmd + " " + arg
	}
	return cmd
}

// Temporary reports whether the reply was a 4xx: the same message may
// succeed later.
func (e *Error) Temporary() bool { return e.Code >= 400 && e.Code < 500 }

// Is matches the class sentinel of e, so that errors.Is(err, ErrAuth) works
// through any wrapping.
func (e *Error) Is(target error) bool {
	c := e.Class()
	if target == c {
		return true
	}
	if c == ErrTooBig && target == ErrFatal {
		return true
	}
	// A server that says "too big" in its own words (RFC 3463 5.3.4).
	if target == ErrTooBig && e.Code >= 500 && e.Enhanced == "5.3.4" {
		return true
	}
	return false
}

// Class returns the sentinel e matches: its explicit class when the client
// set one, else the class of its code (SPEC §6).
func (e *Error) Class() error {
	if e.class != nil {
		return e.class
	}
	return classOf(e.Code)
}

// classOf maps a reply code that ended an operation to its class.
func classOf(code int) error {
	switch {
	case code == 530 || code == 534 || code == 535 || code == 538:
		return ErrAuth
	case code >= 400 && code < 500:
		return ErrBusy
	case code == 500 || code == 501:
		return ErrSyntax
	case code == 502 || code == 504:
		return ErrUnsupported
	case code >= 500 && code < 600:
		return ErrFatal
	}
	return ErrUnknownReply
}

// TransportError is a failure below SMTP: name resolution, connect, the TLS
// handshake, a timeout, a lost connection, EOF in the middle of a reply. It
// keeps the cause for errors.Unwrap / errors.As (e.g. *net.OpError,
// x509.UnknownAuthorityError) and is always temporary.
type TransportError struct {
	Op  string // what was being done: "connect smtp.example.com:587", "read reply to DATA"
	Err error
}

// Error formats as "relay: connect smtp.example.com:587: <cause>".
func (e *TransportError) Error() string { return "relay: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches ErrTransport.
func (e *TransportError) Is(target error) bool { return target == ErrTransport }

// Temporary is always true: the network may work next time.
func (e *TransportError) Temporary() bool { return true }

// SessionError is why Dial failed: the connect, the greeting, EHLO, TLS
// or AUTH. None of these is a verdict on a message (SPEC §6, §7): until
// STARTTLS completes anyone on the path can answer in the server's name
// (strip STARTTLS, refuse it, greet with 554, offer AUTH only in clear),
// and a missing mechanism or a refused password is the administrator's to
// mend. So a SessionError is always temporary, whatever the reply's code;
// the message waits in the queue and the next host is tried. The *Error
// or *TransportError inside keeps its class for errors.Is and errors.As.
type SessionError struct {
	// TLS is the connection state when TLS was negotiated before the
	// failure (e.g. AUTH refused after STARTTLS), for the log; else nil.
	TLS *tls.ConnectionState
	Err error
}

// Error is the text of the failure inside.
func (e *SessionError) Error() string { return e.Err.Error() }

// Unwrap returns the failure inside.
func (e *SessionError) Unwrap() error { return e.Err }

// Is matches ErrSession.
func (e *SessionError) Is(target error) bool { return target == ErrSession }

// Temporary is always true: see SessionError.
func (e *SessionError) Temporary() bool { return true }

// Temporary reports whether err means "try again later": a 4xx *Error, a
// transport failure or a failure to set up the session anywhere in err's
// chain. The queue uses it to decide between keeping a message and
// bouncing it.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrSession) {
		return true
	}
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	return false
}

// replyError builds the *Error for reply r answering cmd.
func replyError(cmd, arg string, r *Reply) *Error {
	return &Error{Command: cmd, Arg: arg, Code: r.Code, Enhanced: r.Enhanced, Lines: r.Lines}
}

// clientError builds an *Error for a condition the client found itself.
func clientError(cmd, arg string, class error, text string) *Error {
	return &Error{Command: cmd, Arg: arg, Lines: []string{text}, class: class}
}
