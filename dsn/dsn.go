// Package dsn builds the delivery status notifications (bounces) that
// relaymail sends when it gives a message up or, optionally, when it is
// still retrying one: an RFC 6522 multipart/report of report-type
// delivery-status, whose parts are a human explanation, the RFC 3464
// machine-readable report, and the original message's header block as
// text/rfc822-headers.
//
// Only the headers of the original are returned, never its body: the
// notification stays small and bounded (MaxHeaderBytes) whatever the size
// of the message, so a bounce never resends a 100 MB attachment, and the
// header block is enough for the sender to recognise the message.
//
// The package only formats. Sending is the caller's business, with the
// null reverse-path (MAIL FROM:<>), and never for a message whose own
// sender was null: Build refuses an empty To, so that a bounce is never
// bounced (RFC 3464 §2, RFC 5321 §6.1).
package dsn

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxHeaderBytes bounds the original header block returned in a
// notification; a longer one is cut after the last whole field that fits.
const MaxHeaderBytes = 64 << 10

// Recipient is the report on one recipient (RFC 3464 §2.3).
type Recipient struct {
	Addr           string // the envelope recipient, reported as "rfc822; Addr"
	Action         string // "failed" | "delayed" (also "delivered", "relayed", "expanded")
	Status         string // RFC 3463 code, "5.1.1"; "" = 5.0.0 for failed, 4.0.0 for delayed (see StatusFor)
	DiagnosticCode string // "smtp; 550 5.1.1 no such user" (type smtp when from a reply); "" = none
	RemoteMTA      string // "dns; smtp.example.com" when known; "" = none
}

// Report is one delivery status notification: about one message, to its
// envelope sender.
type Report struct {
	ReportingMTA string      // our hostname, reported as "dns; ReportingMTA"
	From         string      // "MAILER-DAEMON@domain"; "" = MAILER-DAEMON@ReportingMTA
	To           string      // the original envelope sender; never "" (a bounce is not bounced)
	EnvID        string      // the original ENVID (decoded), as Original-Envelope-Id; "" = none
	Arrival      time.Time   // when relaymail accepted the message; zero = not reported
	Recipients   []Recipient // at least one
	Reason       string      // a human sentence for the text part ("The message was not delivered within 5 days.")
	Header       []byte      // the original message's header block (CRLF or LF)
	Now          time.Time   // Date:, and the Message-ID; zero = time.Now()
	MessageID    string      // left part of the Message-ID; "" = generate
}

// The subjects, which people and filters recognise.
const (
	SubjectFailed  = "Undelivered Mail Returned to Sender"
	SubjectDelayed = "Delayed Mail (still being retried)"
)

// StatusFor turns an SMTP reply into an RFC 3463 status for Recipient:
// the reply's enhanced code when it has a valid one of the same class,
// else the generic 5.0.0 or 4.0.0 (and 2.0.0 for a success).
func StatusFor(code int, enhanced string) string {
	class := byte('0' + code/100)
	if validStatus(enhanced) && enhanced[0] == class {
		return enhanced
	}
	switch code / 100 {
	case 2:
		return "2.0.0"
	case 4:
		return "4.0.0"
	default:
		return "5.0.0"
	}
}

// validStatus checks the RFC 3463 syntax: class "." subject "." detail,
// class 2, 4 or 5, subject and detail of 1 to 3 digits.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
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

// actionClass is the status class each RFC 3464 action goes with.
var actionClass = map[string]byte{
	"failed":    '5',
	"delayed":   '4',
	"delivered": '2',
	"relayed":   '2',
	"expanded":  '2',
}

