package sendmail

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestFieldValue(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"To: a@x\n", "a@x"},
		{"To:a@x", "a@x"},
		{"To:   a@x  \r\n", "a@x"},
		{"Cc: cc@example.com,\n\tDev Eloper <dev@example.com>\n", "cc@example.com,\tDev Eloper <dev@example.com>"},
		{"To: a@example.com, \n B <b@example.com>\n", "a@example.com,  B <b@example.com>"},
		{"To: a,\r\n b,\r\n\r\n c\r\n", "a, b,\r\n c"}, // a CRLF followed by CRLF is not a fold
		{"X: a\rb\n", "a\rb"},
		{"X:\n", ""},
		{"Subject : hi\n", "hi"},
		{"X: a: b\n", "a: b"},
		{"no colon", ""},
	}
	for _, tt := range tests {
		f := &Field{Raw: []byte(tt.raw)}
		if got := f.Value(); got != tt.want {
			t.Errorf("Value(%q) = %q; want %q", tt.raw, got, tt.want)
		}
	}
}

func testHeader() *Header {
	return &Header{Fields: []*Field{
		{Name: "To", Raw: []byte("To: a@x\n")},
		{Name: "bcc", Raw: []byte("bcc: b@x\r\n")},
		{Name: "Subject", Raw: []byte("Subject: s\n")},
		{Name: "BCC", Raw: []byte("BCC: c@x,\n d@x\n")},
		{Name: "to", Raw: []byte("to: e@x\n")},
	}, Separator: []byte("\r\n")}
}

func TestHeaderGetHasDel(t *testing.T) {
	h := testHeader()
	if got := h.Get("TO"); len(got) != 2 || got[0].Value() != "a@x" || got[1].Value() != "e@x" {
		t.Errorf("Get(TO) = %v", got)
	}
	if !h.Has("Bcc") || !h.Has("subject") || h.Has("Cc") || h.Has("To ") {
		t.Error("Has is wrong")
	}
	if n := h.Del("Bcc"); n != 2 {
		t.Errorf("Del(Bcc) = %d; want 2", n)
	}
	if n := h.Del("Bcc"); n != 0 {
		t.Errorf("second Del(Bcc) = %d; want 0", n)
	}
	if got := fieldNames(h); !reflect.DeepEqual(got, []string{"To", "Subject", "to"}) {
		t.Errorf("after Del: %q", got)
	}
	var b bytes.Buffer
	n, err := h.WriteTo(&b)
	if err != nil || b.String() != "To: a@x\nSubject: s\nto: e@x\n\r\n" || n != int64(b.Len()) || h.Len() != n {
		t.Errorf("WriteTo = %d, %v, %q; Len %d", n, err, b.String(), h.Len())
	}
}

func TestHeaderAdd(t *testing.T) {
	long := "Grüße aus einem sehr langen Betreff, der weit über achtundsiebzig Zeichen hinausgeht und gefaltet werden muss"
	tests := []struct {
		name, value, raw string
	}{
		{"Date", "Mon, 02 Jan 2006 15:04:05 -0700", "Date: Mon, 02 Jan 2006 15:04:05 -0700\n"},
		{"X-Evil", "a\r\nBcc: injected@x", "X-Evil: a  Bcc: injected@x\n"},
		{"X-Evil", "a\nb\rc", "X-Evil: a b c\n"},
		{"X-Long", strings.Repeat("x", 100), "X-Long: " + strings.Repeat("x", 100) + "\n"}, // no break point
		{"X-Long", "first " + strings.Repeat("x", 100), "X-Long: first\n " + strings.Repeat("x", 100) + "\n"},
		{"Subject", long, "Subject: Grüße aus einem sehr langen Betreff, der weit über achtundsiebzig\n Zeichen hinausgeht und gefaltet werden muss\n"},
	}
	for _, tt := range tests {
		h := &Header{}
		h.Add(tt.name, tt.value)
		if len(h.Fields) != 1 || h.Fields[0].Name != tt.name || string(h.Fields[0].Raw) != tt.raw {
			t.Errorf("Add(%q, %q) = %q; want %q", tt.name, tt.value, h.Fields[0].Raw, tt.raw)
			continue
		}
		// Unfolding gives the value back (CR/LF aside).
		want := strings.NewReplacer("\r", " ", "\n", " ").Replace(tt.value)
		if got := h.Fields[0].Value(); got != strings.TrimSpace(want) {
			t.Errorf("Add(%q, %q): Value %q", tt.name, tt.value, got)
		}
		for _, line := range strings.SplitAfter(string(h.Fields[0].Raw), "\n") {
			if len(line) > maxLine+1 && strings.ContainsAny(strings.TrimSpace(line[len(tt.name)+2:]), " \t") {
				t.Errorf("Add(%q, %q): line of %d octets could have been folded", tt.name, tt.value, len(line))
			}
		}
	}
}

