package sendmail

import (
	"errors"
	"strings"
)

// This file holds a small RFC 5322 §3.4 lexer and parser for address
// lists. net/mail cannot be used alone: it rejects the bare local names
// (`root`) that cron, atd and sudo write, it unquotes local parts (so
// `"a b"@x` would come back unusable for RCPT TO), and it does not say
// where in the raw text each address is, which qualifying bare names
// byte for byte needs. The parser is lenient where real mail is sloppy
// (';' between addresses, '@' in an unquoted display name, a group
// without its final ';', obsolete white space around dots and '@') and
// strict where a mistake would misroute mail (unbalanced quotes,
// comments or angle brackets, two words with no '@'). net/mail is the
// reference in the tests: where it accepts a list of plain addresses,
// this parser must find the same ones.

type tokKind uint8

const (
	tWord    tokKind = iota // atom or dot-atom text, or an RFC 2047 encoded word
	tQuoted                 // quoted string, quotes included
	tLiteral                // domain literal, brackets included
	tSpecial                // one of < > : ; @ ,
)

// token is one significant lexical item of an address list. White space
// and comments (CFWS) are not tokens; space records whether any came
// right before it.
type token struct {
	kind       tokKind
	start, end int // byte span in the input
	space      bool
}

// specials that end a word; '.' is part of words (dot-atom, obs-phrase).
const wordStop = " \t\r\n()<>[]:;@\\,\""

// lex splits s into tokens, skipping white space and comments (nested,
// with quoted-pairs).
func lex(s string) ([]token, error) {
	var toks []token
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			i++
			continue
		case c < 0x20 || c == 0x7f:
			return nil, errors.New("control character")
		case c == '(':
			end, err := skipComment(s, i)
			if err != nil {
				return nil, err
			}
			i = end
			space = true
			continue
		case c == ')':
			return nil, errors.New("unbalanced )")
		case c == '"':
			end, err := scanQuoted(s, i, '"')
			if err != nil {
				return nil, errors.New("unterminated quoted string")
			}
			toks = append(toks, token{kind: tQuoted, start: i, end: end, space: space})
			i = end
		case c == '[':
			end, err := scanQuoted(s, i, ']')
			if err != nil {
				return nil, errors.New("unterminated domain literal")
			}
			toks = append(toks, token{kind: tLiteral, start: i, end: end, space: space})
			i = end
		case c == ']':
			return nil, errors.New("unbalanced ]")
		case c == '\\':
			return nil, errors.New("backslash outside quotes")
		case strings.IndexByte("<>:;@,", c) >= 0:
			toks = append(toks, token{kind: tSpecial, start: i, end: i + 1, space: space})
			i++
		default:
			end := scanWord(s, i)
			toks = append(toks, token{kind: tWord, start: i, end: end, space: space})
			i = end
		}
		space = false
	}
	return toks, nil
}

// skipComment returns the offset after the comment that starts at s[i].
func skipComment(s string, i int) (int, error) {
	depth := 0
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case c < 0x20 && c != '\t' && c != '\r' && c != '\n', c == 0x7f:
			return 0, errors.New("control character")
		}
	}
	return 0, errors.New("unterminated comment")
}

// scanQuoted returns the offset after the quoted string or domain
// literal that starts at s[i] and ends with an unescaped close.
func scanQuoted(s string, i int, close byte) (int, error) {
	for i++; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == close:
			return i + 1, nil
		case c < 0x20 && c != '\t' && c != '\r' && c != '\n', c == 0x7f:
			return 0, errors.New("control character")
		}
	}
	return 0, errors.New("unterminated")
}

// scanWord returns the end of the word starting at s[i]. An RFC 2047
// encoded word is taken whole even when its text holds specials such as
// ',' that would otherwise split it (some mailers do not encode them).
func scanWord(s string, i int) int {
	for i < len(s) {
		if strings.HasPrefix(s[i:], "=?") {
			if n := encodedWordLen(s[i:]); n > 0 {
				i += n
				continue
			}
		}
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(wordStop, c) >= 0 {
			break
		}
		i++
	}
	return i
}

