package queue

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"relaymail/message"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	old := syscall.Umask(0o077) // a caller's strict umask must not matter
	defer syscall.Umask(old)

	group := ""
	gid := -1
	for _, name := range []string{"daemon", "bin", "sys", "adm", "nogroup", "users"} {
		if g, err := user.LookupGroup(name); err == nil {
			group = name
			gid, _ = strconv.Atoi(g.Gid)
			break
		}
	}
	tests := []struct {
		name     string
		group    string
		dirMode  os.FileMode
		fileMode os.FileMode
	}{
		{"no such group", "relaymail-test-no-such-group", 0o700 | os.ModeDir, 0o600},
		{"group exists", group, 0o770 | os.ModeDir | os.ModeSetgid, 0o660},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.group == "" {
				t.Skip("no usable group in /etc/group")
			}
			dir := filepath.Join(t.TempDir(), "spool", "relaymail")
			q, err := open(dir, tt.group)
			if err != nil {
				t.Fatal(err)
			}
			if q.Dir() != dir {
				t.Errorf("Dir() = %q, want %q", q.Dir(), dir)
			}
			for _, sub := range []string{"", dirTmp, dirEnv, dirBody, dirFailed, dirFailedEnv, dirFailedBody} {
				st, err := os.Stat(filepath.Join(dir, sub))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode() != tt.dirMode {
					t.Errorf("%s: mode %v, want %v", sub, st.Mode(), tt.dirMode)
				}
				if tt.dirMode&os.ModeSetgid != 0 && os.Geteuid() == 0 {
					if g := int(st.Sys().(*syscall.Stat_t).Gid); g != gid {
						t.Errorf("%s: group %d, want %d", sub, g, gid)
					}
				}
			}
			env := enqueue(t, q, 100)
			for _, p := range []string{q.path(dirEnv, env.ID), q.path(dirBody, env.ID)} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode() != tt.fileMode {
					t.Errorf("%s: mode %v, want %v", p, st.Mode(), tt.fileMode)
				}
				if tt.dirMode&os.ModeSetgid != 0 && os.Geteuid() == 0 {
					if g := int(st.Sys().(*syscall.Stat_t).Gid); g != gid {
						t.Errorf("%s: group %d, want %d (inherited)", p, g, gid)
					}
				}
			}
			// Opening again leaves everything as it is.
			if _, err := open(dir, tt.group); err != nil {
				t.Fatal(err)
			}
			if l, err := q.List(); err != nil || len(l) != 1 {
				t.Errorf("List after reopen = %d, %v", len(l), err)
			}
		})
	}

	t.Run("existing dir keeps its mode", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		q, err := open(dir, "relaymail-test-no-such-group")
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o750 {
			t.Errorf("mode changed to %v", st.Mode())
		}
		if q.fileMode != 0o660 {
			t.Errorf("file mode %v in a group-readable queue, want 0660", q.fileMode)
		}
	})
	t.Run("errors", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o600)
		for _, dir := range []string{"", file, filepath.Join(file, "sub")} {
			if _, err := Open(dir); err == nil {
				t.Errorf("Open(%q) succeeded", dir)
			} else if !strings.HasPrefix(err.Error(), "queue: ") {
				t.Errorf("Open(%q): error %q lacks the package prefix", dir, err)
			}
		}
	})
}

