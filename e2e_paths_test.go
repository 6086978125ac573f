package main

// Paths and arguments a hostile or mistaken caller controls (SPEC §9):
// what is not a regular file is refused without blocking, and the exit
// status says what was wrong.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"relaymail/internal/smtptest"
)

// TestNotRegularFiles: a config, password_file, ca_file or aliases_file
// that is a FIFO (or a directory) is exit 78 naming it, at once: opening
// a FIFO for reading would wait for a writer for ever, with relaymail's
// signals held.
func TestNotRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(name, smarthost, top string) string {
		path := filepath.Join(dir, name+".toml")
		text := fmt.Sprintf("%s\n[smarthost]\nhost = \"127.0.0.1\"\ntls = \"none\"\n%s\n", top, smarthost)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name   string
		config string
		names  string
	}{
		{"config is a fifo", fifo, fifo},
		{"config is a directory", dir, dir},
		{"password_file is a fifo", config("pw", fmt.Sprintf("username = \"u\"\npassword_file = %q", fifo), ""), "password_file " + fifo},
		{"ca_file is a fifo", config("ca", fmt.Sprintf("ca_file = %q", fifo), ""), "ca_file " + fifo},
		{"aliases_file is a fifo", config("aliases", "", fmt.Sprintf("aliases_file = %q", fifo)), "aliases_file " + fifo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, argv := range [][]string{
				{"sendmail", "-C", tt.config, "-i", "a@example.com"},
				{"sendmail", "-C", tt.config, "--check"},
			} {
				res := runBinary(t, argv, []byte(simpleMail), stdinPipe, nil)
				if res.code != 78 {
					t.Errorf("%q: exit %d, want 78; stderr %q", argv, res.code, res.stderr)
				}
				if want := regexp.QuoteMeta(tt.names); !regexp.MustCompile(want).MatchString(res.stderr) {
					t.Errorf("%q: stderr %q does not name %s", argv, res.stderr, tt.names)
				}
			}
		})
	}
}

// TestExitStatusOfAdminAndDryRun: --delete and --requeue with an id that
// is not one are usage errors (64), nothing touched; --dry-run exits with
// the status the real run would have for what is decided before
// connecting (a refused operand: 67).
func TestExitStatusOfAdminAndDryRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	for _, mode := range []string{"--delete", "--requeue"} {
		for _, id := range []string{"../../x", "a/b", "", "x y"} {
			res := h.run([]string{"sendmail", mode, id}, nil, stdinNone)
			want := 64
			if res.code != want {
				t.Errorf("%s %q: exit %d, want %d; stderr %q", mode, id, res.code, want, res.stderr)
			}
		}
	}
	late := []string{"-i", "a@example.com", "-odq"} // an option after the first recipient: refused alone
	dry := h.run(append([]string{"sendmail", "--dry-run"}, late...), []byte(simpleMail), stdinPipe)
	real := h.run(append([]string{"sendmail"}, late...), []byte(simpleMail), stdinPipe)
	if real.code != 67 {
		t.Fatalf("real run: exit %d, want 67; stderr %q", real.code, real.stderr)
	}
	if dry.code != real.code {
		t.Errorf("--dry-run: exit %d, the real run %d; stderr %q", dry.code, real.code, dry.stderr)
	}
	if len(h.srv.Messages()) != 1 {
		t.Errorf("%d messages sent, want 1 (by the real run only)", len(h.srv.Messages()))
	}
}
