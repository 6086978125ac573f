package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// referenceData is the non-streaming definition of the DATA phase: the
// message ends at the first <CRLF>.<CRLF> (the DATA line's own CRLF counts
// as the first), and a "." that starts a CRLF-delimited line is removed.
// ok is false when the input has no end.
func referenceData(in string) (msg string, ok bool) {
	s := "\r\n" + in
	end := strings.Index(s, "\r\n.\r\n")
	if end < 0 {
		return "", false
	}
	body := s[2 : end+2]
	var b strings.Builder
	for _, line := range strings.SplitAfter(body, "\r\n") {
		b.WriteString(strings.TrimPrefix(line, "."))
	}
	return b.String(), true
}

// readData runs dataReader over in with the given buffer size and read
// pattern, returning the message, the error and what is left after it.
func readData(in string, bufSize int, oneByte bool, max int64) (string, error, string) {
	var r io.Reader = strings.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	br := bufio.NewReaderSize(r, bufSize)
	dr := newDataReader(br, max)
	var out bytes.Buffer
	_, err := io.Copy(&out, dr)
	rest, _ := io.ReadAll(br)
	return out.String(), err, string(rest)
}

func TestDataReader(t *testing.T) {
	tests := []struct {
		name, in, want, rest string
		wantErr              error
	}{
		{"empty", ".\r\n", "", "", nil},
		{"simple", "a\r\nb\r\n.\r\nNEXT\r\n", "a\r\nb\r\n", "NEXT\r\n", nil},
		{"stuffed", "..\r\n...x\r\n.a\r\n.\r\n", ".\r\n..x\r\na\r\n", "", nil},
		{"LF dot LF", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", "", nil},
		{"LF dot CRLF", "a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", "", nil},
		{"CR dot CR", "a\r.\rb\r\n.\r\n", "a\r.\rb\r\n", "", nil},
		{"CRLF dot LF", "a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", "", nil},
		{"dot space", "a\r\n. \r\n.\r\n", "a\r\n \r\n", "", nil},
		{"no end", "a\r\nb\r\n", "", "", io.ErrUnexpectedEOF},
		{"dot at EOF", "a\r\n.", "", "", io.ErrUnexpectedEOF},
		{"dot CR at EOF", "a\r\n.\r", "", "", io.ErrUnexpectedEOF},
		{"too big", "0123456789\r\n.\r\n", "", "", ErrMessageTooBig},
	}
	for _, tc := range tests {
		for _, bufSize := range []int{16, 4096} {
			for _, oneByte := range []bool{false, true} {
				max := int64(-1)
				if tc.wantErr == ErrMessageTooBig {
					max = 5
				}
				got, err, rest := readData(tc.in, bufSize, oneByte, max)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Errorf("%s (buf %d, oneByte %v): err = %v, want %v", tc.name, bufSize, oneByte, err, tc.wantErr)
					}
					continue
				}
				if err != nil || got != tc.want || rest != tc.rest {
					t.Errorf("%s (buf %d, oneByte %v): got %q, %v, rest %q; want %q, rest %q", tc.name, bufSize, oneByte, got, err, rest, tc.want, tc.rest)
				}
			}
		}
	}
}

// A long line with CR and LF split over buffer boundaries.
func TestDataReaderLongLines(t *testing.T) {
	for _, n := range []int{14, 15, 16, 17, 31, 32, 33, 100000} {
		line := strings.Repeat("x", n)
		in := line + "\r\n." + line + "\r\n" + line + "\n.\r\n.\r\n"
		want, _ := referenceData(in)
		got, err, _ := readData(in, 16, false, -1)
		if err != nil || got != want {
			t.Errorf("n=%d: got %d octets, %v; want %d", n, len(got), err, len(want))
		}
	}
}

func TestDataReaderDrain(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("0123456789\r\n..\r\n.\r\nQUIT\r\n"), 16)
	dr := newDataReader(br, 4)
	if _, err := io.ReadAll(dr); !errors.Is(err, ErrMessageTooBig) {
		t.Fatalf("err = %v", err)
	}
	if err := dr.drain(); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "QUIT\r\n" {
		t.Fatalf("rest = %q", rest)
	}
	dr.closed = true
	if _, err := dr.Read(make([]byte, 1)); !errors.Is(err, errDataAborted) {
		t.Fatalf("read after close: %v", err)
	}
}

// FuzzDataReader checks the streaming reader against referenceData for any
// input, buffer size and read pattern.
func FuzzDataReader(f *testing.F) {
	f.Add("a\r\n.\r\n", uint8(0), false)
	f.Add("..\r\n.\n\r\n.\r\n", uint8(3), true)
	f.Add("a\n.\nb\r\n.\r\nREST", uint8(1), false)
	f.Add("\r\r\n\r\n.\r\n", uint8(0), true)
	f.Fuzz(func(t *testing.T, in string, size uint8, oneByte bool) {
		bufSize := 16 + int(size)
		want, ok := referenceData(in)
		got, err, rest := readData(in, bufSize, oneByte, -1)
		if !ok {
			if err == nil || err == io.EOF {
				t.Fatalf("input without an end: got %q, err %v", got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
		if end := strings.Index("\r\n"+in, "\r\n.\r\n"); rest != in[end+3:] {
			t.Fatalf("rest %q, want %q", rest, in[end+3:])
		}
	})
}
