package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"relaymail/internal/smtptest"
)

// helpFlags is every option of SPEC §2, the modes it refuses, and
// relaymail's own: --help names each (packaging/packaging_test.go holds
// the same list for the manual page).
var helpFlags = []string{
	"-bm", "-bs", "-bd", "-bp", "-bi", "-bv", "-q", "-q30m", "-t", "-i", "-oi", "-O IgnoreDots",
	"-f", "-r", "-F", "-N", "-R", "-V", "-B", "-v", "-odq", "-odb", "-d0.1", "-C",
	"--check", "--dry-run", "--help", "--version", "--requeue", "--delete", "--failed", "--oauth2-login", "--", "mailq", "newaliases",
	"-oem", "-oep", "-oee", "-oeq", "-oew", "-odi", "-om", "-o7", "-o8", "-oA", "-O", "-h", "-L",
	"-G", "-U", "-X", "-Am", "-Ac", "-c", "-m", "-n", "-s", "-x", "-e", "-p",
	"-bD", "-bt", "-bh", "-bH", "-bP", "-bl",
}

// TestHelp: --help lists every flag, in lines a terminal shows whole.
func TestHelp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	res := h.run([]string{"sendmail", "--help"}, nil, stdinNone)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	for _, flag := range helpFlags {
		// A flag is a word of its own: not a prefix of a longer one.
		re := regexp.MustCompile(`(^|[\s,(\[|])` + regexp.QuoteMeta(flag) + `($|[\s,.:)\[\]|'A-Z])`)
		if !re.MatchString(res.stdout) {
			t.Errorf("--help does not name %s", flag)
		}
	}
	for _, line := range regexp.MustCompile(`\n`).Split(res.stdout, -1) {
		if len(line) > 79 {
			t.Errorf("--help line over 79 columns: %q", line)
		}
	}
}

// TestErrorTexts: what a caller reads on stderr names no internal package
// ("relaymail: sendmail: ..." reads as two programs), and the hint for a
// missing config names the example the package installs, and -C only to
// one who did not pass it.
func TestErrorTexts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	missing := "/nonexistent/relaymail.toml"
	tests := []struct {
		name  string
		argv  []string
		env   []string
		stdin string
		want  string // the whole stderr
	}{
		{"bad To: with -t", []string{"sendmail", "-t"}, nil, "To: <<broken\n\nx\n",
			"relaymail: header field To: bad address list \"<<broken\": unbalanced <>\n"},
		{"bad -f", []string{"sendmail", "-f", "<<bad", "a@example.com"}, nil, "x\n",
			"relaymail: usage error: -f \"<<bad\": bad sender address \"<<bad\": unbalanced <>\n"},
		{"missing -C", []string{"sendmail", "-C", missing, "a@example.com"}, []string{}, "x\n",
			"relaymail: config: " + missing + ": no such file (an example is /usr/share/doc/relaymail/examples/relaymail.toml)\n"},
		{"missing $RELAYMAIL_CONFIG", []string{"sendmail", "a@example.com"}, []string{"RELAYMAIL_CONFIG=" + missing}, "x\n",
			"relaymail: config: " + missing + ": no such file (an example is /usr/share/doc/relaymail/examples/relaymail.toml)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res result
			if tt.env == nil {
				res = h.run(tt.argv, []byte(tt.stdin), stdinPipe)
			} else {
				res = runBinary(t, tt.argv, []byte(tt.stdin), stdinPipe, nil, tt.env...)
			}
			if res.code == 0 || res.stderr != tt.want {
				t.Errorf("exit %d, stderr\n%q, want\n%q", res.code, res.stderr, tt.want)
			}
		})
	}
}

// TestCheckConfigThatCannotWork: --check is exit 78 naming the file when
// the password source is missing or unreadable or the CA file unknown,
// whether or not the smarthost answers; a delivery with the same config
// still queues the message (the administrator may mend it).
func TestCheckConfigThatCannotWork(t *testing.T) {
	t.Parallel()
	authServer := smtptest.Options{Users: map[string]string{"u": "pw"}}
	dir := t.TempDir()
	private := filepath.Join(dir, "private.secret")
	os.WriteFile(private, []byte("pw\n"), 0o600)
	os.Chmod(private, 0o000) // unreadable even to the owner (not to root)
	tests := []struct {
		name, smarthost, want string
		skipRoot              bool
	}{
		{"missing password_file", fmt.Sprintf("username = \"u\"\npassword_file = %q\n", filepath.Join(dir, "missing.secret")),
			`password_file ` + regexp.QuoteMeta(filepath.Join(dir, "missing.secret")) + `: no such file`, false},
		{"unreadable password_file", fmt.Sprintf("username = \"u\"\npassword_file = %q\n", private),
			`password_file ` + regexp.QuoteMeta(private) + `: permission denied`, true},
		{"missing password_command", "username = \"u\"\npassword_command = [\"/nonexistent/get-secret\"]\n",
			`password_command "/nonexistent/get-secret": no such file`, false},
		{"unknown ca_file", fmt.Sprintf("ca_file = %q\n", filepath.Join(dir, "missing-ca.pem")),
			`ca_file ` + regexp.QuoteMeta(filepath.Join(dir, "missing-ca.pem")) + ` cannot be read`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skipRoot && os.Getuid() == 0 {
				t.Skip("root reads a mode-000 file")
			}
			for _, up := range []bool{true, false} {
				h := newHarness(t, authServer, "", tt.smarthost)
				if !up {
					h.smarthostDown()
				}
				res := h.run([]string{"sendmail", "--check"}, nil, stdinNone)
				if res.code != 78 || !regexp.MustCompile(tt.want).MatchString(res.stderr) {
					t.Errorf("smarthost up %v: --check exit %d, stderr %q; want 78 and %q", up, res.code, res.stderr, tt.want)
				}
			}
		})
	}
	t.Run("delivery queues", func(t *testing.T) {
		h := newHarness(t, authServer, "", fmt.Sprintf("username = \"u\"\npassword_file = %q\n", filepath.Join(dir, "missing.secret")))
		if res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe); res.code != 0 || h.spoolCount("") != 1 {
			t.Errorf("exit %d, stderr %q, %d queued; want 0 and the message queued", res.code, res.stderr, h.spoolCount(""))
		}
	})
}