func TestIDs(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0123456789ABCDEFGHJK", true},
		{"abc-DEF_9", true},
		{"x", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"..", false},
		{"../env/X", false},
		{"a/b", false},
		{"a.b", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
	seen := map[string]bool{}
	base := time.Date(2025, 11, 29, 18, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 2000 {
		id := message.NewID(base.Add(time.Duration(i) * time.Microsecond))
		if !ValidID(id) || len(id) != 20 {
			t.Fatalf("NewID = %q: not a valid 20-character id", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("NewID not sorted by time: %q after %q", id, prev)
		}
		prev = id
	}
	a, b := message.NewID(base), message.NewID(base)
	if a == b {
		t.Errorf("two ids at the same instant are equal: %q", a)
	}
}

// TestBody covers a Body before it is committed: written, read back from
// any offset, closed without a trace.
func TestBody(t *testing.T) {
	q := openTest(t)
	b, err := q.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("line one\nline two\n")
	for _, p := range [][]byte{data[:5], data[5:], nil} {
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.Size() != int64(len(data)) {
		t.Errorf("Size = %d, want %d", b.Size(), len(data))
	}
	for _, off := range []int64{0, 3, int64(len(data)) - 1, int64(len(data)), 100} {
		got, err := io.ReadAll(io.NewSectionReader(b, off, 1000))
		want := []byte{}
		if off < int64(len(data)) {
			want = data[off:]
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadAt from %d = %q, %v; want %q", off, got, err, want)
		}
	}
	p := make([]byte, 4)
	if n, err := b.ReadAt(p, int64(len(data))-2); n != 2 || err != io.EOF {
		t.Errorf("short ReadAt = %d, %v; want 2, EOF", n, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.Write(data); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := b.ReadAt(p, 0); err == nil {
		t.Error("ReadAt after Close succeeded")
	}
	assertEmpty(t, q, dirTmp, dirBody, dirEnv)
}

// assertEmpty fails unless each of the subdirectories is empty.
func assertEmpty(t *testing.T, q *Queue, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		entries, err := os.ReadDir(q.path(sub, ""))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s/ holds %v, want nothing", sub, names)
		}
	}
}

func TestCommitLockUpdateRemove(t *testing.T) {
	q := openTest(t)
	header := []byte("From: a@example.com\r\nSubject: hi\r\n\r\n")
	body := []byte("hello\r\n")
	b, err := q.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	b.Write(body)
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	env := &Envelope{
		Envelope: message.Envelope{From: "a@example.com", To: []string{"b@example.com"},
			EightBit: true, Notify: []string{"FAILURE"}, Ret: "HDRS", EnvID: "QQ+2Bx"}, Created: created, Header: header,
	}
	if err := q.Commit(env, b); err != nil {
		t.Fatal(err)
	}
	if !ValidID(env.ID) || env.BodySize != int64(len(body)) || !env.Created.Equal(created) {
		t.Errorf("after Commit: id %q, body size %d, created %v", env.ID, env.BodySize, env.Created)
	}
	// Readable after Commit (relaymail may still be sending from it).
	if got, _ := io.ReadAll(io.NewSectionReader(b, 0, 100)); !bytes.Equal(got, body) {
		t.Errorf("body after Commit = %q", got)
	}
	if err := q.Commit(env, b); err == nil {
		t.Error("second Commit of the same body succeeded")
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	// The enqueuer holds the lock until Close.
	if _, err := q.Lock(env.ID); !errors.Is(err, ErrLocked) {
		t.Errorf("Lock while the Body is open: %v, want ErrLocked", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, q, dirTmp)

	list, err := q.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	got := list[0]
	if got.ID != env.ID || got.From != env.From || !slices.Equal(got.To, env.To) ||
		!got.Created.Equal(created) || !got.EightBit || !slices.Equal(got.Notify, env.Notify) ||
		got.Ret != "HDRS" || got.EnvID != "QQ+2Bx" || !bytes.Equal(got.Header, header) || got.BodySize != int64(len(body)) {
		t.Errorf("List returned %+v, want %+v", got, env)
	}
	if got.Size() != int64(len(header)+len(body)) {
		t.Errorf("Size = %d", got.Size())
	}

	it, err := q.Lock(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Lock(env.ID); !errors.Is(err, ErrLocked) {
		t.Errorf("second Lock: %v, want ErrLocked", err)
	}
	r, size := it.Content()
	content, err := io.ReadAll(io.NewSectionReader(r, 0, size))
	if err != nil || string(content) != string(header)+string(body) {
		t.Errorf("Content = %q, %v", content, err)
	}
	// Reads across the header/body boundary.
	p := make([]byte, 6)
	if n, err := r.ReadAt(p, int64(len(header))-3); n != 6 || err != nil || !bytes.Equal(p, content[len(header)-3:len(header)+3]) {
		t.Errorf("ReadAt across the boundary = %q, %v", p[:n], err)
	}

	next := time.Date(2025, 1, 2, 4, 0, 0, 0, time.UTC)
	it.Env.Attempts = 2
	it.Env.NextAttempt = next
	it.Env.LastError = "smtp.example.com: 421 4.3.2 busy"
	it.Env.Delivered = []string{"x@example.com"}
	if err := it.Update(); err != nil {
		t.Fatal(err)
	}
	list, _ = q.List()
	if e := list[0]; e.Attempts != 2 || !e.NextAttempt.Equal(next) || e.LastError != it.Env.LastError ||
		!slices.Equal(e.Delivered, []string{"x@example.com"}) || !bytes.Equal(e.Header, header) {
		t.Errorf("after Update: %+v", e)
	}
	if e := list[0]; e.Due(next.Add(-time.Second)) || !e.Due(next) {
		t.Errorf("Due around NextAttempt is wrong")
	}
	saved := it.Env.To
	it.Env.To = nil
	if err := it.Update(); err == nil {
		t.Error("Update with no recipient succeeded")
	}
	it.Env.To = saved
	it.Env.ID = "OTHER"
	if err := it.Update(); err == nil {
		t.Error("Update with a changed id succeeded")
	}
	it.Env.ID = env.ID
	if err := it.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{it.Update, it.Remove, it.Fail} {
		if err := f(); err == nil {
			t.Error("Update/Remove/Fail after Remove succeeded")
		}
	}
	if err := it.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := it.Unlock(); err != nil {
		t.Errorf("second Unlock: %v", err)
	}
	if _, err := q.Lock(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock after Remove: %v, want ErrNotFound", err)
	}
	assertEmpty(t, q, dirTmp, dirEnv, dirBody, dirFailedEnv, dirFailedBody)
}

// TestCommitFailures: a Commit that fails at any step queues nothing and
// leaves nothing behind once the body is closed.
func TestCommitFailures(t *testing.T) {
	steps := []string{"body-sync", "body-link", "body-dirsync", "env-create", "env-write", "env-rename"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			q := openTest(t)
			q.hook = func(s string) error {
				if s == step {
					return errors.New("queue: injected failure at " + s)
				}
				return nil
			}
			b, err := q.NewBody()
			if err != nil {
				t.Fatal(err)
			}
			b.Write([]byte("body\n"))
			env := testEnvelope([]byte("Subject: x\n\n"))
			if err := q.Commit(env, b); err == nil || !strings.Contains(err.Error(), step) {
				t.Fatalf("Commit = %v, want the injected failure", err)
			}
			if env.ID != "" {
				t.Errorf("failed Commit left env.ID = %q", env.ID)
			}
			if got, _ := io.ReadAll(io.NewSectionReader(b, 0, 100)); string(got) != "body\n" {
				t.Errorf("body unreadable after a failed Commit: %q", got)
			}
			b.Close()
			assertEmpty(t, q, dirTmp, dirEnv, dirBody)
			if l, err := q.List(); len(l) != 0 || err != nil {
				t.Errorf("List = %v, %v", l, err)
			}
		})
	}

	tests := []struct {
		name  string
		setup func(q *Queue, b *Body, env *Envelope)
		want  string
	}{
		{"no recipient", func(q *Queue, b *Body, env *Envelope) { env.To = nil }, "no recipient"},
		{"bad id", func(q *Queue, b *Body, env *Envelope) { env.ID = "../../etc/passwd" }, "invalid message id"},
		{"control character", func(q *Queue, b *Body, env *Envelope) { env.To = []string{"a@b\r\nRSET"} }, "control character"},
		{"empty recipient", func(q *Queue, b *Body, env *Envelope) { env.To = []string{""} }, "empty recipient"},
		{"closed body", func(q *Queue, b *Body, env *Envelope) { b.Close() }, "closed"},
		{"write error", func(q *Queue, b *Body, env *Envelope) {
			b.f.Close() // the next write fails, as on a dead disk
			if _, err := b.Write([]byte("more")); err == nil {
				panic("write to a closed file succeeded")
			}
		}, "write error"},
		{"other queue", func(q *Queue, b *Body, env *Envelope) { b.q = &Queue{dir: "/nonexistent"} }, "another queue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openTest(t)
			b, err := q.NewBody()
			if err != nil {
				t.Fatal(err)
			}
			b.Write([]byte("body\n"))
			env := testEnvelope([]byte("Subject: x\n\n"))
			tt.setup(q, b, env)
			err = q.Commit(env, b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "queue: ") {
				t.Errorf("Commit = %v, want an error about %q", err, tt.want)
			}
			b.Close()
			assertEmpty(t, q, dirTmp, dirEnv, dirBody)
		})
	}

	t.Run("id in use", func(t *testing.T) {
		q := openTest(t)
		for i, want := range []bool{true, false} {
			env := testEnvelope([]byte("Subject: x\n\n"))
			env.ID = "GIVEN"
			err := q.Enqueue(env, strings.NewReader("body"))
			if (err == nil) != want {
				t.Errorf("Enqueue #%d with id GIVEN: %v", i, err)
			}
		}
		it, err := q.Lock("GIVEN")
		if err != nil {
			t.Fatal(err)
		}
		it.Fail()
		it.Unlock()
		env := testEnvelope([]byte("Subject: x\n\n"))
		env.ID = "GIVEN"
		if err := q.Enqueue(env, strings.NewReader("body")); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("Enqueue with the id of a failed message: %v", err)
		}
	})
}

func TestLockErrors(t *testing.T) {
	q := openTest(t)
	env := enqueue(t, q, 10)
	tests := []struct {
		name  string
		setup func(t *testing.T, id string)
		is    error
		want  string
	}{
		{"missing", func(t *testing.T, id string) {}, ErrNotFound, ""},
		{"invalid id", nil, nil, "invalid message id"},
		{"body missing", func(t *testing.T, id string) {
			os.WriteFile(q.path(dirEnv, id), []byte("x"), 0o600)
		}, ErrNoBody, "body"},
		{"env missing (delivered meanwhile)", func(t *testing.T, id string) {
			os.WriteFile(q.path(dirBody, id), []byte("x"), 0o600)
		}, ErrNotFound, ""},
		{"body size differs", func(t *testing.T, id string) {
			e := testEnvelope([]byte("S: x\n\n"))
			e.ID = id
			commitPlain(t, q, e, []byte("12345"))
			os.WriteFile(q.path(dirBody, id), []byte("1234"), 0o600)
		}, nil, "envelope says 5"},
		{"corrupt env", func(t *testing.T, id string) {
			os.WriteFile(q.path(dirBody, id), nil, 0o600)
			os.WriteFile(q.path(dirEnv, id), []byte("{\"v\":1,\n"), 0o600)
		}, nil, "corrupt"},
		{"env of another id", func(t *testing.T, id string) {
			data, _ := os.ReadFile(q.path(dirEnv, env.ID))
			os.WriteFile(q.path(dirEnv, id), data, 0o600)
			os.Link(q.path(dirBody, env.ID), q.path(dirBody, id))
		}, nil, "holds message " + env.ID},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "T" + strconv.Itoa(i)
			if tt.setup == nil {
				id = "../" + env.ID
			} else {
				tt.setup(t, id)
			}
			it, err := q.Lock(id)
			if err == nil {
				it.Unlock()
				t.Fatal("Lock succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Lock = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "queue: ") {
				t.Errorf("Lock = %q, want it to mention %q", err, tt.want)
			}
		})
	}
	// The good message is still fine, and the broken ones are reported
	// by List with their file names, without hiding it.
	list, err := q.List()
	if len(list) == 0 || list[0].ID != env.ID {
		t.Errorf("List lost the good message: %v", list)
	}
	if err == nil || !strings.Contains(err.Error(), q.path(dirEnv, "T5")) {
		t.Errorf("List error %v does not name the corrupt file", err)
	}
}

func TestFailRequeueDelete(t *testing.T) {
	q := openTest(t)
	a, b, c := enqueue(t, q, 10), enqueue(t, q, 20), enqueue(t, q, 30)

	it, err := q.Lock(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	it.Env.Attempts = 7
	it.Env.LastError = "smtp.example.com: 550 5.1.1 no such user"
	if err := it.Fail(); err != nil {
		t.Fatal(err)
	}
	if err := it.Update(); err == nil {
		t.Error("Update after Fail succeeded")
	}
	it.Unlock()
	queued, err := q.List()
	if err != nil || len(queued) != 2 || queued[0].ID != b.ID || queued[1].ID != c.ID {
		t.Fatalf("List after Fail = %v, %v", ids(queued), err)
	}
	failed, err := q.ListFailed()
	if err != nil || len(failed) != 1 || failed[0].ID != a.ID || failed[0].LastError != it.Env.LastError || failed[0].Attempts != 7 {
		t.Fatalf("ListFailed = %+v, %v", failed, err)
	}
	if _, err := q.Lock(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock of a failed message: %v, want ErrNotFound", err)
	}

	before := time.Now()
	if err := q.Requeue(a.ID); err != nil {
		t.Fatal(err)
	}
	if failed, _ := q.ListFailed(); len(failed) != 0 {
		t.Errorf("ListFailed after Requeue = %v", ids(failed))
	}
	it, err = q.Lock(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Env.Attempts != 0 || it.Env.NextAttempt.Before(before) || !it.Env.Due(time.Now()) {
		t.Errorf("after Requeue: attempts %d, next %v", it.Env.Attempts, it.Env.NextAttempt)
	}
	checkWhole(t, q, it.Env)

	// Delete: a locked message is refused; errors for the rest.
	tests := []struct {
		id string
		is error
	}{
		{a.ID, ErrLocked},
		{"NOSUCHID", ErrNotFound},
		{"../../x", nil},
		{"", nil},
	}
	for _, tt := range tests {
		err := q.Delete(tt.id)
		if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("Delete(%q) = %v, want %v", tt.id, err, tt.is)
		}
		if err := q.Requeue(tt.id); err == nil {
			t.Errorf("Requeue(%q) succeeded", tt.id)
		}
	}
	if err := q.Requeue(a.ID); err == nil {
		t.Error("Requeue of a queued message succeeded")
	}
	it.Unlock()

	// Fail b, then delete one failed and one queued message.
	it, _ = q.Lock(b.ID)
	it.Fail()
	it.Unlock()
	for _, id := range []string{b.ID, a.ID} {
		if err := q.Delete(id); err != nil {
			t.Errorf("Delete(%s): %v", id, err)
		}
		if err := q.Delete(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("second Delete(%s): %v", id, err)
		}
	}
	queued, _ = q.List()
	failed, _ = q.ListFailed()
	if len(queued) != 1 || queued[0].ID != c.ID || len(failed) != 0 {
		t.Errorf("left: queued %v, failed %v; want only %s", ids(queued), ids(failed), c.ID)
	}
	assertEmpty(t, q, dirFailedEnv, dirFailedBody, dirTmp)
	if entries, _ := os.ReadDir(q.path(dirBody, "")); len(entries) != 1 {
		t.Errorf("body/ holds %d files, want 1", len(entries))
	}
}

func ids(envs []*Envelope) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.ID)
	}
	return out
}

