package relay

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// dotEncode runs in through a dotWriter for DATA, writing it in chunks of
// chunk octets (0: all at once) to exercise state kept across writes, into
// the smallest buffer the writer takes, to exercise its flushes.
func dotEncode(t testing.TB, in string, chunk int) (string, int64) {
	return encode(t, in, chunk, true)
}

// encode is dotEncode for DATA (stuff) or BDAT. It checks that emit sees
// its last buffer once, at the end, with room for the BDAT line in front.
func encode(t testing.TB, in string, chunk int, stuff bool) (string, int64) {
	var out bytes.Buffer
	lasts := 0
	dw := newDotWriter(make([]byte, 0, chunkHead+2*stepRoom), stuff, func(b []byte, last bool) error {
		if lasts > 0 {
			t.Fatalf("emit after the last chunk")
		}
		if last {
			lasts++
		}
		if len(b) < chunkHead {
			t.Fatalf("emit got %d octets, less than the head room", len(b))
		}
		out.Write(b[chunkHead:])
		return nil
	})
	p := []byte(in)
	for len(p) > 0 {
		n := len(p)
		if chunk > 0 && chunk < n {
			n = chunk
		}
		w, err := dw.Write(p[:n])
		if err != nil || w != n {
			t.Fatalf("Write = %d, %v", w, err)
		}
		p = p[n:]
	}
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	if lasts != 1 {
		t.Fatalf("emit saw the last chunk %d times", lasts)
	}
	return out.String(), dw.n
}

func TestDotWriter(t *testing.T) {
	long := strings.Repeat("a", 998)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ".\r\n"},
		{"LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
		{"CRLF", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"mixed", "H: v\r\n\r\nbody\nmore\r\n", "H: v\r\n\r\nbody\r\nmore\r\n.\r\n"},
		{"no final newline", "a\nlast", "a\r\nlast\r\n.\r\n"},
		{"leading dot", ".\n..x\n.y\n", "..\r\n...x\r\n..y\r\n.\r\n"},
		{"dot not at start", "a.\n a\n", "a.\r\n a\r\n.\r\n"},
		{"dot first line no newline", ".", "..\r\n.\r\n"},
		{"lone CR ends a line", "a\rb\n", "a\r\nb\r\n.\r\n"},
		{"lone CR then dot is stuffed", "a\r.b\n", "a\r\n..b\r\n.\r\n"},
		{"smuggling", "line\r.\rMAIL FROM:<x@y>\r", "line\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"},
		{"CR CR", "a\r\rb", "a\r\n\r\nb\r\n.\r\n"},
		{"CR CR LF", "a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"},
		{"trailing CR", "a\r", "a\r\n.\r\n"},
		{"LF CR", "a\n\rb", "a\r\n\r\nb\r\n.\r\n"},
		{"blank lines", "\n\n", "\r\n\r\n.\r\n"},
		{"exactly 998", long + "\n", long + "\r\n.\r\n"},
		{"999 broken", long + "b\n", long + "\r\nb\r\n.\r\n"},
		{"2000 broken twice", long + long + "cccc", long + "\r\n" + long + "\r\ncccc\r\n.\r\n"},
		{"break before dot", long + ".x\n", long + "\r\n..x\r\n.\r\n"},
		{"stuffed dot counts", "." + long[1:] + "z\n", ".." + long[2:] + "\r\naz\r\n.\r\n"},
		{"lone CR before the limit", long + "\rz", long + "\r\nz\r\n.\r\n"},
		{"8bit passes", "Grüße\n", "Grüße\r\n.\r\n"},
		{"NUL passes", "a\x00b", "a\x00b\r\n.\r\n"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 2, 7} {
			got, n := dotEncode(t, tt.in, chunk)
			if got != tt.want {
				t.Errorf("%s (chunk %d): got %q, want %q", tt.name, chunk, clip(got), clip(tt.want))
			}
			if n != int64(len(tt.want)-3) {
				t.Errorf("%s (chunk %d): counted %d octets, want %d", tt.name, chunk, n, len(tt.want)-3)
			}
			// BDAT carries the same message: no stuffing, no terminator,
			// the breaks where DATA has them, WireSize octets in all.
			bdat, n := encode(t, tt.in, chunk, false)
			if want := unstuff(t, tt.want); bdat != want {
				t.Errorf("%s (chunk %d) for BDAT: got %q, want %q", tt.name, chunk, clip(bdat), clip(want))
			}
			if size, _ := WireSize(strings.NewReader(tt.in)); n != int64(len(bdat)) || n != size {
				t.Errorf("%s (chunk %d) for BDAT: counted %d, wrote %d, WireSize %d", tt.name, chunk, n, len(bdat), size)
			}
		}
	}
}

