package delivery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSaveDeadLetter(t *testing.T) {
	home := t.TempDir()
	now := time.Date(2026, 11, 29, 18, 4, 5, 0, time.UTC)
	msg := "Subject: x\r\n\r\nFrom here on\nbody\nFrom the end"
	path, err := SaveDeadLetter(home, "a@example.com", strings.NewReader(msg), int64(len(msg)), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SaveDeadLetter(home, "", strings.NewReader("x\n"), 2, now); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "From a@example.com Sun Nov 29 18:04:05 2026\n" +
		"Subject: x\r\n\r\n>From here on\nbody\n>From the end\n\n" +
		"From MAILER-DAEMON Sun Nov 29 18:04:05 2026\nx\n\n"
	if string(got) != want {
		t.Errorf("dead.letter =\n%q\nwant\n%q", got, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := SaveDeadLetter("", "a@x", strings.NewReader(""), 0, now); err == nil {
		t.Error("want an error without a home")
	}
	if _, err := SaveDeadLetter(filepath.Join(home, "missing"), "a@x", strings.NewReader(""), 0, now); err == nil {
		t.Error("want an error for a missing home")
	}
}

// failingReader yields n octets of 'x' and then fails, as a message whose
// spool file broke halfway would.
type failingReader struct{ n int64 }

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.n {
		return 0, errors.New("injected read failure")
	}
	k := min(int64(len(p)), r.n-off)
	for i := range k {
		p[i] = 'x'
	}
	return int(k), nil
}

// TestDeadLetterRefusesWhatTheCallerPlanted: dead.letter is never
// written through a symlink, into a FIFO (and the open does not block),
// to another user's file or to a hard link; the target stays untouched.
func TestDeadLetterRefusesWhatTheCallerPlanted(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	msg := "Subject: planted\n\nbody\n"
	tests := []struct {
		name  string
		plant func(t *testing.T, home, target string)
		root  bool
		want  string
	}{
		{"symlink to a file", func(t *testing.T, home, target string) {
			must(t, os.Symlink(target, filepath.Join(home, "dead.letter")))
		}, false, "symbolic link"},
		{"symlink to a new name", func(t *testing.T, home, target string) {
			must(t, os.Symlink(target+".new", filepath.Join(home, "dead.letter")))
		}, false, "symbolic link"},
		{"fifo", func(t *testing.T, home, target string) {
			must(t, syscall.Mkfifo(filepath.Join(home, "dead.letter"), 0o600))
		}, false, "not a regular file"},
		{"hard link", func(t *testing.T, home, target string) {
			must(t, os.Link(target, filepath.Join(home, "dead.letter")))
		}, false, "2 links"},
		{"another user's file", func(t *testing.T, home, target string) {
			p := filepath.Join(home, "dead.letter")
			must(t, os.WriteFile(p, nil, 0o666))
			must(t, os.Chown(p, 65534, 65534))
		}, true, "another user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Getuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			home, other := t.TempDir(), t.TempDir()
			target := filepath.Join(other, "queued-body")
			must(t, os.WriteFile(target, []byte("someone else's mail\n"), 0o600))
			tt.plant(t, home, target)
			done := make(chan error, 1)
			go func() {
				_, err := SaveDeadLetter(home, "a@x", strings.NewReader(msg), int64(len(msg)), now)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("SaveDeadLetter blocked")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
			if got, _ := os.ReadFile(target); string(got) != "someone else's mail\n" {
				t.Errorf("target now holds %q", got)
			}
			if _, err := os.Lstat(target + ".new"); err == nil {
				t.Error("a new file was created through the symlink")
			}
		})
	}
}

// TestDeadLetterCreatedForTheCaller: a new dead.letter is 0600 with the
// caller's user and group, whatever the umask.
func TestDeadLetterCreatedForTheCaller(t *testing.T) {
	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	home := t.TempDir()
	path, err := SaveDeadLetter(home, "a@x", strings.NewReader("x\n"), 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != 0o600 || int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid() {
		t.Errorf("dead.letter %v %d:%d, want 0600 %d:%d", st.Mode().Perm(), sys.Uid, sys.Gid, os.Getuid(), os.Getgid())
	}
}

// TestDeadLetterFailedWriteLeavesNoFragment: a write that fails midway
// cuts the file back, so the next entry is whole and starts on its own
// "From " line; an entry after a file that lacks the final newline (or
// the blank line) still starts after a blank line.
func TestDeadLetterFailedWriteLeavesNoFragment(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	home := t.TempDir()
	path := filepath.Join(home, "dead.letter")
	must(t, os.WriteFile(path, []byte("From old@x Sun Dec  6 11:00:00 2026\nold body"), 0o600))
	if _, err := SaveDeadLetter(home, "a@x", failingReader{200 << 10}, 400<<10, now); err == nil {
		t.Fatal("want the injected failure")
	}
	got, _ := os.ReadFile(path)
	if string(got) != "From old@x Sun Dec  6 11:00:00 2026\nold body" {
		t.Fatalf("after a failed write dead.letter holds %d bytes: %.80q…", len(got), got)
	}
	if _, err := SaveDeadLetter(home, "b@x", strings.NewReader("new\n"), 4, now); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	want := "From old@x Sun Dec  6 11:00:00 2026\nold body\n\nFrom b@x Sun Dec  6 12:00:00 2026\nnew\n\n"
	if string(got) != want {
		t.Errorf("dead.letter =\n%q\nwant\n%q", got, want)
	}
	for _, tail := range []struct{ before, sep string }{{"a\n", "\n"}, {"a\n\n", ""}, {"a", "\n\n"}} {
		must(t, os.WriteFile(path, []byte(tail.before), 0o600))
		if _, err := SaveDeadLetter(home, "c@x", strings.NewReader("z\n"), 2, now); err != nil {
			t.Fatal(err)
		}
		got, _ = os.ReadFile(path)
		if want := tail.before + tail.sep + "From c@x Sun Dec  6 12:00:00 2026\nz\n\n"; string(got) != want {
			t.Errorf("after %q: %q, want %q", tail.before, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