// encodedWordLen returns the length of the "=?charset?enc?text?=" at the
// start of s, or 0.
func encodedWordLen(s string) int {
	i := 2
	q := 0 // '?' seen after "=?"
	for ; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			return 0
		}
		if c != '?' {
			continue
		}
		q++
		if q == 3 {
			if i+1 < len(s) && s[i+1] == '=' && i > 4 {
				return i + 2
			}
			return 0
		}
	}
	return 0
}

// mailbox is one address found in an address list.
type mailbox struct {
	start, end int    // the addr-spec's span in the input (first to last token)
	localEnd   int    // end of its local part: where "@domain" goes when it has none
	hasDomain  bool   // it has an '@'
	empty      bool   // "<>"; start == end is then the offset of the '>'
	spec       string // the addr-spec without comments or white space
	group      bool   // it is a group member
	err        error  // why this element of the list could not be parsed
}

// parseList finds every address in an address list. An element of the
// list that cannot be parsed yields a mailbox with err set, so that
// QualifyAddressList can leave just that element alone; an error that
// prevents finding the elements at all (an unterminated quote or
// comment) is returned.
func parseList(s string) ([]mailbox, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	var out []mailbox
	inGroup := false
	for i := 0; i < len(toks); {
		// Collect one element: up to a ',' or ';' or a group's ':' that is
		// not inside angle brackets.
		j := i
		angle := false
		for ; j < len(toks); j++ {
			if toks[j].kind != tSpecial {
				continue
			}
			c := s[toks[j].start]
			if c == '<' {
				angle = true
			} else if c == '>' {
				angle = false
			} else if !angle && (c == ',' || c == ';' || c == ':') {
				break
			}
		}
		elem := toks[i:j]
		var term byte
		if j < len(toks) {
			term = s[toks[j].start]
		}
		if term == ':' {
			if inGroup {
				out = append(out, mailbox{err: errors.New("group inside a group"), start: toks[i].start, group: true})
			} else if err := checkPhrase(s, elem); err != nil {
				out = append(out, mailbox{err: err, start: toks[j].start})
			}
			inGroup = true
			i = j + 1
			continue
		}
		if len(elem) > 0 {
			m := parseMailbox(s, elem)
			m.group = inGroup
			out = append(out, m)
		}
		if term == ';' {
			inGroup = false
		}
		i = j + 1
	}
	return out, nil
}

// checkPhrase reports whether toks can be a group's display name.
func checkPhrase(s string, toks []token) error {
	if len(toks) == 0 {
		return errors.New("group without a name")
	}
	for _, t := range toks {
		if t.kind == tSpecial {
			return errors.New("unexpected " + quoteByte(s[t.start]) + " in a group name")
		}
	}
	return nil
}

// parseMailbox parses one element of an address list: a name-addr
// (phrase, if any, then <addr-spec>) or a bare addr-spec.
func parseMailbox(s string, toks []token) mailbox {
	lt := -1
	for k, t := range toks {
		if t.kind == tSpecial && s[t.start] == '<' {
			lt = k
			break
		}
		if t.kind == tSpecial && s[t.start] == '>' {
			return mailbox{start: t.start, err: errors.New("unbalanced <>")}
		}
	}
	if lt < 0 {
		return parseAddrSpec(s, toks)
	}
	gt := -1
	for k := lt + 1; k < len(toks); k++ {
		if toks[k].kind == tSpecial && s[toks[k].start] == '>' {
			gt = k
			break
		}
		if toks[k].kind == tSpecial && s[toks[k].start] == '<' {
			return mailbox{start: toks[k].start, err: errors.New("unbalanced <>")}
		}
	}
	if gt < 0 {
		return mailbox{start: toks[lt].start, err: errors.New("unbalanced <>")}
	}
	if gt != len(toks)-1 {
		if k := gt + 1; toks[k].kind == tSpecial && (s[toks[k].start] == '<' || s[toks[k].start] == '>') {
			return mailbox{start: toks[k].start, err: errors.New("unbalanced <>")}
		}
		return mailbox{start: toks[gt+1].start, err: errors.New("text after >")}
	}
	// The display name may hold words, quoted strings and, leniently, '@'
	// and domain literals (`user@example.com <user@example.com>`).
	inner := toks[lt+1 : gt]
	if len(inner) == 0 {
		return mailbox{start: toks[gt].start, end: toks[gt].start, localEnd: toks[gt].start, empty: true}
	}
	// Obsolete source route: <@a,@b:user@c>; the route is ignored.
	if inner[0].kind == tSpecial && s[inner[0].start] == '@' {
		k := 0
		for k < len(inner) && !(inner[k].kind == tSpecial && s[inner[k].start] == ':') {
			k++
		}
		if k == len(inner) {
			return mailbox{start: inner[0].start, err: errors.New("address starts with @")}
		}
		inner = inner[k+1:]
		if len(inner) == 0 {
			return mailbox{start: toks[gt].start, err: errors.New("empty address after source route")}
		}
	}
	return parseAddrSpec(s, inner)
}

