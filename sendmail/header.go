package sendmail

import (
	"bytes"
	"io"
	"strings"
)

// Field is one header field exactly as it was read, so that a field
// relaymail has no reason to touch leaves byte for byte as it arrived
// (SPEC §3): folding, spacing and line endings included.
type Field struct {
	Name string // as written (case kept), without any white space before the colon
	Raw  []byte // the whole field: name, colon, value, folded continuation lines, original line endings
}

// Value returns the field body unfolded (every line break that is
// followed by white space is removed, RFC 5322 §2.2.3) with the white
// space around it trimmed. Encoded words are not decoded: callers parse
// addresses from this, not display text.
func (f *Field) Value() string {
	i := bytes.IndexByte(f.Raw, ':')
	if i < 0 {
		return ""
	}
	return strings.Trim(string(unfold(f.Raw[i+1:])), " \t\r\n")
}

// rawValue is everything after the colon, line endings included.
func (f *Field) rawValue() []byte {
	i := bytes.IndexByte(f.Raw, ':')
	if i < 0 {
		return nil
	}
	return f.Raw[i+1:]
}

// setRawValue replaces everything after the colon.
func (f *Field) setRawValue(v []byte) {
	i := bytes.IndexByte(f.Raw, ':')
	raw := make([]byte, 0, i+1+len(v))
	raw = append(raw, f.Raw[:i+1]...)
	f.Raw = append(raw, v...)
}

// unfold removes CRLF, LF and a lone CR (all line ends, SPEC §3) where
// the next octet is SP or HTAB.
func unfold(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\r' && i+2 < len(b) && b[i+1] == '\n' && isWSP(b[i+2]):
			i++ // drop CR and LF
		case (b[i] == '\n' || b[i] == '\r') && i+1 < len(b) && isWSP(b[i+1]):
			// drop LF or lone CR
		default:
			out = append(out, b[i])
		}
	}
	return out
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// Header is a message's header block as raw fields in their original
// order. net/mail cannot serve here: it keeps neither the order nor the
// bytes, so it could not drop Bcc: while leaving every other field as it
// was.
type Header struct {
	Fields []*Field
	// Separator is the empty line that ended the block as read ("\n" or
	// "\r\n"), or nil when the block ended at the end of input or at a
	// line that was not a header field; WriteTo then supplies "\n".
	Separator []byte
}

// Get returns the fields called name (compared without regard to case)
// in header order; a field may legitimately appear more than once (two
// To: lines from Perl's Mail::Mailer).
func (h *Header) Get(name string) []*Field {
	var out []*Field
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f)
		}
	}
	return out
}

// Has reports whether a field called name is present, so that Rewrite
// adds Date:, Message-ID: and From: only when they are missing.
func (h *Header) Has(name string) bool {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Del removes every field called name and returns how many it removed;
// Bcc: must never reach the wire (SPEC §3).
func (h *Header) Del(name string) int {
	kept := h.Fields[:0]
	n := 0
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			n++
			continue
		}
		kept = append(kept, f)
	}
	for i := len(kept); i < len(h.Fields); i++ {
		h.Fields[i] = nil
	}
	h.Fields = kept
	return n
}

// maxLine is the line length RFC 5322 §2.1.1 asks writers to stay under
// (78 characters, excluding the line ending).
const maxLine = 78

// Add appends the field "name: value" with a LF line ending (the relay's
// wire writer turns it into CRLF). It is how Rewrite adds the fields a
// message lacks. name must be a valid field name. A CR or LF in value
// would start a new header field, so each is replaced by a space. A
// value too long for one line is folded at its spaces where it can be.
func (h *Header) Add(name, value string) {
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, value)
	h.Fields = append(h.Fields, &Field{Name: name, Raw: []byte(fold(name+": "+value, len(name)+1) + "\n")})
}

// fold breaks line before a space or tab (at positions after min, so
// never between the colon and the value) so that each piece stays under
// maxLine when a break point allows it. Removing the inserted LFs gives
// line back, so unfolding restores the value exactly.
func fold(line string, min int) string {
	if len(line) <= maxLine {
		return line
	}
	var b strings.Builder
	start := 0      // start of the current output line
	lastBreak := -1 // last WSP position in the current line usable as a break point
	for i := 0; i < len(line); i++ {
		if isWSP(line[i]) && i > min && i > start && !isWSP(line[i-1]) {
			if i-start > maxLine && lastBreak > start {
				b.WriteString(line[start:lastBreak])
				b.WriteByte('\n')
				start = lastBreak
			}
			lastBreak = i
		}
	}
	if len(line)-start > maxLine && lastBreak > start {
		b.WriteString(line[start:lastBreak])
		b.WriteByte('\n')
		start = lastBreak
	}
	b.WriteString(line[start:])
	return b.String()
}

