package sendmail

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSpool(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		writes  []string
		spilled bool
	}{
		{"empty", 10, nil, false},
		{"fits in memory", 10, []string{"abc", "defghij"}, false},
		{"spills on the write that crosses the limit", 10, []string{"abcdef", "ghijk", "lmn"}, true},
		{"one big write", 4, []string{strings.Repeat("x", 100)}, true},
		{"writes past the buffer go straight to the file", 10, []string{"ab", strings.Repeat("y", spillBuffer+1), "c", strings.Repeat("z", 3*spillBuffer), "d"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSpool(tt.limit, nil)
			defer s.Close()
			var want bytes.Buffer
			for _, w := range tt.writes {
				if _, err := s.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
				want.WriteString(w)
			}
			if (s.Spilled() != nil) != tt.spilled {
				t.Errorf("spilled = %v, want %v", s.Spilled() != nil, tt.spilled)
			}
			if s.Size() != int64(want.Len()) {
				t.Errorf("Size = %d, want %d", s.Size(), want.Len())
			}
			got, err := io.ReadAll(io.NewSectionReader(s, 0, s.Size()))
			if err != nil || !bytes.Equal(got, want.Bytes()) {
				t.Errorf("content %q (%v), want %q", got, err, want.Bytes())
			}
			// Read twice from an offset: a fallback host re-reads it.
			if s.Size() > 3 {
				p := make([]byte, 2)
				n, _ := s.ReadAt(p, 2)
				if n != 2 || string(p) != want.String()[2:4] {
					t.Errorf("ReadAt(2) = %q", p[:n])
				}
			}
		})
	}
}

// fullFile is a spill file on a disk that fills up after room octets:
// the write that crosses the limit is short, as write(2) is.
type fullFile struct {
	data []byte
	room int
}

func (f *fullFile) Write(p []byte) (int, error) {
	n := min(len(p), f.room-len(f.data))
	f.data = append(f.data, p[:n]...)
	if n < len(p) {
		return n, errors.New("no space left on device")
	}
	return n, nil
}
func (f *fullFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(f.data).ReadAt(p, off)
}
func (f *fullFile) Close() error { return nil }

// TestSpoolRescue: a spill file that cannot be created, or fills up, is
// replaced by a temporary file holding everything: stdin is never lost.
func TestSpoolRescue(t *testing.T) {
	content := strings.Repeat("a line of the message body\n", 20000) // 540 kB
	for _, tt := range []struct {
		name  string
		spill func() (SpillFile, error)
	}{
		{"cannot create", func() (SpillFile, error) { return nil, errors.New("read-only file system") }},
		{"full at once", func() (SpillFile, error) { return &fullFile{room: 0}, nil }},
		{"full after 100 kB", func() (SpillFile, error) { return &fullFile{room: 100_000}, nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Line by line (the intake's header and dot handling), and
			// in pieces larger than the buffer (its copy of a -i body).
			for _, piece := range []int{0, 3 * spillBuffer / 2} {
				s := NewSpool(1000, tt.spill)
				defer s.Close()
				writes := strings.SplitAfter(content, "\n")
				if piece > 0 {
					writes = []string{content[:500]}
					for p := content[500:]; len(p) > 0; p = p[min(piece, len(p)):] {
						writes = append(writes, p[:min(piece, len(p))])
					}
				}
				for _, w := range writes {
					if _, err := s.Write([]byte(w)); err != nil {
						t.Fatal(err)
					}
				}
				got, err := io.ReadAll(io.NewSectionReader(s, 0, s.Size()))
				if err != nil || string(got) != content {
					t.Fatalf("pieces of %d: content differs (%d of %d bytes, %v)", piece, len(got), len(content), err)
				}
				if _, ok := s.Spilled().(*fullFile); ok {
					t.Errorf("pieces of %d: still on the full file", piece)
				}
			}
		})
	}
}

// TestSpoolMemoryFlat: once spilled, writing more does not allocate more
// (the bench saw a reallocated buffer per flush push 100 MiB to 58 MiB RSS).
func TestSpoolMemoryFlat(t *testing.T) {
	s := NewSpool(1024, nil)
	defer s.Close()
	line := []byte(strings.Repeat("x", 75) + "\n")
	s.Write(bytes.Repeat(line, 100)) // spilled
	allocs := testing.AllocsPerRun(5, func() {
		for range 10_000 { // 760 kB: several flushes
			s.Write(line)
		}
	})
	if allocs > 2 {
		t.Errorf("%.0f allocations per 760 kB written, want the buffer reused", allocs)
	}
}
