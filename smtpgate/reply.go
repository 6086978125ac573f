package smtpgate

import (
	"errors"
	"strings"

	"relaymail/relay"
	"relaymail/smtpd"
)

// Replies of relaymail's SMTP personality, each with the outcome it
// reports (SPEC §2a). The session's own protocol replies are smtpd's
// (smtpd/reply.go). Codes per RFC 5321 §4.2.2, enhanced codes per
// RFC 3463 (5.1.3 bad destination syntax, 5.6.0 media error, 4.3.0 and
// 5.0.0 other or undefined).
var (
	replyBadRecipient = &smtpd.Reply{Code: 501, Enhanced: "5.1.3", Text: "bad recipient address syntax"}
)

// replyUncarried refuses a recipient no RCPT TO can carry (553).
func replyUncarried(err error) *smtpd.Reply {
	return &smtpd.Reply{Code: 553, Enhanced: "5.1.3", Text: "recipient is an " + err.Error()}
}

// replyAccepted is 250 for a message delivered or queued; note adds to
// the text ("some recipients refused, the sender is told").
func replyAccepted(id, note string) *smtpd.Reply {
	text := "OK: queued as " + id
	if note != "" {
		text += "; " + note
	}
	return &smtpd.Reply{Code: 250, Enhanced: "2.0.0", Text: text}
}

// replyRelayed is the smarthost's own 250 to the final dot, relayed: its
// code, enhanced code and text (its lines joined), note added after it.
// Its text is the smarthost's, which anyone on the path can write before
// STARTTLS: smtpd cleans every reply's text of control characters as it
// sends it (Reply.format), so none can forge a line of ours.
func replyRelayed(r *relay.Reply, note string) *smtpd.Reply {
	text := strings.Join(r.Lines, " ")
	if note != "" {
		text += "; " + note
	}
	return &smtpd.Reply{Code: r.Code, Enhanced: r.Enhanced, Text: text}
}

// replyBadMessage is 554 for a message the intake refused (ErrData).
func replyBadMessage(text string) *smtpd.Reply {
	return &smtpd.Reply{Code: 554, Enhanced: "5.6.0", Text: text}
}

// replyTryAgain is 451 for a message that could neither go nor be
// queued: the client keeps it and sends it again.
func replyTryAgain(text string) *smtpd.Reply {
	return &smtpd.Reply{Code: 451, Enhanced: "4.3.0", Text: text}
}

// replyRecipientsRefused is 550 when every recipient was refused and no
// smarthost reply says more.
func replyRecipientsRefused(text string) *smtpd.Reply {
	return &smtpd.Reply{Code: 550, Enhanced: "5.1.3", Text: text}
}

// replyFrom passes on the smarthost's permanent reply; without one it is
// 554 5.0.0 with text, ours.
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

// replySmarthost relays the smarthost's own refusal of a recipient (4xx
// or 5xx at RCPT, or at MAIL for every recipient): its code, enhanced
// code and text, so that the client reports what the smarthost said.
// When the text does not name the address, "<addr>: " goes before it:
// clients such as Symfony Mailer show the reply but not the command, and
// an alias's target is an address the client never sent.
func replySmarthost(err error, addr string) *smtpd.Reply {
	var e *relay.Error
	if errors.As(err, &e) && e.Code >= 400 && e.Code < 600 {
		text := strings.Join(e.Lines, " ")
		if addr != "" && !strings.Contains(strings.ToLower(text), strings.ToLower(addr)) {
			text = "<" + addr + ">: " + text
		}
		return &smtpd.Reply{Code: e.Code, Enhanced: e.Enhanced, Text: text}
	}
	if relay.Temporary(err) {
		return replyTryAgain(oneLine(err))
	}
	return &smtpd.Reply{Code: 550, Enhanced: "5.1.1", Text: oneLine(err)}
}
