package delivery

import (
	"os"
	"path/filepath"
	"strings"
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
