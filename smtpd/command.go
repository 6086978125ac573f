package smtpd

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxPath is the longest reverse-path or forward-path, angle brackets
// included (RFC 5321 §4.5.3.1.3).
const maxPath = 256

// command is one command line split into its verb and argument.
type command struct {
	verb string // upper case ("MAIL")
	arg  string // everything after the verb and its separating spaces, trailing spaces removed
}

// parseCommand splits a command line (line end already removed). A NUL, CR
// or LF in the line is refused: none can appear in a valid command, and a
// bare CR is how some smuggling attempts disguise a line end.
func parseCommand(line []byte) (command, *Reply) {
	if bytes.ContainsAny(line, "\x00\r\n") {
		return command{}, replyBadBytes
	}
	s := string(line)
	verb, arg, _ := strings.Cut(s, " ")
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return command{}, replyUnknown
		}
	}
	if verb == "" || len(verb) > 16 {
		return command{}, replyUnknown
	}
	return command{verb: strings.ToUpper(verb), arg: strings.Trim(arg, " ")}, nil
}

// param is one ESMTP parameter of MAIL or RCPT (RFC 5321 §4.1.2
// esmtp-param): KEYWORD or KEYWORD=value.
type param struct {
	key      string // upper case
	value    string
	hasValue bool
}

// pathArg is the parsed argument of MAIL or RCPT.
type pathArg struct {
	addr   string  // the mailbox without angle brackets or source route; "" for "<>"
	params []param // in order, keys unique
}

// parsePathArg parses "FROM:<path> params" (keyword "FROM") or
// "TO:<path> params" (keyword "TO"). isSender selects the enhanced code for
// a bad address (5.1.7 for the sender, 5.1.3 for a recipient) and allows
// the null path. utf8OK is whether the transaction declared SMTPUTF8 (for
// MAIL: whether the SMTPUTF8 parameter is present, checked here).
func parsePathArg(arg, keyword string, isSender, utf8OK bool) (pathArg, *Reply) {
	var pa pathArg
	usage := syntaxReply("Syntax: MAIL FROM:<address> [parameters]")
	badAddr := &Reply{501, "5.1.7", "Bad sender address syntax"}
	if !isSender {
		usage = syntaxReply("Syntax: RCPT TO:<address>")
		badAddr = &Reply{501, "5.1.3", "Bad recipient address syntax"}
	}
	if len(arg) < len(keyword)+1 || !strings.EqualFold(arg[:len(keyword)], keyword) || arg[len(keyword)] != ':' {
		return pa, usage
	}
	rest := strings.TrimLeft(arg[len(keyword)+1:], " ")
	if rest == "" {
		return pa, usage
	}
	var path string
	if rest[0] == '<' {
		end := closingBracket(rest)
		if end < 0 {
			return pa, badAddr
		}
		path, rest = rest[1:end], rest[end+1:]
		if len(path)+2 > maxPath {
			return pa, &Reply{501, badAddr.Enhanced, "Path too long"}
		}
		if rest != "" && rest[0] != ' ' {
			return pa, usage
		}
	} else {
		// A path without angle brackets, as some HELO-era clients send.
		path, rest, _ = strings.Cut(rest, " ")
		if strings.ContainsAny(path, "<>") {
			return pa, badAddr
		}
		if len(path)+2 > maxPath {
			return pa, &Reply{501, badAddr.Enhanced, "Path too long"}
		}
	}
	params, r := parseParams(rest)
	if r != nil {
		return pa, r
	}
	pa.params = params
	if isSender {
		for _, p := range params {
			if p.key == "SMTPUTF8" {
				utf8OK = true
			}
		}
	}
	path = stripSourceRoute(path)
	if path == "" {
		if !isSender {
			return pa, badAddr
		}
		return pa, nil
	}
	if !utf8.ValidString(path) {
		return pa, badAddr
	}
	if !validMailbox(path) {
		return pa, badAddr
	}
	if !utf8OK && !isASCII(path) {
		return pa, replyNeedUTF8
	}
	pa.addr = path
	return pa, nil
}

// closingBracket returns the index of the '>' that closes the path which
// starts with '<' at s[0], skipping quoted strings (a quoted local part may
// hold '>'), or -1.
func closingBracket(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i >= len(s) {
				return -1
			}
		case '>':
			return i
		case '<':
			return -1
		}
	}
	return -1
}

// stripSourceRoute removes an RFC 5321 §4.1.2 source route ("@a,@b:")
// from the front of a path; servers must accept and ignore it (appendix C).
func stripSourceRoute(path string) string {
	if !strings.HasPrefix(path, "@") {
		return path
	}
	inLiteral := false
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '[':
			inLiteral = true
		case ']':
			inLiteral = false
		case ':':
			if !inLiteral {
				return path[i+1:]
			}
		}
	}
	return path // no colon: leave it for validMailbox to refuse
}

