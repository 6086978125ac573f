package message

import (
	"io"
	"strings"
	"testing"
)

func TestContent(t *testing.T) {
	c := Content([]byte("Head: 1\n\n"), strings.NewReader("body\n"))
	all, err := io.ReadAll(io.NewSectionReader(c, 0, 14))
	if err != nil || string(all) != "Head: 1\n\nbody\n" {
		t.Fatalf("got %q, %v", all, err)
	}
	for off := int64(0); off < 14; off++ {
		for size := 1; size <= 15; size++ {
			p := make([]byte, size)
			n, _ := c.ReadAt(p, off)
			if want := string(all[off:min(off+int64(size), 14)]); string(p[:n]) != want {
				t.Errorf("ReadAt(%d bytes at %d) = %q, want %q", size, off, p[:n], want)
			}
		}
	}
	if _, err := c.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("a negative offset is accepted")
	}
}