// Build returns the whole notification, header fields and body, with LF
// line endings (the relay's writer turns them into CRLF). It carries
// Auto-Submitted: auto-replied (RFC 3834) so that autoresponders stay
// quiet, and the subject SubjectFailed, or SubjectDelayed when every
// recipient is delayed. The result holds 8-bit bytes only when the
// original header or an address does (then it is marked
// Content-Transfer-Encoding: 8bit and must go with BODY=8BITMIME).
func Build(r Report) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	from := r.From
	if from == "" {
		from = "MAILER-DAEMON@" + r.ReportingMTA
	}
	recips := make([]Recipient, len(r.Recipients))
	failed := false
	for i, rc := range r.Recipients {
		if rc.Status == "" {
			rc.Status = string(actionClass[rc.Action]) + ".0.0"
		}
		failed = failed || rc.Action == "failed"
		recips[i] = rc
	}
	subject := SubjectFailed
	if !failed {
		subject = SubjectDelayed
	}
	header := originalHeader(r.Header)
	eightBit := hasEightBit(header) || hasEightBit([]byte(r.To))
	for _, rc := range recips {
		eightBit = eightBit || hasEightBit([]byte(rc.Addr))
	}

	id := r.MessageID
	if id == "" {
		id = newID(now)
	}
	human := humanText(r, recips)
	status := deliveryStatus(r, recips)
	boundary := ""
	for {
		boundary = "=_relaymail_" + randomHex(12)
		if !bytes.Contains(header, []byte(boundary)) && !strings.Contains(human, boundary) && !strings.Contains(status, boundary) {
			break
		}
	}

	var b bytes.Buffer
	field(&b, "From", "Mail Delivery System <"+from+">")
	field(&b, "To", "<"+r.To+">")
	field(&b, "Subject", subject)
	field(&b, "Date", now.Format(time.RFC1123Z))
	field(&b, "Message-ID", "<"+id+"@"+r.ReportingMTA+">")
	if orig := headerValue(header, "Message-ID"); orig != "" {
		field(&b, "In-Reply-To", orig)
		field(&b, "References", orig)
	}
	field(&b, "Auto-Submitted", "auto-replied")
	field(&b, "MIME-Version", "1.0")
	field(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	if eightBit {
		field(&b, "Content-Transfer-Encoding", "8bit")
	}
	b.WriteString("\nThis is a MIME-formatted delivery status notification (RFC 3464).\n")

	b.WriteString("\n--" + boundary + "\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Description: Notification\n\n")
	b.WriteString(human)

	b.WriteString("\n--" + boundary + "\n")
	b.WriteString("Content-Type: message/delivery-status\nContent-Description: Delivery report\n\n")
	b.WriteString(status)

	if len(header) > 0 {
		b.WriteString("\n--" + boundary + "\n")
		b.WriteString("Content-Type: text/rfc822-headers\nContent-Description: Headers of the undelivered message\n")
		if hasEightBit(header) {
			b.WriteString("Content-Transfer-Encoding: 8bit\n")
		}
		b.WriteString("\n")
		b.Write(header)
	}
	b.WriteString("\n--" + boundary + "--\n")
	return b.Bytes(), nil
}

// check refuses a report that would be wrong on the wire.
func (r *Report) check() error {
	if r.To == "" {
		return errors.New("dsn: no recipient for the notification: a message with the null sender is never bounced")
	}
	if len(r.Recipients) == 0 {
		return errors.New("dsn: no recipient to report on")
	}
	if r.ReportingMTA == "" {
		return errors.New("dsn: no reporting MTA name")
	}
	for _, c := range r.ReportingMTA {
		if c <= ' ' || c == 0x7f || strings.ContainsRune("<>()@,;:\\\"[]", c) {
			return fmt.Errorf("dsn: reporting MTA %q is not a host name", r.ReportingMTA)
		}
	}
	if !ValidAddr(r.To) || (r.From != "" && !ValidAddr(r.From)) {
		return fmt.Errorf("dsn: bad address in From %q or To %q", r.From, r.To)
	}
	if r.MessageID != "" && strings.ContainsAny(r.MessageID, "<>@ \t\r\n") {
		return fmt.Errorf("dsn: bad Message-ID left part %q", r.MessageID)
	}
	for _, rc := range r.Recipients {
		if !ValidAddr(rc.Addr) {
			return fmt.Errorf("dsn: bad recipient address %q", rc.Addr)
		}
		class, ok := actionClass[rc.Action]
		if !ok {
			return fmt.Errorf("dsn: <%s>: unknown action %q", rc.Addr, rc.Action)
		}
		if rc.Status != "" && (!validStatus(rc.Status) || rc.Status[0] != class) {
			return fmt.Errorf("dsn: <%s>: status %q does not fit action %s", rc.Addr, rc.Status, rc.Action)
		}
	}
	return nil
}