// validMailbox checks the shape of a mailbox (RFC 5321 §4.1.2, widened to
// UTF-8 by RFC 6531): a dot-string or quoted-string local part, then
// optionally "@" and a domain or address literal. It is deliberately
// lenient about dots in the local part (real addresses have "a..b") and
// about the domain's labels; it refuses what could confuse later parsing:
// spaces and controls outside quotes, brackets, commas, an empty part.
func validMailbox(s string) bool {
	var local, domain string
	hasAt := false
	if strings.HasPrefix(s, `"`) {
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return false
		}
		local, domain = s[:end+1], s[end+1:]
		for i := 1; i < end; i++ {
			if c := s[i]; c < ' ' || c == 0x7f {
				return false
			}
		}
		if domain != "" {
			if domain[0] != '@' {
				return false
			}
			domain, hasAt = domain[1:], true
		}
	} else {
		i := strings.LastIndexByte(s, '@')
		if i >= 0 {
			local, domain, hasAt = s[:i], s[i+1:], true
		} else {
			local = s
		}
		if local == "" {
			return false
		}
		for j := 0; j < len(local); j++ {
			c := local[j]
			if c >= 0x80 {
				continue
			}
			if !isAtext(c) && c != '.' {
				return false
			}
		}
	}
	if !hasAt {
		return true
	}
	if domain == "" {
		return false
	}
	if domain[0] == '[' {
		if domain[len(domain)-1] != ']' || len(domain) < 3 {
			return false
		}
		inner := domain[1 : len(domain)-1]
		for j := 0; j < len(inner); j++ {
			c := inner[j]
			if c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '\\' {
				return false
			}
		}
		return true
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" {
			return false
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if c >= 0x80 || c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
				continue
			}
			return false
		}
	}
	return true
}

// isAtext reports whether c is an RFC 5322 atext character (ASCII).
func isAtext(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parseParams parses the space-separated esmtp-params after a path.
func parseParams(s string) ([]param, *Reply) {
	var ps []param
	for _, f := range strings.Split(s, " ") {
		if f == "" {
			continue
		}
		k, v, hasValue := strings.Cut(f, "=")
		if !validKeyword(k) {
			return nil, syntaxReply("Bad parameter syntax")
		}
		if hasValue && !validParamValue(v) {
			return nil, syntaxReply("Bad parameter value")
		}
		p := param{key: strings.ToUpper(k), value: v, hasValue: hasValue}
		for _, q := range ps {
			if q.key == p.key {
				return nil, syntaxReply("Duplicate parameter " + p.key)
			}
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// validKeyword: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
func validKeyword(k string) bool {
	if k == "" || k[0] == '-' || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validParamValue: esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 as
// RFC 6531 allows.
func validParamValue(v string) bool {
	if v == "" || !utf8.ValidString(v) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 33 || c == '=' || c == 0x7f {
			return false
		}
	}
	return true
}

// mailParams is what the MAIL parameters we implement say.
type mailParams struct {
	size     int64 // SIZE=, 0 when absent
	body8Bit bool  // BODY=8BITMIME
	smtputf8 bool  // SMTPUTF8
}

// parseMailParams interprets MAIL's parameters: SIZE (RFC 1870), BODY
// (RFC 6152), SMTPUTF8 (RFC 6531). Anything else is 555 (RFC 5321
// §4.1.1.11). maxSize < 0 means no limit.
func parseMailParams(ps []param, maxSize int64) (mailParams, *Reply) {
	var mp mailParams
	for _, p := range ps {
		switch p.key {
		case "SIZE":
			if !p.hasValue || len(p.value) > 20 {
				return mp, syntaxReply("Bad SIZE parameter")
			}
			for i := 0; i < len(p.value); i++ {
				if c := p.value[i]; c < '0' || c > '9' {
					return mp, syntaxReply("Bad SIZE parameter")
				}
			}
			n, err := strconv.ParseInt(p.value, 10, 64)
			if err != nil { // only range errors are left: bigger than any limit
				return mp, replyTooBig
			}
			if maxSize >= 0 && n > maxSize {
				return mp, replyTooBig
			}
			mp.size = n
		case "BODY":
			switch strings.ToUpper(p.value) {
			case "7BIT":
				mp.body8Bit = false
			case "8BITMIME":
				mp.body8Bit = true
			default:
				return mp, syntaxReply("BODY must be 7BIT or 8BITMIME")
			}
		case "SMTPUTF8":
			if p.hasValue {
				return mp, syntaxReply("SMTPUTF8 takes no value")
			}
			mp.smtputf8 = true
		default:
			return mp, &Reply{555, "5.5.4", "Parameter " + p.key + " not supported"}
		}
	}
	return mp, nil
}