// parseAddrSpec parses local-part ["@" domain]; the domain is optional so
// that bare local names (`root`) are found.
func parseAddrSpec(s string, toks []token) mailbox {
	m := mailbox{start: toks[0].start, end: toks[len(toks)-1].end}
	at := -1
	for k, t := range toks {
		if t.kind == tSpecial && s[t.start] == '@' {
			at = k
			break
		}
	}
	local, domain := toks, []token(nil)
	if at >= 0 {
		local, domain = toks[:at], toks[at+1:]
		m.hasDomain = true
	}
	if len(local) == 0 {
		m.err = errors.New("empty local part")
		return m
	}
	var lb strings.Builder
	if err := joinDotted(s, local, tQuoted, &lb); err != nil {
		m.err = err
		return m
	}
	var b strings.Builder
	b.WriteString(canonicalLocal(lb.String()))
	m.localEnd = local[len(local)-1].end
	if m.hasDomain {
		if len(domain) == 0 {
			m.err = errors.New("empty domain")
			return m
		}
		b.WriteByte('@')
		if err := joinDotted(s, domain, tLiteral, &b); err != nil {
			m.err = err
			return m
		}
	}
	m.spec = b.String()
	return m
}

// joinDotted writes the words of a local part or domain (word or alt
// tokens) to b without the white space and comments between them. Two
// words must be joined by a dot: `john . smith` is obsolete but valid,
// `john smith` is two words with no address.
func joinDotted(s string, toks []token, alt tokKind, b *strings.Builder) error {
	for k, t := range toks {
		if t.kind != tWord && t.kind != alt {
			if t.kind == tSpecial {
				return errors.New("unexpected " + quoteByte(s[t.start]))
			}
			return errors.New("unexpected " + s[t.start:t.end])
		}
		if k > 0 {
			prev := s[toks[k-1].start:toks[k-1].end]
			this := s[t.start:t.end]
			if !strings.HasSuffix(prev, ".") && !strings.HasPrefix(this, ".") {
				if t.space {
					return errors.New("two words without '@' or '<>' (a display name needs <address>)")
				}
				return errors.New("missing dot between " + prev + " and " + this)
			}
		}
		b.WriteString(s[t.start:t.end])
	}
	return nil
}

// canonicalLocal returns a local part in its simplest equivalent form
// (RFC 5322 §3.4.1: quoting is syntax, not content): unquoted when its
// content is a dot-atom (`"root"` is root), else one quoted string
// (`john."a b"` is "john.a b"). Case is kept.
func canonicalLocal(local string) string {
	if !strings.Contains(local, `"`) {
		return local
	}
	var content strings.Builder
	quoted := false
	for i := 0; i < len(local); i++ {
		switch c := local[i]; {
		case c == '"':
			quoted = !quoted
		case c == '\\' && quoted && i+1 < len(local):
			i++
			content.WriteByte(local[i])
		default:
			content.WriteByte(c)
		}
	}
	v := content.String()
	if isDotAtom(v) {
		return v
	}
	return quoteString(v)
}

// quoteString returns s as an RFC 5322 quoted-string, backslash-escaping
// the quote and the backslash.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isDotAtom reports whether s is RFC 5322 dot-atom text, with non-ASCII
// (RFC 6532) allowed.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && c < 0x80 && !isAtext(c) {
			return false
		}
	}
	return true
}

func quoteByte(c byte) string { return "'" + string(rune(c)) + "'" }

// shorten returns s cut to a length fit for an error message.
func shorten(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "..."
}