// ValidAddr reports whether addr can be written into the notification's
// header fields: not empty, no control characters, no angle brackets.
func ValidAddr(addr string) bool {
	if addr == "" || len(addr) > 512 {
		return false
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < ' ' || c == 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// deliveryStatus renders the message/delivery-status body: the
// per-message fields, then one group per recipient, each group ended by
// a blank line (RFC 3464 §2.1).
func deliveryStatus(r Report, recips []Recipient) string {
	var b bytes.Buffer
	if r.EnvID != "" {
		field(&b, "Original-Envelope-Id", oneLine(r.EnvID))
	}
	field(&b, "Reporting-MTA", "dns; "+r.ReportingMTA)
	if !r.Arrival.IsZero() {
		field(&b, "Arrival-Date", r.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range recips {
		b.WriteString("\n")
		field(&b, "Final-Recipient", "rfc822; "+rc.Addr)
		field(&b, "Action", rc.Action)
		field(&b, "Status", rc.Status)
		if rc.RemoteMTA != "" {
			field(&b, "Remote-MTA", oneLine(rc.RemoteMTA))
		}
		if rc.DiagnosticCode != "" {
			field(&b, "Diagnostic-Code", oneLine(rc.DiagnosticCode))
		}
	}
	return b.String()
}

// humanText is the first part: what happened, in words.
func humanText(r Report, recips []Recipient) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at %s.\n\n", r.ReportingMTA)
	var failed, delayed []Recipient
	for _, rc := range recips {
		switch rc.Action {
		case "failed":
			failed = append(failed, rc)
		case "delayed":
			delayed = append(delayed, rc)
		}
	}
	if len(failed) > 0 {
		b.WriteString(wrap("Your message could not be delivered to the recipients below, and it will not be tried again."))
	}
	if len(delayed) > 0 {
		if len(failed) > 0 {
			b.WriteString("\n")
		}
		b.WriteString(wrap("Your message has not been delivered yet to the recipients below. Delivery is still being tried: you do not need to send it again."))
	}
	if r.Reason != "" {
		b.WriteString("\n" + wrap(oneLine(r.Reason)))
	}
	for _, group := range [][]Recipient{failed, delayed} {
		if len(group) == 0 {
			continue
		}
		b.WriteString("\n")
		for _, rc := range group {
			fmt.Fprintf(&b, "<%s>: %s\n", rc.Addr, rc.Action)
			if rc.DiagnosticCode != "" {
				diag := oneLine(rc.DiagnosticCode)
				if _, text, ok := strings.Cut(diag, ";"); ok {
					diag = strings.TrimSpace(text)
				}
				via := ""
				if _, host, ok := strings.Cut(rc.RemoteMTA, ";"); ok {
					via = strings.TrimSpace(host) + " said: "
				}
				b.WriteString(indent(wrap(via + diag)))
			}
		}
	}
	b.WriteString("\n" + wrap("The delivery report and the header of your message are attached; its body is not."))
	return b.String()
}

// originalHeader prepares the original header block for
// text/rfc822-headers: LF line endings, at most MaxHeaderBytes cut at a
// field boundary, no trailing blank line.
func originalHeader(h []byte) []byte {
	h = bytes.ReplaceAll(h, []byte("\r\n"), []byte("\n"))
	h = bytes.ReplaceAll(h, []byte("\r"), []byte("\n"))
	if i := bytes.Index(h, []byte("\n\n")); i >= 0 {
		h = h[:i+1]
	}
	if len(h) > MaxHeaderBytes {
		// Keep the fields that end within the limit: a field ends where
		// the next line does not begin with white space.
		end := 0
		for at := 0; at < len(h) && at <= MaxHeaderBytes; {
			if at > 0 && h[at] != ' ' && h[at] != '\t' {
				end = at
			}
			i := bytes.IndexByte(h[at:], '\n')
			if i < 0 {
				break
			}
			at += i + 1
		}
		h = h[:end]
	}
	if len(h) > 0 && h[len(h)-1] != '\n' {
		h = append(bytes.Clone(h), '\n')
	}
	return h
}

// headerValue returns the value of the first field called name, unfolded.
func headerValue(h []byte, name string) string {
	lines := strings.Split(string(h), "\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue
		}
		for _, c := range lines[i+1:] {
			if !strings.HasPrefix(c, " ") && !strings.HasPrefix(c, "\t") {
				break
			}
			v += c
		}
		v = strings.TrimSpace(oneLine(v))
		if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") && !strings.ContainsAny(v[1:len(v)-1], "<> ") {
			return v
		}
		return ""
	}
	return ""
}

// field writes "Name: value", folded at spaces before 78 columns where
// the value allows (RFC 5322 §2.2.3).
func field(b *bytes.Buffer, name, value string) {
	line := name + ":"
	col := len(line)
	b.WriteString(line)
	for i, word := range strings.Split(value, " ") {
		if i > 0 && col+1+len(word) > 78 {
			b.WriteString("\n")
			col = 0
		}
		b.WriteString(" " + word)
		col += 1 + len(word)
	}
	b.WriteString("\n")
}

// wrap fills text into lines of at most 72 columns.
func wrap(text string) string {
	var b strings.Builder
	col := 0
	for _, w := range strings.Fields(text) {
		if col > 0 && col+1+len(w) > 72 {
			b.WriteString("\n")
			col = 0
		}
		if col > 0 {
			b.WriteString(" ")
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\n")
	return b.String()
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

// oneLine keeps a value on one line: each run of control characters
// becomes one space, and the value is bounded.
func oneLine(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
	s = strings.Join(parts, " ")
	if len(s) > 900 {
		s = strings.ToValidUTF8(s[:900], "")
	}
	return s
}

func hasEightBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newID(now time.Time) string {
	return "dsn." + strconv.FormatInt(now.UnixNano(), 36) + "." + randomHex(6)
}
