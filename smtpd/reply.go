package smtpd

import (
	"strconv"
	"strings"
)

// Reply is an SMTP reply a Handler wants sent to the client, for example
// the smarthost's refusal of a recipient or the queue id of an accepted
// message. It is also an error, so that a Handler can pass one up through
// its own error returns.
type Reply struct {
	Code     int    // three-digit reply code, 200..599
	Enhanced string // RFC 3463 enhanced status code ("5.1.1"); filled in from Code when empty or malformed
	Text     string // human-readable text; a "\n" separates the lines of a multi-line reply
}

// Error renders the reply on one line, for logs and wrapped errors.
func (r *Reply) Error() string {
	s := "smtpd: " + strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + strings.ReplaceAll(r.Text, "\n", "; ")
	}
	return s
}

// Temporary reports whether the reply is a transient failure (4xx), which
// the client is expected to retry later.
func (r *Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Replies the session itself sends. Kept together so the wording is
// consistent and every code is chosen in one place.
var (
	replyOK            = &Reply{250, "2.0.0", "OK"}
	replyMailOK        = &Reply{250, "2.1.0", "Sender OK"}
	replyRcptOK        = &Reply{250, "2.1.5", "Recipient OK"}
	replyDataOK        = &Reply{250, "2.0.0", "OK: message accepted"}
	replyStartData     = &Reply{354, "", "Send message, end with <CRLF>.<CRLF>"}
	replyBye           = &Reply{221, "2.0.0", "Bye"}
	replyVrfy          = &Reply{252, "2.1.5", "Cannot verify the user, but will try to deliver"}
	replyHelp          = &Reply{214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"}
	replyTimeout       = &Reply{421, "4.4.2", "Timeout waiting for the client, closing connection"}
	replyShutdown      = &Reply{421, "4.3.2", "Service shutting down, closing connection"}
	replyBusy          = &Reply{421, "4.3.2", "Too many connections, try again later"}
	replyTooManyErrors = &Reply{421, "4.7.0", "Too many errors, closing connection"}
	replyTooManyRcpts  = &Reply{452, "4.5.3", "Too many recipients"}
	replyHandlerBug    = &Reply{451, "4.3.0", "Local error in processing"}
	replyUnknown       = &Reply{500, "5.5.2", "Command not recognized"}
	replyLineTooLong   = &Reply{500, "5.5.2", "Line too long"}
	replyBadBytes      = &Reply{500, "5.5.2", "NUL or bare CR in command"}
	replyNotImpl       = &Reply{502, "5.5.1", "Command not implemented"}
	replyNeedHelo      = &Reply{503, "5.5.1", "Send HELO or EHLO first"}
	replyNestedMail    = &Reply{503, "5.5.1", "Sender already given"}
	replyNeedMail      = &Reply{503, "5.5.1", "Send MAIL first"}
	replyNoRcpts       = &Reply{554, "5.5.1", "No valid recipients"}
	replyTooBig        = &Reply{552, "5.3.4", "Message too big for this system"}
	replyNeedUTF8      = &Reply{553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter"}
)

// syntaxReply is a 501 with the given explanation.
func syntaxReply(text string) *Reply { return &Reply{501, "5.5.4", text} }

// normalize returns the reply in a form that is safe to send: a code in
// 200..599, an enhanced code of the right class, and text without control
// characters (a Handler may relay a smarthost's text, which must not be
// able to inject a line into our reply stream).
func (r *Reply) normalize() *Reply {
	n := *r
	if n.Code < 200 || n.Code > 599 {
		return replyHandlerBug
	}
	class := byte('0' + n.Code/100)
	if n.Code/100 == 3 {
		n.Enhanced = "" // 354 carries no enhanced code (RFC 2034 §3)
	} else if !validEnhanced(n.Enhanced, class) {
		n.Enhanced = string(class) + ".0.0"
	}
	return &n
}

// validEnhanced reports whether s is class "." subject "." detail with the
// given class digit (RFC 3463 §2: up to 3 digits per sub-code).
func validEnhanced(s string, class byte) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != string(class) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// maxReplyText bounds one line of reply text; RFC 5321 §4.5.3.1.5 allows
// 512 octets per reply line including code and CRLF.
const maxReplyText = 480

// format renders the reply in wire form. Lines of the text become the
// lines of a multi-line reply; each carries the enhanced code, if any
// (RFC 2034 §4). The greeting and the HELO/EHLO replies are built without
// one; every other reply has one after normalize.
func (r *Reply) format() []byte {
	lines := strings.Split(r.Text, "\n")
	var b []byte
	for i, line := range lines {
		line = cleanText(line)
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if i < len(lines)-1 {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
		}
		if r.Enhanced != "" {
			b = append(b, r.Enhanced...)
			if line != "" {
				b = append(b, ' ')
			}
		}
		b = append(b, line...)
		b = append(b, '\r', '\n')
	}
	return b
}

// cleanText drops control characters and bounds the length of one line of
// reply text.
func cleanText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(c rune) rune {
			if c < ' ' || c == 0x7f {
				return -1
			}
			return c
		}, s)
	}
	s = strings.TrimRight(s, " ")
	if len(s) > maxReplyText {
		s = strings.ToValidUTF8(s[:maxReplyText], "")
	}
	return s
}
