package sendmail

import (
	"crypto/rand"
	"fmt"
	"mime"
	"strings"
	"time"
)

// RewriteOptions is what Rewrite needs to know about the envelope and
// the host.
type RewriteOptions struct {
	Domain      string    // qualifies bare names in From, To, Cc, Reply-To, Resent-From, Resent-To, Resent-Cc
	Hostname    string    // Message-ID right-hand side ("" = Domain, else "localhost")
	Sender      string    // envelope sender (qualified), "" = null sender
	FullName    string    // display name for an added From: (-F, else the caller's GECOS name); may be ""
	RewriteFrom bool      // rewrite_from_header: the address in From: is replaced by Sender, display name kept
	Now         time.Time // for Date: (its location is the zone written; zero = time.Now())
	MessageID   string    // the left part of an added Message-ID; "" = generate one (time + random)
}

// qualifiedFields are the address fields whose bare names Rewrite
// qualifies (SPEC §3); the Resent- forms follow the same rule because
// they carry the same kind of addresses.
var qualifiedFields = []string{"From", "To", "Cc", "Reply-To", "Resent-From", "Resent-To", "Resent-Cc"}

// mailerDaemon is the local part of From: when the envelope sender is the
// null sender (a bounce), as sendmail and Postfix write it.
const mailerDaemon = "MAILER-DAEMON"

// Rewrite applies SPEC §3 to h in place and returns a line per change,
// for --dry-run, -v and the log:
//
//   - Bcc: and Resent-Bcc: are removed.
//   - Bare names in From, To, Cc, Reply-To (and Resent-From, Resent-To,
//     Resent-Cc) get "@Domain"; every other byte of those fields stays.
//   - With RewriteFrom, the first address of each From: field (the
//     first member of a group, the first of several) is replaced by
//     Sender; display names, comments and any further addresses stay. A
//     From: with no usable address is replaced as a whole by the From:
//     Rewrite would add.
//   - Date: (RFC 5322 §3.3, e.g. "Mon, 02 Jan 2006 15:04:05 -0700"),
//     Message-ID: (<left@Hostname>) and From: are added when missing,
//     at the end of the block.
//
// An added or rewritten From: carries Sender, or MAILER-DAEMON@Domain
// for the null sender (a header address cannot be empty), with FullName
// as its display name: quoted when it needs quoting, RFC 2047-encoded
// when it is not ASCII.
func Rewrite(h *Header, o RewriteOptions) []string {
	var changes []string
	for _, name := range []string{"Bcc", "Resent-Bcc"} {
		if n := h.Del(name); n > 0 {
			changes = append(changes, fmt.Sprintf("removed %s: (%d)", name, n))
		}
	}
	if o.Domain != "" {
		for _, f := range h.Fields {
			if !nameIn(f.Name, qualifiedFields) {
				continue
			}
			out, changed := QualifyAddressList(string(f.rawValue()), o.Domain)
			if changed {
				f.setRawValue([]byte(out))
				changes = append(changes, "qualified bare names in "+f.Name+":")
			}
		}
	}
	from := o.headerSender()
	if o.RewriteFrom {
		for _, f := range h.Get("From") {
			if c := rewriteFrom(f, from, o.FullName); c != "" {
				changes = append(changes, c)
			}
		}
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !h.Has("Date") {
		h.Add("Date", now.Format(time.RFC1123Z))
		changes = append(changes, "added Date:")
	}
	if !h.Has("Message-ID") {
		left := o.MessageID
		if left == "" {
			left = newMessageIDLeft(now)
		}
		id := "<" + left + "@" + o.hostname() + ">"
		h.Add("Message-ID", id)
		changes = append(changes, "added Message-ID: "+id)
	}
	if !h.Has("From") {
		v := formatMailbox(o.FullName, from)
		h.Add("From", v)
		changes = append(changes, "added From: "+v)
	}
	return changes
}

// headerSender is the address an added or rewritten From: carries.
func (o RewriteOptions) headerSender() string {
	if o.Sender != "" {
		return o.Sender
	}
	switch {
	case o.Domain != "":
		return mailerDaemon + "@" + o.Domain
	case o.Hostname != "":
		return mailerDaemon + "@" + o.Hostname
	}
	return mailerDaemon
}

func (o RewriteOptions) hostname() string {
	switch {
	case o.Hostname != "":
		return o.Hostname
	case o.Domain != "":
		return o.Domain
	}
	return "localhost"
}

// newMessageIDLeft returns a new unique left-hand side for a Message-ID:
// the time (so that IDs sort and say when) and 128 bits of randomness
// (so that two messages in the same second on any host never collide).
func newMessageIDLeft(now time.Time) string {
	return now.UTC().Format("20060102150405") + "." + rand.Text()
}

// rewriteFrom replaces the first address of From: field f by addr and
// says what it did ("" for nothing).
func rewriteFrom(f *Field, addr, fullName string) string {
	raw := string(f.rawValue())
	boxes, err := parseList(raw)
	if err == nil {
		for _, m := range boxes {
			if m.err != nil {
				continue
			}
			if !m.empty && m.spec == addr {
				return ""
			}
			f.setRawValue([]byte(raw[:m.start] + addr + raw[m.end:]))
			return "rewrote the address in " + f.Name + ": to " + addr
		}
	}
	eol := "" // keep the field's own line ending
	switch {
	case strings.HasSuffix(raw, "\r\n"):
		eol = "\r\n"
	case strings.HasSuffix(raw, "\n"):
		eol = "\n"
	}
	v := formatMailbox(fullName, addr)
	f.setRawValue([]byte(" " + v + eol))
	return "replaced " + f.Name + ": (no address in it) by " + v
}

// formatMailbox writes a mailbox for a header field: addr alone, or
// name <addr>, name sanitised (no CR or LF, which would start a new
// field) and quoted or encoded as RFC 5322 and RFC 2047 require.
func formatMailbox(name, addr string) string {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" {
		return addr
	}
	return formatPhrase(name) + " <" + addr + ">"
}

// formatPhrase returns name as a display name: as it is when it is made
// of atoms, as a quoted string when it is other printable ASCII, and as
// RFC 2047 encoded words otherwise: Q encoding, or B when the name holds
// characters that Q encoding would leave bare but a phrase cannot hold
// (RFC 2047 §5 (3)), as net/mail does.
func formatPhrase(name string) string {
	ascii, atoms := true, true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 0x80 || c < 0x20 || c == 0x7f:
			ascii = false
		case c == ' ' || isAtext(c):
		default:
			atoms = false
		}
	}
	switch {
	case !ascii:
		if strings.ContainsAny(name, "\"#$%&'(),.:;<>@[]\\^`{|}~") {
			return mime.BEncoding.Encode("utf-8", name)
		}
		return mime.QEncoding.Encode("utf-8", name)
	case atoms && !strings.Contains(name, "=?"):
		return name
	}
	return quoteString(name)
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
