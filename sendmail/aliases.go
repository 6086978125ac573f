package sendmail

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// Limits that keep a broken or hostile aliases file from costing more
// than a warning.
const (
	aliasMaxLine     = 64 << 10 // a logical line (with its continuations), in bytes
	aliasMaxWarnings = 100      // then one "more warnings" line
	aliasMaxDepth    = 20       // lookups along one chain of Expand
)

// ParseAliases reads a sendmail-format aliases file (/etc/aliases):
//
//	# comment
//	name: target, target,
//	    target            (a line starting with white space continues)
//
// Names are case-insensitive and returned lower-cased. A target may be an
// address (a@x, Name <a@x>), a bare local name (looked up again by
// Expand), \name (final, not looked up again) or a quoted string. Lines
// whose first non-blank character is '#' and blank lines are skipped
// without ending an entry, as in Postfix. Targets a relay cannot deliver
// to (|command, /file/path, :include:/path) are skipped with a warning, and
// a name left with no target is not an alias.
//
// Problems that make a line or a target unusable (no colon, a bad name, a
// duplicate name, where the first entry is kept as postalias does) are
// returned as warnings prefixed with name:line, never as errors, so one
// bad line never stops mail. Only an I/O error is an error; the entries
// read before it are still returned.
func ParseAliases(r io.Reader, name string) (map[string][]string, []string, error) {
	p := aliasParser{
		file:    name,
		table:   make(map[string][]string),
		firstAt: make(map[string]int),
	}
	br := bufio.NewReader(r)
	var (
		entry     strings.Builder
		entryLine int  // line where the current entry started; 0 = none
		entryLong bool // the current entry went over aliasMaxLine
	)
	flush := func() {
		switch {
		case entryLine == 0:
		case entryLong:
			p.warnf(entryLine, "entry longer than %d bytes, skipped", aliasMaxLine)
		default:
			p.entry(entry.String(), entryLine)
		}
		entry.Reset()
		entryLine, entryLong = 0, false
	}
	lineNo := 0
	for {
		line, long, err := aliasReadLine(br)
		if err != nil && err != io.EOF {
			flush()
			return p.table, p.finish(), fmt.Errorf("aliases: %s: line %d: %w", name, lineNo+1, err)
		}
		if line == "" && err == io.EOF {
			break
		}
		lineNo++
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "", strings.HasPrefix(trimmed, "#"):
			// blank or comment: skipped, the entry goes on
		case line[0] == ' ' || line[0] == '\t':
			if entryLine == 0 {
				p.warnf(lineNo, "continuation line without an entry before it, skipped")
				break
			}
			if long || entry.Len()+1+len(trimmed) > aliasMaxLine {
				entryLong = true
				break
			}
			entry.WriteByte(' ')
			entry.WriteString(trimmed)
		default:
			flush()
			entryLine, entryLong = lineNo, long
			entry.WriteString(trimmed)
		}
		if err == io.EOF {
			break
		}
	}
	flush()
	return p.table, p.finish(), nil
}

// aliasReadLine reads one physical line without its line ending. Of a
// line longer than aliasMaxLine only the start is kept, with long set; the
// rest is read and discarded. err is io.EOF with the last line when it
// has no newline, and with "" at the end of the input.
func aliasReadLine(br *bufio.Reader) (line string, long bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if room := aliasMaxLine + 2 - len(buf); len(chunk) > room {
			buf, long = append(buf, chunk[:max(room, 0)]...), true
		} else {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
		return line, long, err
	}
}

// aliasParser collects the entries and warnings of one ParseAliases call.
type aliasParser struct {
	file     string
	table    map[string][]string
	firstAt  map[string]int // line of each name's first entry
	warnings []string
	dropped  int // warnings beyond aliasMaxWarnings
}

func (p *aliasParser) warnf(line int, format string, args ...any) {
	if len(p.warnings) >= aliasMaxWarnings {
		p.dropped++
		return
	}
	p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: ", p.file, line)+fmt.Sprintf(format, args...))
}

func (p *aliasParser) finish() []string {
	if p.dropped > 0 {
		p.warnings = append(p.warnings, fmt.Sprintf("%s: %d more warnings not shown", p.file, p.dropped))
		p.dropped = 0
	}
	return p.warnings
}

