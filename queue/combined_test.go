package queue

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// content is the message a runner would send for id: header then body.
func content(t *testing.T, q *Queue, id string) []byte {
	t.Helper()
	it, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Unlock()
	r, size := it.Content()
	data, err := io.ReadAll(io.NewSectionReader(r, 0, size))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCombinedCommitSteps: a message held in memory is committed with
// two fsyncs (the file, then env/), in one file named both body/ID and
// env/ID; a larger one takes the plain, four-fsync path.
func TestCombinedCommitSteps(t *testing.T) {
	tests := []struct {
		name string
		size int
		want []string
	}{
		{"in memory", 2048, []string{"body-sync", "body-link", "env-link", "env-dirsync"}},
		{"largest combined", maxCombinedBody, []string{"body-sync", "body-link", "env-link", "env-dirsync"}},
		{"too large", maxCombinedBody + 1, []string{"body-sync", "body-link", "body-dirsync", "env-create", "env-write", "env-rename"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openTest(t)
			var steps []string
			q.hook = func(s string) error { steps = append(steps, s); return nil }
			body := bytes.Repeat([]byte("x"), tt.size)
			env := testEnvelope([]byte("Subject: steps\n\n"))
			if err := q.Enqueue(env, bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(steps, tt.want) {
				t.Errorf("steps = %v, want %v", steps, tt.want)
			}
			bst, err1 := os.Stat(q.path(dirBody, env.ID))
			est, err2 := os.Stat(q.path(dirEnv, env.ID))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if combined := tt.size <= maxCombinedBody; os.SameFile(bst, est) != combined {
				t.Errorf("body/ID and env/ID one file: %v, want %v", os.SameFile(bst, est), combined)
			}
			if got := content(t, q, env.ID); !bytes.Equal(got, append([]byte("Subject: steps\n\n"), body...)) {
				t.Errorf("content is %d bytes, want the header and the %d-byte body", len(got), tt.size)
			}
			assertEmpty(t, q, dirTmp)
		})
	}
}

// TestCombinedCommitFailures: a combined commit that fails at any step
// queues nothing and leaves nothing behind.
func TestCombinedCommitFailures(t *testing.T) {
	for _, step := range []string{"body-sync", "body-link", "env-link", "env-dirsync"} {
		t.Run(step, func(t *testing.T) {
			q := openTest(t)
			q.hook = func(s string) error {
				if s == step {
					return errors.New("injected at " + s)
				}
				return nil
			}
			env := testEnvelope([]byte("Subject: x\n\n"))
			if err := q.Enqueue(env, strings.NewReader("body\n")); err == nil || !strings.Contains(err.Error(), step) {
				t.Fatalf("Enqueue = %v, want the failure at %s", err, step)
			}
			if env.ID != "" {
				t.Errorf("failed Enqueue left the id %q", env.ID)
			}
			assertEmpty(t, q, dirTmp, dirEnv, dirBody)
		})
	}
}

// TestCombinedBodyLinkLost: commitCombined does not fsync body/, so a
// power loss may forget body/ID while env/ID, the same file, survives.
// The message is then still listed and sent whole: Lock links it again.
func TestCombinedBodyLinkLost(t *testing.T) {
	q := openTest(t)
	env := enqueue(t, q, 300)
	want := content(t, q, env.ID)
	if err := os.Remove(q.path(dirBody, env.ID)); err != nil {
		t.Fatal(err)
	}
	list, err := q.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v; want the message", ids(list), err)
	}
	if moved, err := q.FailBodiless(); len(moved) != 0 || err != nil {
		t.Errorf("FailBodiless = %v, %v; want nothing moved", ids(moved), err)
	}
	if got := content(t, q, env.ID); !bytes.Equal(got, want) {
		t.Errorf("content after the relink differs")
	}
	checkWhole(t, q, list[0])
}

// TestCombinedUpdateFailRequeue: once a runner updates a combined
// message, env/ID is a plain envelope and body/ID keeps the combined
// file, read from its offset; so through Fail and Requeue.
func TestCombinedUpdateFailRequeue(t *testing.T) {
	q := openTest(t)
	env := enqueue(t, q, 500)
	want := content(t, q, env.ID)

	it, err := q.Lock(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	it.Env.Attempts++
	it.Env.LastError = "451 try later"
	if err := it.Update(); err != nil {
		t.Fatal(err)
	}
	it.Unlock()
	bst, _ := os.Stat(q.path(dirBody, env.ID))
	est, _ := os.Stat(q.path(dirEnv, env.ID))
	if os.SameFile(bst, est) {
		t.Error("env/ID is still the combined file after Update")
	}
	if got := content(t, q, env.ID); !bytes.Equal(got, want) {
		t.Errorf("content after Update = %q, want %q", got, want)
	}

	it, err = q.Lock(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := it.Fail(); err != nil {
		t.Fatal(err)
	}
	it.Unlock()
	if err := q.Requeue(env.ID); err != nil {
		t.Fatal(err)
	}
	if got := content(t, q, env.ID); !bytes.Equal(got, want) {
		t.Errorf("content after Fail and Requeue = %q, want %q", got, want)
	}
}

// TestUpgradePlainLayout: a message queued by the version before
// combined files (testdata/v1spool, written by relaymail -odq of that
// version: a plain env/ID and its body/ID) is listed, locked and sent
// whole, and removed, by this one.
func TestUpgradePlainLayout(t *testing.T) {
	q := openTest(t)
	const id = "0SH00XFJRJ8MFDWM8DT0"
	for _, sub := range []string{dirEnv, dirBody} {
		data, err := os.ReadFile(filepath.Join("testdata", "v1spool", sub, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(q.path(sub, id), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list, err := q.List()
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].BodyOffset != 0 {
		t.Fatalf("List = %v, %v; want %s", ids(list), err, id)
	}
	got := string(content(t, q, id))
	if !strings.HasPrefix(got, "From: a@example.com\nSubject: queued before the upgrade\n") ||
		!strings.HasSuffix(got, "\n\nhello from the old layout\n.dot line\n") {
		t.Errorf("content = %q", got)
	}
	it, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := it.Remove(); err != nil {
		t.Fatal(err)
	}
	it.Unlock()
	assertEmpty(t, q, dirEnv, dirBody)
}

// TestLockReadsNoBody: Lock, run for every delivery, reads the envelope
// line and the header of a combined file, not the body after them: it
// allocates a fraction of a 256 KiB body (all of it, and more, when it
// read the file whole).
func TestLockReadsNoBody(t *testing.T) {
	q := openTest(t)
	env := testEnvelope([]byte("Subject: large body\n\n"))
	if err := q.Enqueue(env, bytes.NewReader(bytes.Repeat([]byte("x"), maxCombinedBody))); err != nil {
		t.Fatal(err)
	}
	if !env.combined {
		t.Fatal("not written as a combined file")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	it, err := q.Lock(env.ID)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Unlock()
	if string(it.Env.Header) != "Subject: large body\n\n" {
		t.Errorf("header = %q", it.Env.Header)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > maxCombinedBody/4 {
		t.Errorf("Lock allocated %d octets for a %d-octet body: it reads the body", got, maxCombinedBody)
	}
}
