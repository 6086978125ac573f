package relay

import (
	"strings"
	"testing"
)

// TestWireCounter: a header block and a body counted piece by piece, in
// pieces of every size, add up to WireSize of the two read whole, as long
// as the head ends at the start of a line; otherwise SizeAfter says so.
func TestWireCounter(t *testing.T) {
	long := strings.Repeat("z", 2500)
	tests := []struct {
		name, head, body string
		ok               bool
	}{
		{"LF", "From: a\nSubject: s\n\n", "line\n.dot\n", true},
		{"CRLF", "From: a\r\n\r\n", "line\r\n..two\r\n", true},
		{"lone CRs", "From: a\n\n", "a\rb\r\r.c\r", true},
		{"CR then LF across pieces", "From: a\n\n", "a\r\nb\r\n", true},
		{"no final line end", "From: a\n\n", "last line", true},
		{"long lines", "From: a\n\n", long + "\n." + long + "\r\n", true},
		{"body starts with a dot", "From: a\n\n", ".\n..\n", true},
		{"empty body", "From: a\n\n", "", true},
		{"big", "From: a\n\n", strings.Repeat(".x\n"+long+"\r\rq\r\n", 40), true},
		{"head ends in a lone CR", "From: a\n\r", "\nbody\n", false},
		{"head ends inside a line", "From: a", "body\n", false},
	}
	for _, tt := range tests {
		want, err := WireSize(strings.NewReader(tt.head + tt.body))
		if err != nil {
			t.Fatal(err)
		}
		for _, piece := range []int{1, 2, 3, 7, 1000, len(tt.body) + 1} {
			c := NewWireCounter()
			for p := tt.body; len(p) > 0; {
				n := min(piece, len(p))
				if w, err := c.Write([]byte(p[:n])); w != n || err != nil {
					t.Fatalf("%s: Write = %d, %v", tt.name, w, err)
				}
				p = p[n:]
			}
			got, ok := c.SizeAfter([]byte(tt.head))
			if ok != tt.ok {
				t.Fatalf("%s (pieces of %d): ok = %v, want %v", tt.name, piece, ok, tt.ok)
			}
			if ok && got != want {
				t.Errorf("%s (pieces of %d): SizeAfter = %d, WireSize %d", tt.name, piece, got, want)
			}
		}
	}
}
