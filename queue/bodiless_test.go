package queue

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestBodiless: an envelope whose body is gone is not listed as a
// message, the runner's FailBodiless moves it to failed/ once with the
// reason, and Delete removes one still queued.
func TestBodiless(t *testing.T) {
	q := openTest(t)
	good := enqueue(t, q, 10)
	lost := testEnvelope([]byte("Subject: plain\n\n"))
	commitPlain(t, q, lost, []byte("a body in its own file\n"))
	os.Remove(q.path(dirBody, lost.ID))

	list, err := q.List()
	if got := ids(list); len(got) != 1 || got[0] != good.ID {
		t.Errorf("List = %v, want only the whole message %s", got, good.ID)
	}
	if !errors.Is(err, ErrNoBody) || !strings.Contains(err.Error(), lost.ID) {
		t.Errorf("List error = %v, want ErrNoBody naming %s", err, lost.ID)
	}

	moved, err := q.FailBodiless()
	if err != nil || len(moved) != 1 || moved[0].ID != lost.ID {
		t.Fatalf("FailBodiless = %v, %v; want %s moved", ids(moved), err, lost.ID)
	}
	if !strings.Contains(moved[0].LastError, "body") || len(moved[0].To) == 0 {
		t.Errorf("moved envelope: last error %q, recipients %v", moved[0].LastError, moved[0].To)
	}
	failed, err := q.ListFailed()
	if err != nil || len(failed) != 1 || !strings.Contains(failed[0].LastError, "missing") {
		t.Errorf("ListFailed = %v (%v), want the message with the reason", failed, err)
	}
	if moved, err := q.FailBodiless(); len(moved) != 0 || err != nil {
		t.Errorf("second FailBodiless = %v, %v; want nothing", ids(moved), err)
	}
	if list, err := q.List(); err != nil || len(list) != 1 {
		t.Errorf("List after the move = %v, %v", ids(list), err)
	}

	again := enqueue(t, q, 30)
	os.Remove(q.path(dirBody, again.ID))
	if err := q.Delete(again.ID); err != nil {
		t.Fatalf("Delete of a message without a body: %v", err)
	}
	if exists(q.path(dirEnv, again.ID)) {
		t.Error("the envelope is still queued")
	}
	if err := q.Delete(lost.ID); err != nil {
		t.Errorf("Delete of the failed one: %v", err)
	}
	if err := q.Delete(good.ID); err != nil {
		t.Errorf("Delete of the whole one: %v", err)
	}
}