// WriteTo writes the header block: every field as it is held, then the
// separator (or "\n" when there was none, so the body never runs into
// the header). A field that does not end in LF (the input ended inside
// the header block) gets a LF so the next field or the separator starts
// a line of its own.
func (h *Header) WriteTo(w io.Writer) (int64, error) {
	var n int64
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += int64(m)
		return err
	}
	for _, f := range h.Fields {
		if err := write(f.Raw); err != nil {
			return n, err
		}
		if needsLF(f.Raw) {
			if err := write(lf); err != nil {
				return n, err
			}
		}
	}
	sep := h.Separator
	if sep == nil {
		sep = lf
	}
	err := write(sep)
	return n, err
}

var lf = []byte{'\n'}

func needsLF(raw []byte) bool { return len(raw) == 0 || raw[len(raw)-1] != '\n' }

// Len returns the number of octets WriteTo will write, for SIZE= and the
// log.
func (h *Header) Len() int64 {
	var n int64
	for _, f := range h.Fields {
		n += int64(len(f.Raw))
		if needsLF(f.Raw) {
			n++
		}
	}
	if h.Separator == nil {
		return n + 1
	}
	return n + int64(len(h.Separator))
}

// maxWireLine is the longest line SMTP carries, in octets without the
// CRLF (RFC 5321 §4.5.3.1.6, RFC 5322 §2.1.1).
const maxWireLine = 998

// FoldLongLines folds every header line longer than 998 octets (a line
// that starts with "." counts the dot the wire adds) and returns how
// many fields it changed. The wire writer would otherwise break such a
// line with a bare line end, and the rest would arrive as a line without
// a colon: a damaged header block and a cut field. A line is broken at
// the last space or tab that keeps the piece within the limit, so that
// the new line starts with it and unfolding gives back the value exactly;
// where there is none, at the limit, starting the continuation with a
// space (the only change unfolding then shows). The name and colon are
// never split, and a line whose colon lies beyond the limit is left to
// the wire writer.
func (h *Header) FoldLongLines() int {
	n := 0
	for _, f := range h.Fields {
		if len(f.Raw) <= maxWireLine {
			continue // the whole field fits on one line
		}
		if raw, changed := foldLong(f.Raw); changed {
			f.Raw = raw
			n++
		}
	}
	return n
}

// foldLong applies FoldLongLines' rule to one field's raw bytes.
func foldLong(raw []byte) ([]byte, bool) {
	colon := bytes.IndexByte(raw, ':')
	var out []byte
	changed := false
	for start := 0; start < len(raw); {
		end, next := lineBounds(raw, start)
		line := raw[start:end]
		min := 0 // a break must come after this offset in line
		if start == 0 {
			min = colon + 1
		}
		for {
			limit := maxWireLine
			if len(line) > 0 && line[0] == '.' {
				limit--
			}
			if len(line) <= limit || min >= limit {
				break
			}
			cut, pad := breakPoint(line, min, limit), false
			if cut < 0 {
				cut, pad = limit, true
			}
			if !changed {
				out, changed = append(out, raw[:start]...), true
			}
			out = append(out, line[:cut]...)
			out = append(out, '\n')
			line, min = line[cut:], 0
			if pad {
				// The continuation starts with the inserted space.
				line = append([]byte{' '}, line...)
			}
		}
		if changed {
			out = append(out, line...)
			out = append(out, raw[end:next]...)
		}
		start = next
	}
	if !changed {
		return raw, false
	}
	return out, true
}

// lineBounds returns where the line that starts at start ends (before
// its line end: LF, CRLF or a lone CR) and where the next one starts.
func lineBounds(raw []byte, start int) (end, next int) {
	for i := start; i < len(raw); i++ {
		switch raw[i] {
		case '\n':
			return i, i + 1
		case '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				return i, i + 2
			}
			return i, i + 1
		}
	}
	return len(raw), len(raw)
}

// breakPoint returns the offset of the last space or tab in line[min+1 :
// limit+1] that has something other than white space before it on the
// line (so no piece is white space alone), or -1.
func breakPoint(line []byte, min, limit int) int {
	first := 0 // the first octet that is not white space
	for first < len(line) && isWSP(line[first]) {
		first++
	}
	for i := limit; i > min && i > first; i-- {
		if isWSP(line[i]) {
			return i
		}
	}
	return -1
}