// A message several buffers long: each full buffer goes to emit, output
// is the same whatever the buffer size, and BDAT's chunks add up to
// WireSize.
func TestDotWriterBuffers(t *testing.T) {
	in := strings.Repeat(".dot line\n"+strings.Repeat("z", 1500)+"\r\rcr\r\n", 400)
	want, _ := encode(t, in, 0, true)
	size, err := WireSize(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, stuff := range []bool{true, false} {
		for _, bufSize := range []int{chunkHead + 2*stepRoom, 4096, chunkHead + chunkSize} {
			var out bytes.Buffer
			emits := 0
			dw := newDotWriter(make([]byte, 0, bufSize), stuff, func(b []byte, last bool) error {
				emits++
				if len(b) > bufSize {
					t.Fatalf("buffer grew to %d octets, given %d", len(b), bufSize)
				}
				out.Write(b[chunkHead:])
				return nil
			})
			if _, err := dw.ReadFrom(strings.NewReader(in)); err != nil {
				t.Fatal(err)
			}
			if err := dw.Close(); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if !stuff {
				if int64(out.Len()) != size {
					t.Errorf("buffer %d: BDAT wrote %d octets, WireSize %d", bufSize, out.Len(), size)
				}
				if u := unstuff(t, want); got != u {
					t.Errorf("buffer %d: BDAT output differs from DATA's unstuffed", bufSize)
				}
				continue
			}
			if got != want {
				t.Errorf("buffer %d: output differs (%d octets, want %d)", bufSize, len(got), len(want))
			}
			if min := len(want) / bufSize; emits < min {
				t.Errorf("buffer %d: %d emits for %d octets", bufSize, emits, len(want))
			}
		}
	}
}

// normalise is the reference for what dotWriter sends, before stuffing:
// lines split at LF, CRLF or a lone CR, each at most 998 octets once stuffed,
// CRLF-terminated.
func normalise(in string) string {
	var out strings.Builder
	var line []byte
	flush := func() {
		for {
			limit := maxLineText
			if len(line) > 0 && line[0] == '.' {
				limit--
			}
			if len(line) <= limit {
				break
			}
			out.Write(line[:limit])
			out.WriteString("\r\n")
			line = line[limit:]
		}
		out.Write(line)
		out.WriteString("\r\n")
		line = line[:0]
	}
	for i := 0; i < len(in); i++ {
		switch {
		case in[i] == '\n':
			flush()
		case in[i] == '\r':
			flush()
			if i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
		default:
			line = append(line, in[i])
		}
	}
	if len(line) > 0 {
		flush()
	}
	return out.String()
}

// unstuff is what a server does with the DATA stream: strip the
// terminator and one leading dot per line.
func unstuff(t testing.TB, wire string) string {
	body, ok := strings.CutSuffix(wire, ".\r\n")
	if !ok {
		t.Fatalf("no terminator in %q", clip(wire))
	}
	if body != "" && !strings.HasSuffix(body, "\r\n") {
		t.Fatalf("terminator not on its own line: %q", clip(wire))
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(body, "\r\n") {
		out.WriteString(strings.TrimPrefix(l, "."))
	}
	return out.String()
}

func checkDotOutput(t testing.TB, in, wire string) {
	for i := 0; i < len(wire); i++ {
		if wire[i] == '\n' && (i == 0 || wire[i-1] != '\r') {
			t.Fatalf("bare LF at %d in %q", i, clip(wire))
		}
		if wire[i] == '\r' && (i+1 == len(wire) || wire[i+1] != '\n') {
			t.Fatalf("bare CR at %d in %q", i, clip(wire))
		}
	}
	for _, l := range strings.Split(wire, "\r\n") {
		if len(l)+2 > 1000 {
			t.Fatalf("line of %d octets", len(l)+2)
		}
	}
	// Lines that start with "." in the body must be stuffed: the only
	// line that is exactly "." is the terminator.
	body := strings.TrimSuffix(wire, ".\r\n")
	for _, l := range strings.Split(body, "\r\n") {
		if l == "." {
			t.Fatalf("unstuffed lone dot in %q", clip(wire))
		}
	}
	if got, want := unstuff(t, wire), normalise(in); got != want {
		t.Fatalf("unstuffed output %q, want %q", clip(got), clip(want))
	}
}

func TestDotWriterProperties(t *testing.T) {
	for _, in := range []string{
		"", "x", ".", "\r", "\r\r", "\n.\n", strings.Repeat(".", 3000), strings.Repeat("ab\r", 700),
		strings.Repeat("x", 997) + "\r\n", strings.Repeat("x", 997) + "\r" + "\n",
	} {
		got, _ := dotEncode(t, in, 3)
		checkDotOutput(t, in, got)
	}
}

func FuzzDotWriter(f *testing.F) {
	f.Add("Subject: x\r\n\r\n.\n..\nline\rcr\n", uint8(0))
	f.Add(strings.Repeat("y", 1500)+"\n."+strings.Repeat("z", 998), uint8(5))
	f.Add("\r\r\n\r", uint8(1))
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		got, n := dotEncode(t, in, int(chunk))
		if n != int64(len(got)-3) {
			t.Fatalf("counted %d, wrote %d", n, len(got)-3)
		}
		checkDotOutput(t, in, got)
		// BDAT: the same message unstuffed, WireSize octets long.
		bdat, _ := encode(t, in, int(chunk), false)
		if u := unstuff(t, got); bdat != u {
			t.Fatalf("BDAT output %q, want DATA's unstuffed %q", clip(bdat), clip(u))
		}
		if size, _ := WireSize(strings.NewReader(in)); size != int64(len(bdat)) {
			t.Fatalf("WireSize %d, BDAT sent %d", size, len(bdat))
		}
	})
}