// QualifyAddressList returns raw (a header field body as read, folding
// and line endings included) with "@domain" inserted after every
// addr-spec that has no '@', and nothing else changed: white space,
// folding, comments and quoting are kept byte for byte. changed reports
// whether anything was inserted. An element of the list that cannot be
// parsed is left alone, and so is the whole list when it cannot even be
// split (an unterminated quoted string or comment).
//
//	root (Cron Daemon)           -> root@example.com (Cron Daemon)
//	"(Cron Daemon)" <root>       -> "(Cron Daemon)" <root@example.com>
//	list: root, b@x;             -> list: root@example.com, b@x;
//	undisclosed-recipients:;     -> unchanged
func QualifyAddressList(raw, domain string) (out string, changed bool) {
	if domain == "" {
		return raw, false
	}
	boxes, err := parseList(raw)
	if err != nil {
		return raw, false
	}
	var b strings.Builder
	last := 0
	for _, m := range boxes {
		if m.err != nil || m.empty || m.hasDomain {
			continue
		}
		b.WriteString(raw[last:m.localEnd])
		b.WriteByte('@')
		b.WriteString(domain)
		last = m.localEnd
		changed = true
	}
	if !changed {
		return raw, false
	}
	b.WriteString(raw[last:])
	return b.String(), true
}

// ParseAddressList returns the addr-specs of an address list (a header
// field body or a command-line operand) in order: group members
// included, group names and empty groups giving nothing, comments and
// obsolete white space dropped, the local part otherwise as written
// (case and quoting kept). A bare local name gets "@domain", or stays
// bare when domain is "" (so that aliases can be applied first). A list
// with an element that cannot be parsed, a CR, LF or NUL, or an empty
// address "<>" is an error wrapping ErrData that quotes the value.
func ParseAddressList(value, domain string) ([]string, error) {
	addrs, err := addressList(value, domain)
	if err != nil {
		return nil, dataErrorf("bad address list %q: %v", shorten(value), err)
	}
	return addrs, nil
}

// addressList is ParseAddressList with a bare reason as its error, for
// callers that add their own context.
func addressList(value, domain string) ([]string, error) {
	if i := strings.IndexAny(value, "\r\n\x00"); i >= 0 {
		return nil, errors.New("CR, LF or NUL in an address")
	}
	boxes, err := parseList(value)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range boxes {
		switch {
		case m.err != nil:
			return nil, m.err
		case m.empty:
			return nil, errors.New("empty address <>")
		}
		out = append(out, qualify(m, domain))
	}
	return out, nil
}

func qualify(m mailbox, domain string) string {
	if m.hasDomain || domain == "" {
		return m.spec
	}
	return m.spec + "@" + domain
}

// ParseSender parses a -f or -r value into the envelope sender: "" and
// "<>" give "" (the null sender), "Name <a@x>" and "<a@x>" give "a@x", and
// a bare name gets "@domain" (unless domain is ""). The value must hold
// exactly one address. Errors wrap ErrData; main decides the exit code.
func ParseSender(value, domain string) (string, error) {
	fail := func(reason string) (string, error) {
		return "", dataErrorf("bad sender address %q: %s", shorten(value), reason)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fail("CR, LF or NUL in an address")
	}
	v := strings.Trim(value, " \t")
	if v == "" || v == "<>" {
		return "", nil
	}
	boxes, err := parseList(v)
	if err != nil {
		return fail(err.Error())
	}
	switch {
	case len(boxes) == 0:
		return fail("no address")
	case len(boxes) > 1:
		return fail("more than one address")
	case boxes[0].err != nil:
		return fail(boxes[0].err.Error())
	case boxes[0].group:
		return fail("a group is not a sender")
	case boxes[0].empty:
		return "", nil
	}
	return qualify(boxes[0], domain), nil
}

// IsBareName reports whether addr (an addr-spec as ParseAddressList
// returns it) has no domain: no '@' outside a quoted local part. Such a
// name is looked up in the aliases, then qualified. The null sender ""
// is not a bare name.
func IsBareName(addr string) bool {
	if addr == "" {
		return false
	}
	quoted := false
	for i := 0; i < len(addr); i++ {
		switch addr[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case '@':
			if !quoted {
				return false
			}
		}
	}
	return true
}