func TestFoldKeepsContent(t *testing.T) {
	words := []string{"a", "bb", strings.Repeat("c", 70), "d", strings.Repeat("e", 90), "f f", "\tg"}
	for i := range words {
		line := "X-Test: " + strings.Join(words[i:], " ") + " " + strings.Join(words[:i], " ")
		out := fold(line, 7)
		if strings.ReplaceAll(out, "\n", "") != line {
			t.Fatalf("fold(%q) = %q changed the content", line, out)
		}
		for _, l := range strings.Split(out, "\n")[1:] {
			if l == "" || !isWSP(l[0]) {
				t.Fatalf("fold(%q) = %q: continuation line %q does not start with WSP", line, out, l)
			}
		}
	}
}

func TestHeaderWriteTo(t *testing.T) {
	tests := []struct {
		name string
		h    *Header
		want string
	}{
		{"empty", &Header{}, "\n"},
		{"separator kept", &Header{Fields: []*Field{{Name: "A", Raw: []byte("A: 1\r\n")}}, Separator: []byte("\r\n")}, "A: 1\r\n\r\n"},
		{"no separator", &Header{Fields: []*Field{{Name: "A", Raw: []byte("A: 1\r\n")}}}, "A: 1\r\n\n"},
		{"input ended in a field", &Header{Fields: []*Field{{Name: "A", Raw: []byte("A: 1")}}}, "A: 1\n\n"},
		{"ended in a field, then Add", func() *Header {
			h := &Header{Fields: []*Field{{Name: "A", Raw: []byte("A: 1")}}}
			h.Add("B", "2")
			return h
		}(), "A: 1\nB: 2\n\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		n, err := tt.h.WriteTo(&b)
		if err != nil || b.String() != tt.want || n != int64(len(tt.want)) || tt.h.Len() != n {
			t.Errorf("%s: WriteTo = %d, %v, %q; want %q (Len %d)", tt.name, n, err, b.String(), tt.want, tt.h.Len())
		}
	}
	// A failing writer: the error comes back with the count so far.
	w := &failWriter{}
	if n, err := testHeader().WriteTo(w); err == nil || n != 0 || w.n != 1 {
		t.Errorf("WriteTo(failing) = %d, %v after %d writes", n, err, w.n)
	}
	var sw shortWriter
	if _, err := testHeader().WriteTo(&sw); !errors.Is(err, errShort) {
		t.Errorf("WriteTo(short) error %v", err)
	}
}

var errShort = errors.New("short write")

// shortWriter accepts 10 octets, then fails.
type shortWriter struct{ n int }

func (w *shortWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > 10 {
		m := 10 - w.n
		w.n = 10
		return m, errShort
	}
	w.n += len(p)
	return len(p), nil
}

// FoldLongLines: every line within 998 octets, a continuation starts
// with white space, and unfolding gives back the value (plus the space
// inserted where a line had none to break at).
func TestFoldLongLines(t *testing.T) {
	words := strings.Repeat("word ", 300)                   // 1500 octets with spaces
	solid := strings.Repeat("x", 2500)                      // no space at all
	dkim := "DKIM-Signature: v=1;\r\n\tb=" + solid + "\r\n" // a long continuation line
	tests := []struct {
		name, raw string
		changed   bool
		inserted  int // spaces unfolding shows that were not there
	}{
		{"short", "Subject: hi\n", false, 0},
		{"exactly 998", "Subject: " + strings.Repeat("y", 998-9) + "\n", false, 0},
		{"999 with spaces", "Subject: " + strings.Repeat("y", 980) + " zzzzzzzzzz\n", true, 0},
		{"words", "Subject: " + words + "\n", true, 0},
		{"solid", "X-Data: " + solid + "\r\n", true, 2},
		{"continuation", dkim, true, 2},
		{"tabs", "X: " + strings.Repeat("a\t", 800) + "\n", true, 0},
		{"lone CR ends lines", "X: " + words + "\r Y", true, 0},
		{"no line end", "X: " + words, true, 0},
		{"colon beyond the limit", strings.Repeat("N", 1200) + ": v\n", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Header{Fields: []*Field{{Name: "X", Raw: []byte(tt.raw)}}}
			if n := h.FoldLongLines(); (n == 1) != tt.changed {
				t.Fatalf("changed %d fields, want changed=%v", n, tt.changed)
			}
			got := h.Fields[0].Raw
			if !tt.changed {
				if string(got) != tt.raw {
					t.Fatalf("unchanged field rewritten: %q", clipH(got))
				}
				return
			}
			for i, l := range regexp.MustCompile(`\r\n|\n|\r`).Split(string(got), -1) {
				if len(l) > 998 {
					t.Errorf("line %d has %d octets", i, len(l))
				}
				if i > 0 && l != "" && !isWSP(l[0]) {
					t.Errorf("line %d is not a continuation: %.20q", i, l)
				}
			}
			orig := string(unfold([]byte(tt.raw)))
			unf := string(unfold(got))
			if len(unf) != len(orig)+tt.inserted || strings.ReplaceAll(unf, " ", "") != strings.ReplaceAll(orig, " ", "") {
				t.Errorf("unfolded value differs beyond %d inserted spaces:\n%q\n%q", tt.inserted, clipH([]byte(unf)), clipH([]byte(orig)))
			}
		})
	}
}

func clipH(b []byte) string {
	if len(b) > 120 {
		return string(b[:60]) + "…" + string(b[len(b)-60:])
	}
	return string(b)
}