// A message larger than any buffer goes through with constant memory:
// the writer's only buffer is the one it was given.
func TestDotWriterStreams(t *testing.T) {
	var sink countWriter
	dw := newDotWriter(make([]byte, 0, 4096), true, func(b []byte, _ bool) error {
		_, err := sink.Write(b[chunkHead:])
		return err
	})
	line := []byte(strings.Repeat("x", 70) + "\n")
	allocs := testing.AllocsPerRun(1, func() {
		for range 100000 {
			if _, err := dw.Write(line); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs > 100 {
		t.Errorf("%v allocations for 7 MB of body, want a constant few", allocs)
	}
	if sink.n < 7_000_000 {
		t.Errorf("wrote only %d octets", sink.n)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// WriteData (--dry-run) prints exactly what Send puts on the wire.
func TestWriteData(t *testing.T) {
	for _, in := range []string{"", "a\n.b\r\nc", strings.Repeat("z", 2100) + "\r"} {
		var out bytes.Buffer
		if err := WriteData(&out, strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		if want, _ := dotEncode(t, in, 0); out.String() != want {
			t.Errorf("WriteData(%q) = %q, want %q", clip(in), clip(out.String()), clip(want))
		}
	}
	if err := WriteData(io.Discard, &errReader{io.ErrClosedPipe}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("reader error lost: %v", err)
	}
}

// WireSize is what RFC 1870 declares: the octets on the wire without the
// stuffed dots and the terminator.
func TestWireSize(t *testing.T) {
	long := strings.Repeat("a", 998)
	tests := []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"a\r\n", 3},
		{"a\n", 3},
		{"a\rb\r", 6},
		{"no newline", 12},
		{".\n..\n", 3 + 4},
		{long + "b\n", 998 + 2 + 3},
		{"." + long, 998 + 2 + 1 + 2}, // the stuffed dot moves the break but is not counted
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 5} {
			var r io.Reader = strings.NewReader(tt.in)
			if chunk > 0 {
				r = &chunkReader{s: tt.in, n: chunk}
			}
			got, err := WireSize(r)
			if err != nil || got != tt.want {
				t.Errorf("WireSize(%q) in chunks of %d = %d, %v; want %d", clip(tt.in), chunk, got, err, tt.want)
			}
		}
		wire, _ := dotEncode(t, tt.in, 0)
		stuffed := int64(0)
		for _, l := range strings.SplitAfter(strings.TrimSuffix(wire, ".\r\n"), "\r\n") {
			if strings.HasPrefix(l, "..") {
				stuffed++
			}
		}
		if got := int64(len(wire)-3) - stuffed; got != tt.want {
			t.Errorf("%q: wire has %d octets without stuffing, want %d", clip(tt.in), got, tt.want)
		}
	}
	if _, err := WireSize(&errReader{io.ErrClosedPipe}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("reader error lost: %v", err)
	}
}

type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[n:]
	return n, nil
}

// benchBody is 8 MiB as a Unix caller writes a large attachment: base64
// lines of 76 octets ending in LF.
func benchBody() []byte {
	line := strings.Repeat("QUJD", 19) + "\n"
	return bytes.Repeat([]byte(line), 8<<20/len(line))
}

func BenchmarkWriteData(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := WriteData(io.Discard, bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWireSize(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := WireSize(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
