package queue

import (
	"errors"
	"os"
	"testing"
)

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