// entry parses one logical line, "name: target, target".
func (p *aliasParser) entry(text string, line int) {
	name, value, ok := aliasCutName(text)
	if !ok {
		p.warnf(line, "no colon after the alias name, skipped")
		return
	}
	switch {
	case name == "":
		p.warnf(line, "empty alias name, skipped")
		return
	case strings.ContainsAny(name, " \t@") || aliasHasControl(name):
		p.warnf(line, "alias name %q is not a local name, skipped", name)
		return
	}
	name = strings.ToLower(name)
	if first, dup := p.firstAt[name]; dup {
		p.warnf(line, "duplicate alias %q, the one at line %d is kept", name, first)
		return
	}

	var targets []string
	pieces := aliasSplitTargets(value)
	for _, raw := range pieces {
		t, problem := aliasTarget(raw)
		switch {
		case problem != "":
			p.warnf(line, "%s: %s, skipped", name, problem)
		case t != "":
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		if strings.TrimSpace(value) == "" {
			p.warnf(line, "%s: no targets, skipped", name)
		}
		return
	}
	p.firstAt[name] = line
	p.table[name] = targets
}

// aliasCutName splits "name: rest" at the first colon; a name may be
// quoted ("a b": x), as Postfix allows.
func aliasCutName(text string) (name, rest string, ok bool) {
	if strings.HasPrefix(text, `"`) {
		end := aliasQuoteEnd(text)
		if end < 0 {
			return "", "", false
		}
		after := strings.TrimLeft(text[end+1:], " \t")
		if !strings.HasPrefix(after, ":") {
			return "", "", false
		}
		return aliasUnquote(text[:end+1]), after[1:], true
	}
	name, rest, ok = strings.Cut(text, ":")
	return strings.TrimSpace(name), rest, ok
}

// aliasQuoteEnd returns the index of the quote that closes the quoted
// string s starts with, honouring backslash escapes, or -1.
func aliasQuoteEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// aliasUnquote removes the quotes around s and its backslash escapes.
func aliasUnquote(s string) string {
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// aliasSplitTargets splits a target list at the commas that are not
// inside quotes, angle brackets or a parenthesised comment.
func aliasSplitTargets(s string) []string {
	var out []string
	start, quoted, angle, paren := 0, false, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case c == ',' && angle == 0 && paren == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// aliasTarget turns one raw target into what Expand works with: an
// address, a bare name or \name. An empty target (a trailing comma) gives
// "" with no problem; an unusable one gives a problem to warn about.
func aliasTarget(raw string) (target, problem string) {
	t := strings.TrimSpace(raw)
	if t == "" {
		return "", ""
	}
	if len(t) >= 2 && t[0] == '"' && aliasQuoteEnd(t) == len(t)-1 {
		t = strings.TrimSpace(aliasUnquote(t))
	}
	switch {
	case t == "":
		return "", ""
	case aliasHasControl(t):
		return "", fmt.Sprintf("target %q contains a control character", t)
	case strings.HasPrefix(t, "|"):
		return "", fmt.Sprintf("program target %q is not supported by a relay", t)
	case strings.HasPrefix(t, "/"):
		return "", fmt.Sprintf("file target %q is not supported by a relay", t)
	case len(t) >= 9 && strings.EqualFold(t[:9], ":include:"):
		return "", fmt.Sprintf("include target %q is not supported by a relay", t)
	}
	if strings.HasPrefix(t, `\`) {
		rest := t[1:]
		if rest == "" || strings.ContainsAny(rest, " \t\"<>(),@\\") {
			return "", fmt.Sprintf("target %q is not a local name", t)
		}
		return t, ""
	}
	if !strings.ContainsAny(t, " \t\"<>()") {
		return t, ""
	}
	// Name <a@x>, a@x (comment), "john doe"@x: let net/mail read it.
	addr, err := mail.ParseAddress(t)
	if err != nil {
		return "", fmt.Sprintf("target %q is not an address", t)
	}
	// net/mail unquotes the local part; String quotes it again if needed.
	bare := (&mail.Address{Address: addr.Address}).String()
	return strings.TrimSuffix(strings.TrimPrefix(bare, "<"), ">"), ""
}

func aliasHasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// Aliases maps bare local names to their targets: the config's [aliases]
// over the aliases file. It is read-only once built, so one value may be
// shared by concurrent sessions (-bd). The nil *Aliases has no aliases.
type Aliases struct {
	table map[string]aliasEntry // lower-case name → entry; "*" is the catch-all
}

type aliasEntry struct {
	targets []string
	source  string // "config" or "file", for Trace
}

// aliasCatchAll is the name under which the catch-all is stored.
const aliasCatchAll = "*"

// NewAliases merges the two tables by name (case-insensitive): the config
// table wins over the file table for the same name, so that the
// administrator's relaymail config overrides whatever /etc/aliases says;
// an empty list in the config removes the file's entry. The key "*" is the
// catch-all for any other bare name. Empty targets are dropped; the maps
// are not kept.
func NewAliases(config, file map[string][]string) *Aliases {
	a := &Aliases{table: make(map[string]aliasEntry, len(config)+len(file))}
	add := func(m map[string][]string, source string) {
		for name, targets := range m {
			key := strings.ToLower(strings.TrimSpace(name))
			if key == "" {
				continue
			}
			var clean []string
			for _, t := range targets {
				if t = strings.TrimSpace(t); t != "" {
					clean = append(clean, t)
				}
			}
			if len(clean) == 0 {
				delete(a.table, key)
				continue
			}
			a.table[key] = aliasEntry{targets: clean, source: source}
		}
	}
	add(file, "file")
	add(config, "config")
	return a
}

// Expand resolves a bare local name through the aliases, recursively, and
// returns what to deliver to, de-duplicated (without regard to case, first
// spelling kept) in order of first appearance. Bare names in the result
// are returned bare: the caller qualifies them with the domain.
//
// The rules, chosen so that every table has a finite answer:
//   - A target with '@' is final. So is \name, returned without the
//     backslash (sendmail's "do not alias this further").
//   - A target without '@' is looked up again. A name not in the table is
//     final.
//   - A name that appears in its own expansion is final there
//     (root: root, admin@x gives root, admin@x), and a loop stops at the
//     repeated name, which is final (a: b, b: a gives a).
//   - At most aliasMaxDepth (20) lookups along one chain; the name reached
//     there is final.
//   - The catch-all "*" applies only to a name not otherwise in the table,
//     and not again to anything inside its own result (so *: nobody,
//     with nobody not an alias, gives nobody rather than looping).
//   - Each name is expanded once per call (a second mention adds nothing
//     new), unless it is reached again nearer the top, where the depth
//     limit leaves it more room.
//
// A name with '@' is returned as it is; an empty name gives nil.
func (a *Aliases) Expand(name string) []string {
	out, _ := a.run(name, false)
	return out
}

// Trace explains Expand(name) for -bv, one human-readable step a line,
// indented by depth: "postmaster -> root (file)", "  root -> admin@example.com
// (config)", "bob -> catchall@example.com (catch-all *)", "ops: no alias",
// "a: loop, final".
func (a *Aliases) Trace(name string) []string {
	_, trace := a.run(name, true)
	return trace
}

// aliasRun is the state of one Expand or Trace call.
type aliasRun struct {
	a        *Aliases
	tracing  bool
	trace    []string
	out      []string
	seen     map[string]bool      // lower-cased results
	path     []string             // lower-case names being expanded, outermost first
	expanded map[aliasMemoKey]int // depth at which a name was expanded
}

type aliasMemoKey struct {
	name     string
	catchAll bool
}

func (a *Aliases) run(name string, tracing bool) ([]string, []string) {
	if strings.TrimSpace(name) == "" {
		return nil, nil
	}
	r := &aliasRun{
		a:        a,
		tracing:  tracing,
		seen:     make(map[string]bool),
		expanded: make(map[aliasMemoKey]int),
	}
	if strings.Contains(name, "@") {
		r.emit(name)
		r.note(0, "%s: an address, final", name)
		return r.out, r.trace
	}
	r.expand(name, 0, true)
	return r.out, r.trace
}

func (r *aliasRun) emit(target string) {
	key := strings.ToLower(target)
	if !r.seen[key] {
		r.seen[key] = true
		r.out = append(r.out, target)
	}
}

func (r *aliasRun) note(depth int, format string, args ...any) {
	if r.tracing {
		r.trace = append(r.trace, strings.Repeat("  ", depth)+fmt.Sprintf(format, args...))
	}
}

// expand resolves one bare name found at the given depth; catchAll says
// whether the catch-all may still apply on this branch.
func (r *aliasRun) expand(name string, depth int, catchAll bool) {
	if strings.HasPrefix(name, `\`) {
		r.emit(name[1:])
		r.note(depth, "%s: final (backslash)", name)
		return
	}
	key := strings.ToLower(name)
	for i, on := range r.path {
		if on != key {
			continue
		}
		r.emit(name)
		if i == len(r.path)-1 {
			r.note(depth, "%s: in its own expansion, final", name)
		} else {
			r.note(depth, "%s: loop, final", name)
		}
		return
	}
	if depth >= aliasMaxDepth {
		r.emit(name)
		r.note(depth, "%s: depth limit %d reached, final", name, aliasMaxDepth)
		return
	}

	var entry aliasEntry
	found, how := false, ""
	if r.a != nil && key != aliasCatchAll {
		entry, found = r.a.table[key]
		how = entry.source
	}
	if !found && catchAll && r.a != nil {
		entry, found = r.a.table[aliasCatchAll]
		how, catchAll = "catch-all *", false
	}
	if !found {
		r.emit(name)
		r.note(depth, "%s: no alias", name)
		return
	}
	memo := aliasMemoKey{key, catchAll}
	if d, done := r.expanded[memo]; done && d <= depth {
		r.note(depth, "%s: expanded above", name)
		return
	}
	r.expanded[memo] = depth

	r.note(depth, "%s -> %s (%s)", name, strings.Join(entry.targets, ", "), how)
	r.path = append(r.path, key)
	for _, t := range entry.targets {
		if strings.Contains(t, "@") {
			r.emit(t)
			continue
		}
		r.expand(t, depth+1, catchAll)
	}
	r.path = r.path[:len(r.path)-1]
}
