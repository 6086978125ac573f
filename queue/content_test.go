package queue

import (
	"errors"
	"io"
	"os"
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

// TestDeliveredThenSync: Delivered takes the message out at once (a
// runner can no longer lock it, List no longer shows it); Sync makes that
// durable for a whole batch.
func TestDeliveredThenSync(t *testing.T) {
	q := openTest(t)
	a, b := enqueue(t, q, 1), enqueue(t, q, 2)
	for _, e := range []*Envelope{a, b} {
		it, err := q.Lock(e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := it.Delivered(); err != nil {
			t.Fatal(err)
		}
		it.Unlock()
		if _, err := q.Lock(e.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lock after Delivered: %v, want ErrNotFound", err)
		}
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if envs, _ := q.List(); len(envs) != 0 {
		t.Errorf("List shows %d messages after Delivered", len(envs))
	}
	for _, sub := range []string{dirEnv, dirBody} {
		if entries, _ := os.ReadDir(q.path(sub, "")); len(entries) != 0 {
			t.Errorf("%s/ still holds %d files", sub, len(entries))
		}
	}
}