func TestListOrderAndErrors(t *testing.T) {
	q := openTest(t)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	// Created out of order; ids would sort the other way.
	for i, d := range []time.Duration{3, 1, 2} {
		e := testEnvelope([]byte("S: x\n\n"))
		e.ID = "M" + strconv.Itoa(9-i)
		e.Created = base.Add(d * time.Hour)
		if err := q.Enqueue(e, strings.NewReader("b")); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[string]string{
		"BADJSON":  "{nope\nS: x\n\n",
		"NOLINE":   "{\"v\":1}",
		"VERSION3": "{\"v\":3,\"id\":\"VERSION3\"}\n",
		"WRONGID":  "",
		"bad.name": "x",
	}
	for name, data := range bad {
		os.WriteFile(q.path(dirEnv, name), []byte(data), 0o600)
	}
	// WRONGID holds a valid envelope of another message.
	data, _ := os.ReadFile(q.path(dirEnv, "M9"))
	os.WriteFile(q.path(dirEnv, "WRONGID"), data, 0o600)

	list, err := q.List()
	if got := ids(list); !slices.Equal(got, []string{"M8", "M7", "M9"}) {
		t.Errorf("List = %v, want oldest first [M8 M7 M9]", got)
	}
	if err == nil {
		t.Fatal("List reported no error for the corrupt files")
	}
	for name := range bad {
		if !strings.Contains(err.Error(), q.path(dirEnv, name)) {
			t.Errorf("List error does not name %s:\n%v", name, err)
		}
	}
	if !strings.Contains(err.Error(), "version 3") {
		t.Errorf("List error does not explain the version: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	q := openTest(t)
	keep := enqueue(t, q, 10)
	now := time.Now()
	later := now.Add(OrphanAge + time.Minute)

	// An orphan body (a crash between link and env) and stray tmp files.
	os.WriteFile(q.path(dirBody, "ORPHAN"), []byte("x"), 0o600)
	os.WriteFile(q.path(dirTmp, "env-X-123"), []byte("x"), 0o600)
	os.WriteFile(q.path(dirTmp, "body-456"), []byte("x"), 0o600)
	// A locked orphan: its enqueuer is alive.
	os.WriteFile(q.path(dirBody, "LOCKED"), []byte("x"), 0o600)
	lf, _ := os.Open(q.path(dirBody, "LOCKED"))
	defer lf.Close()
	if err := tryLock(lf); err != nil {
		t.Fatal(err)
	}
	// A Fail interrupted between its two renames.
	failing := enqueue(t, q, 20)
	os.Rename(q.path(dirEnv, failing.ID), q.path(dirFailedEnv, failing.ID))
	// A Requeue interrupted before its last step.
	requeued := enqueue(t, q, 30)
	data, _ := os.ReadFile(q.path(dirEnv, requeued.ID))
	os.WriteFile(q.path(dirFailedEnv, requeued.ID), data, 0o600)

	// Young orphans stay; the interrupted moves are finished at once.
	if err := q.Cleanup(now); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{q.path(dirBody, "ORPHAN"), q.path(dirTmp, "env-X-123"), q.path(dirBody, "LOCKED")} {
		if !exists(p) {
			t.Errorf("Cleanup(now) removed the young %s", p)
		}
	}
	failed, _ := q.ListFailed()
	if got := ids(failed); !slices.Equal(got, []string{failing.ID}) {
		t.Errorf("failed after Cleanup = %v, want [%s]", got, failing.ID)
	}
	if !exists(q.path(dirFailedBody, failing.ID)) || exists(q.path(dirBody, failing.ID)) {
		t.Error("Cleanup did not finish the interrupted Fail")
	}

	if err := q.Cleanup(later); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{q.path(dirBody, "ORPHAN"), q.path(dirTmp, "env-X-123"), q.path(dirTmp, "body-456")} {
		if exists(p) {
			t.Errorf("Cleanup(later) kept %s", p)
		}
	}
	if !exists(q.path(dirBody, "LOCKED")) {
		t.Error("Cleanup removed a locked body")
	}
	queued, err := q.List()
	if got := ids(queued); err != nil || !slices.Equal(got, []string{keep.ID, requeued.ID}) {
		t.Errorf("queued after Cleanup = %v, %v; want [%s %s]", got, err, keep.ID, requeued.ID)
	}
	for _, e := range queued {
		checkWhole(t, q, e)
	}
	// The failed message is whole and can be requeued.
	if err := q.Requeue(failing.ID); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	if err := q.Cleanup(later); err != nil {
		t.Fatal(err)
	}
	if exists(q.path(dirBody, "LOCKED")) {
		t.Error("Cleanup kept an unlocked old orphan")
	}
	queued, _ = q.List()
	if len(queued) != 3 {
		t.Errorf("queued = %v, want 3 messages", ids(queued))
	}
	for _, e := range queued {
		checkWhole(t, q, e)
	}
}

// TestNamedBody runs the life of a message with the fallback for
// filesystems without O_TMPFILE: a named file in tmp/.
func TestNamedBody(t *testing.T) {
	q := openTest(t)
	q.named = true
	b, err := q.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	if b.name == "" || !exists(b.name) {
		t.Fatalf("named body %q does not exist", b.name)
	}
	body := []byte("named body\n")
	b.Write(body)
	env := testEnvelope(testHeader(1, body))
	if err := q.Commit(env, b); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, q, dirTmp) // the temporary name goes at Commit
	if _, err := q.Lock(env.ID); !errors.Is(err, ErrLocked) {
		t.Errorf("Lock while the Body is open: %v, want ErrLocked", err)
	}
	b.Close()
	list, _ := q.List()
	if len(list) != 1 {
		t.Fatalf("List = %v", ids(list))
	}
	checkWhole(t, q, list[0])

	// Uncommitted: Close removes it; a crashed one goes with Cleanup,
	// unless its process still holds it.
	b, _ = q.NewBody()
	name := b.name
	b.Write(body)
	b.Close()
	if exists(name) {
		t.Error("Close left the named body")
	}
	b, _ = q.NewBody()
	defer b.Close()
	os.WriteFile(q.path(dirTmp, "body-crashed"), body, 0o600)
	if err := q.Cleanup(time.Now().Add(2 * OrphanAge)); err != nil {
		t.Fatal(err)
	}
	if exists(q.path(dirTmp, "body-crashed")) || !exists(b.name) {
		t.Errorf("Cleanup: crashed body kept %v, live body removed %v", exists(q.path(dirTmp, "body-crashed")), !exists(b.name))
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("stdin went away")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestEnqueueReadError(t *testing.T) {
	q := openTest(t)
	env := testEnvelope([]byte("S: x\n\n"))
	err := q.Enqueue(env, &failingReader{n: 100000})
	if err == nil || !strings.Contains(err.Error(), "stdin went away") || !strings.HasPrefix(err.Error(), "queue: ") {
		t.Errorf("Enqueue = %v", err)
	}
	assertEmpty(t, q, dirTmp, dirEnv, dirBody)
}
