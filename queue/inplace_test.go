package queue

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpdateFullDisk: when the new envelope cannot be written (the queue's
// disk is full: the write of a new file fails), Update records the retry
// in place: the recipients still to go, the attempt count and the next
// attempt are exact, the last error is shortened to fit, and the message
// stays whole.
func TestUpdateFullDisk(t *testing.T) {
	next := time.Date(2030, 1, 2, 3, 4, 5, 678, time.UTC)
	tests := []struct {
		name      string
		remaining []string
		delivered []string
		lastErr   string
		wantErr   bool // the in-place write cannot hold it either
	}{
		{"one recipient delivered, one deferred", []string{"c@example.com"}, []string{"b@example.com"}, "451 4.2.0 try later", false},
		{"whole message deferred", []string{"b@example.com", "c@example.com"}, nil, "connect: connection refused", false},
		{"long last error", []string{"c@example.com"}, []string{"b@example.com"}, strings.Repeat("x", 5000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openTest(t)
			env := enqueue(t, q, 100)
			// A previous attempt left a last error, as a runner does.
			it, err := q.Lock(env.ID)
			if err != nil {
				t.Fatal(err)
			}
			it.Env.Attempts, it.Env.LastError = 1, "421 4.3.2 busy, please try again in a while"
			if err := it.Update(); err != nil {
				t.Fatal(err)
			}
			q.hook = func(step string) error {
				if step == "env-create" || step == "env-write" {
					return syscall.ENOSPC
				}
				return nil
			}
			it.Env.To = tt.remaining
			it.Env.Delivered = tt.delivered
			it.Env.Attempts = 2
			it.Env.LastError = tt.lastErr
			it.Env.NextAttempt = next
			err = it.Update()
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "in place") {
				t.Errorf("Update = %v, want the ENOSPC and that it was written in place", err)
			}
			it.Unlock()

			q.hook = nil
			it, err = q.Lock(env.ID)
			if err != nil {
				t.Fatalf("Lock after the in-place update: %v", err)
			}
			defer it.Unlock()
			got := it.Env
			if !slices.Equal(got.To, tt.remaining) || got.Attempts != 2 || !got.NextAttempt.Equal(next.Truncate(time.Second)) {
				t.Errorf("recorded recipients %v, attempts %d, next %v", got.To, got.Attempts, got.NextAttempt)
			}
			if got.LastError == "" || !strings.HasPrefix(tt.lastErr, strings.TrimSuffix(got.LastError, "...")) {
				t.Errorf("last error %q, want (a prefix of) %q", got.LastError, tt.lastErr)
			}
			checkWhole(t, q, got)
		})
	}
}

// TestUpdateInPlaceFails: when even the in-place write fails, Update
// reports both errors and the old envelope is intact.
func TestUpdateInPlaceFails(t *testing.T) {
	q := openTest(t)
	env := enqueue(t, q, 10)
	it, err := q.Lock(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Unlock()
	q.hook = func(step string) error { return syscall.ENOSPC }
	it.Env.To = []string{"c@example.com"}
	it.Env.Attempts = 1
	if err := it.Update(); err == nil || !strings.Contains(err.Error(), "in place: ") {
		t.Errorf("Update = %v, want both failures", err)
	}
	q.hook = nil
	list, _ := q.List()
	if len(list) != 1 || len(list[0].To) != 2 || list[0].Attempts != 0 {
		t.Errorf("the old envelope changed: %+v", list)
	}
}
