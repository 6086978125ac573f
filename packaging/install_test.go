// Package packaging holds no code: it is the Debian package, the systemd
// units, the manual page and the container recipes of relaymail, built by
// build-deb and tested by test-deb. Its Go tests check the installed
// package's security model (SPEC §9) as a whole: they need root and the
// package installed, so they run only under test-deb
// (RELAYMAIL_PKG_TEST=1).
package packaging

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// Paths the package installs (SPEC §1).
const (
	sendmailPath  = "/usr/sbin/sendmail"
	binaryPath    = "/usr/sbin/relaymail"
	systemConfig  = "/etc/relaymail.toml"
	secretFile    = "/etc/relaymail.secret"
	spoolDir      = "/var/spool/relaymail"
	cleanPath     = "PATH=/usr/local/bin:/usr/bin:/bin"
	smarthostUser = "robot"
)

// account is a local user the tests run relaymail as.
type account struct {
	name     string
	uid, gid uint32
}

func lookupAccount(t *testing.T, name string) account {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s on this machine: %v", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// installed skips the test unless test-deb asked for it, we are root, and
// the package is in place: the binary setgid relaymail behind
// /usr/sbin/sendmail.
func installed(t *testing.T) (relaymailGID uint32) {
	t.Helper()
	if os.Getenv("RELAYMAIL_PKG_TEST") != "1" {
		t.Skip("needs the relaymail package installed and root; run packaging/test-deb (sets RELAYMAIL_PKG_TEST=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	g, err := user.LookupGroup("relaymail")
	if err != nil {
		t.Fatalf("group relaymail: %v", err)
	}
	gid, _ := strconv.ParseUint(g.Gid, 10, 32)
	st, err := os.Stat(sendmailPath)
	if err != nil {
		t.Fatalf("%s: %v", sendmailPath, err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode()&os.ModeSetgid == 0 || sys.Gid != uint32(gid) {
		t.Fatalf("%s is %v group %d, want setgid relaymail (%d)", sendmailPath, st.Mode(), sys.Gid, gid)
	}
	return uint32(gid)
}

// newSecret returns a password no output may contain.
func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw-" + hex.EncodeToString(b)
}

// writeFile writes a root-owned file with the given group and mode and
// restores what was there before (or removes it) when the test ends.
func writeFile(t *testing.T, path, content string, gid uint32, mode os.FileMode) {
	t.Helper()
	old, err := os.ReadFile(path)
	existed := err == nil
	var oldMode os.FileMode
	var oldGID uint32
	if existed {
		st, _ := os.Stat(path)
		oldMode = st.Mode().Perm()
		oldGID = st.Sys().(*syscall.Stat_t).Gid
	}
	t.Cleanup(func() {
		if !existed {
			os.Remove(path)
			return
		}
		os.WriteFile(path, old, oldMode)
		os.Chown(path, 0, int(oldGID))
		os.Chmod(path, oldMode)
	})
	setFile(t, path, content, gid, mode)
}

func setFile(t *testing.T, path, content string, gid uint32, mode os.FileMode) {
	t.Helper()
	// Tighten first, so the secret is never in a file with the old mode.
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
		t.Fatal(err)
	} else {
		f.Chmod(0o600)
		f.Close()
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// configFor is a config relaying through s in cleartext (allowed: loopback)
// with the given [smarthost] password line and auth mechanism.
func configFor(s *smtptest.Server, passwordLine, auth string) string {
	return fmt.Sprintf(`hostname = "pkgtest.example.com"
domain = "example.com"
log = "stderr"

[smarthost]
host = %q
port = %d
tls = "none"
username = %q
%s
auth = %q
timeout = "10s"

[queue]
mode = "never"
`, s.Host(), s.Port(), smarthostUser, passwordLine, auth)
}

func startSmarthost(t *testing.T, secret string, mechs ...string) *smtptest.Server {
	return smtptest.Start(t, smtptest.Options{
		Users:        map[string]string{smarthostUser: secret},
		AuthRequired: true,
		Mechanisms:   mechs,
	})
}

// result is what one run of a command printed and how it ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runAs runs argv as u: its uid and primary gid, no supplementary groups,
// in /, with a small environment plus env, stdin as given, bounded in time.
func runAs(t *testing.T, u account, env []string, stdin string, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
	}
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s as %s: %v\n%s", strings.Join(argv, " "), u.name, err, r)
	}
	return r
}

// assertNoSecret fails when secret appears in out, as is or inside any
// base64 token (AUTH PLAIN and LOGIN payloads are base64).
func assertNoSecret(t *testing.T, what, out, secret string) {
	t.Helper()
	if strings.Contains(out, secret) {
		t.Errorf("%s shows the password:\n%s", what, out)
		return
	}
	for _, tok := range strings.FieldsFunc(out, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=')
	}) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			if b, err := enc.DecodeString(tok); err == nil && bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s shows the password in base64 (%s):\n%s", what, tok, out)
				return
			}
		}
	}
}

const testMessage = "Subject: package test\r\nTo: someone@example.org\r\n\r\nhello from www-data\r\n"

// TestSubmitAsWWWData: an unprivileged caller (no supplementary groups)
// sends through a smarthost that requires AUTH, with each mechanism and
// each password source; the message arrives authenticated, and nothing the
// caller sees, -v included, holds the password.
func TestSubmitAsWWWData(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	for _, tc := range []struct {
		name, mech, auth string
		fromFile         bool
	}{
		{"plain inline", "PLAIN", "plain", false},
		{"login inline", "LOGIN", "login", false},
		{"cram-md5 inline", "CRAM-MD5", "cram-md5", false},
		{"plain password_file", "PLAIN", "plain", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := newSecret(t)
			s := startSmarthost(t, secret, tc.mech)
			pwLine := fmt.Sprintf("password = %q", secret)
			if tc.fromFile {
				writeFile(t, secretFile, secret+"\n", gid, 0o640)
				pwLine = fmt.Sprintf("password_file = %q", secretFile)
			}
			writeFile(t, systemConfig, configFor(s, pwLine, tc.auth), gid, 0o640)

			r := runAs(t, www, nil, testMessage, sendmailPath, "-i", "someone@example.org")
			if r.code != 0 {
				t.Fatalf("sendmail as www-data: %s", r)
			}
			assertNoSecret(t, "sendmail output", r.stdout+r.stderr, secret)

			r = runAs(t, www, nil, testMessage, sendmailPath, "-v", "-i", "someone@example.org")
			if r.code != 0 {
				t.Fatalf("sendmail -v as www-data: %s", r)
			}
			t.Logf("sendmail -v: %s", r)
			if !strings.Contains(r.stderr, "AUTH") || !strings.Contains(r.stderr, "<redacted>") {
				t.Errorf("-v trace lacks the redacted AUTH exchange:\n%s", r.stderr)
			}
			assertNoSecret(t, "sendmail -v trace", r.stdout+r.stderr, secret)

			msgs := s.WaitMessages(t, 2, 10*time.Second)
			for _, m := range msgs {
				if m.AuthUser != smarthostUser || m.AuthMech != tc.mech {
					t.Errorf("message authenticated as %q with %q, want %q with %s", m.AuthUser, m.AuthMech, smarthostUser, tc.mech)
				}
				if m.From != "www-data@example.com" {
					t.Errorf("envelope sender %q, want www-data@example.com", m.From)
				}
				if !bytes.Contains(m.Data, []byte("hello from www-data")) {
					t.Errorf("body missing:\n%s", m.Data)
				}
			}
		})
	}
}

// TestWWWDataCannotLearnPassword tries every way SPEC §9 closes, as
// www-data, against a system config that holds the password inline.
func TestWWWDataCannotLearnPassword(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	secret := newSecret(t)
	s := startSmarthost(t, secret, "PLAIN")
	config := configFor(s, fmt.Sprintf("password = %q", secret), "plain")
	writeFile(t, systemConfig, config, gid, 0o640)
	writeFile(t, secretFile, secret+"\n", gid, 0o640)

	// Each case runs one command as www-data; want is the exit status
	// (-1: any non-zero) and mention what stderr must say.
	cases := []struct {
		name    string
		env     []string
		stdin   string
		argv    []string
		want    int
		mention string
	}{
		{"read the config", nil, "", []string{"/bin/cat", systemConfig}, -1, "Permission denied"},
		{"read the password_file", nil, "", []string{"/bin/cat", secretFile}, -1, "Permission denied"},
		{"-C the system config", nil, testMessage, []string{sendmailPath, "-C", systemConfig, "-i", "someone@example.org"}, 78, "permission denied"},
		{"-C glued", nil, testMessage, []string{sendmailPath, "-C" + systemConfig, "-bv", "root"}, 78, "permission denied"},
		{"-C the password_file", nil, testMessage, []string{sendmailPath, "-C", secretFile, "-i", "someone@example.org"}, 78, "permission denied"},
		{"RELAYMAIL_CONFIG", []string{"RELAYMAIL_CONFIG=" + systemConfig}, testMessage, []string{sendmailPath, "-i", "someone@example.org"}, 78, "permission denied"},
		{"RELAYMAIL_CONFIG with --check", []string{"RELAYMAIL_CONFIG=" + systemConfig}, "", []string{sendmailPath, "--check"}, 78, "permission denied"},
		{"--check", nil, "", []string{sendmailPath, "--check"}, 0, ""},
		{"--dry-run", nil, testMessage, []string{sendmailPath, "--dry-run", "-i", "someone@example.org"}, 0, ""},
		{"-bv", nil, "", []string{sendmailPath, "-bv", "root"}, 0, ""},
		{"-v -bv", nil, "", []string{sendmailPath, "-v", "-bv", "root"}, 0, ""},
		{"-d0.1", nil, "", []string{sendmailPath, "-d0.1"}, 0, ""},
		{"mailq", nil, "", []string{"/usr/bin/mailq"}, 0, ""},
		{"list the spool", nil, "", []string{"/bin/ls", "-la", spoolDir}, -1, "Permission denied"},
		{"find in the spool", nil, "", []string{"/usr/bin/find", spoolDir}, -1, "Permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runAs(t, www, tc.env, tc.stdin, tc.argv...)
			t.Logf("%s: %s", strings.Join(tc.argv, " "), r)
			if (tc.want == -1 && r.code == 0) || (tc.want >= 0 && r.code != tc.want) {
				t.Errorf("want exit %d (-1: non-zero), got %s", tc.want, r)
			}
			if tc.mention != "" && !strings.Contains(r.stderr, tc.mention) {
				t.Errorf("stderr does not say %q:\n%s", tc.mention, r.stderr)
			}
			out := r.stdout + r.stderr
			assertNoSecret(t, tc.name, out, secret)
			if tc.want == 78 {
				// The refusal is one line and shows nothing of the file.
				if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
					t.Errorf("refusal is %d lines, want 1:\n%s", n+1, r.stderr)
				}
				for _, leak := range []string{smarthostUser, "smarthost", strconv.Itoa(s.Port())} {
					if strings.Contains(out, leak) {
						t.Errorf("refusal shows %q from the config:\n%s", leak, out)
					}
				}
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages reached the smarthost; none of these commands sends one", n)
	}
}

// TestOwnConfigCannotBorrowSecrets: a caller's own config (-C) may point at
// a server of its choosing, but with the group given up first it can read
// neither the system's password_file nor run a command that does.
func TestOwnConfigCannotBorrowSecrets(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	secret := newSecret(t)
	writeFile(t, secretFile, secret+"\n", gid, 0o640)
	thief := startSmarthost(t, secret, "PLAIN")
	dir := ownedDir(t, www)
	for _, tc := range []struct{ name, pwLine string }{
		{"password_file", fmt.Sprintf("password_file = %q", secretFile)},
		{"password_command cat", fmt.Sprintf("password_command = [\"/bin/cat\", %q]", secretFile)},
		{"password_command cat config", fmt.Sprintf("password_command = [\"/bin/cat\", %q]", systemConfig)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "own.toml")
			if err := os.WriteFile(path, []byte(configFor(thief, tc.pwLine, "plain")), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chown(path, int(www.uid), int(www.gid))
			r := runAs(t, www, nil, testMessage, sendmailPath, "-C", path, "-i", "someone@example.org")
			t.Logf("%s", r)
			if r.code == 0 {
				t.Errorf("sending with a borrowed secret succeeded: %s", r)
			}
			assertNoSecret(t, "output", r.stdout+r.stderr, secret)
			for _, a := range thief.Auths() {
				if a.OK {
					t.Errorf("the caller's server saw a successful AUTH as %q", a.Username)
				}
			}
		})
	}
	if n := len(thief.Messages()); n != 0 {
		t.Errorf("the caller's server got %d messages", n)
	}
}

// ownedDir makes a directory u owns, outside the test's private temp dir
// (which u could not enter).
func ownedDir(t *testing.T, u account) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "relaymail-pkgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPasswordCommandEnvironment: password_command runs with PATH only,
// none of the caller's variables, whatever the caller sets.
func TestPasswordCommandEnvironment(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	secret := newSecret(t)
	s := startSmarthost(t, secret, "PLAIN")

	// The script and where it reports: root's, readable by the group only,
	// and a report directory the script (uid www-data) may write.
	dir, err := os.MkdirTemp("/tmp", "relaymail-pkgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	report := filepath.Join(ownedDir(t, www), "env")
	script := filepath.Join(dir, "password.sh")
	body := fmt.Sprintf("#!/bin/sh\n/usr/bin/env > %s\necho %s\n", report, secret)
	writeFile(t, script, body, gid, 0o750)
	writeFile(t, systemConfig, configFor(s, fmt.Sprintf("password_command = [%q]", script), "plain"), gid, 0o640)

	callerEnv := []string{
		"FOO_SECRET=caller-secret-value",
		"HOME=/root",
		"USER=root",
		"LOGNAME=root",
		"PATH=/tmp/evil:/usr/bin:/bin",
		"LD_PRELOAD=/tmp/evil.so",
		"RELAYMAIL_TEST_MARK=mark",
	}
	r := runAs(t, www, callerEnv, testMessage, sendmailPath, "-i", "someone@example.org")
	if r.code != 0 {
		t.Fatalf("sendmail with password_command: %s", r)
	}
	assertNoSecret(t, "output", r.stdout+r.stderr, secret)
	if m := s.WaitMessages(t, 1, 10*time.Second)[0]; m.AuthUser != smarthostUser {
		t.Errorf("message authenticated as %q, want %q", m.AuthUser, smarthostUser)
	}
	got, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("password_command did not run: %v", err)
	}
	env := strings.Fields(string(got))
	hasPath := false
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH":
			hasPath = kv == cleanPath
			if !hasPath {
				t.Errorf("password_command got %s, want %s", kv, cleanPath)
			}
		case "PWD", "SHLVL", "_", "OLDPWD":
			// Set by the shell that runs the script, not passed in.
		default:
			t.Errorf("password_command got %s from the caller", kv)
		}
	}
	if !hasPath {
		t.Errorf("password_command environment has no PATH:\n%s", got)
	}
	for _, v := range []string{"caller-secret-value", "FOO_SECRET", "/tmp/evil", "mark"} {
		if strings.Contains(string(got), v) {
			t.Errorf("password_command environment holds %q:\n%s", v, got)
		}
	}
}

// TestWorldReadableSecretRefused: a config or password_file that holds a
// password and that every user may read is refused with 78, the system's
// and a caller's own alike.
func TestWorldReadableSecretRefused(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	secret := newSecret(t)
	s := startSmarthost(t, secret, "PLAIN")
	inline := configFor(s, fmt.Sprintf("password = %q", secret), "plain")
	own := filepath.Join(ownedDir(t, www), "own.toml")

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
		argv  []string
	}{
		{"system config 0644", func(t *testing.T) {
			writeFile(t, systemConfig, inline, gid, 0o644)
		}, []string{sendmailPath, "-i", "someone@example.org"}},
		{"system password_file 0644", func(t *testing.T) {
			writeFile(t, secretFile, secret+"\n", gid, 0o644)
			writeFile(t, systemConfig, configFor(s, fmt.Sprintf("password_file = %q", secretFile), "plain"), gid, 0o640)
		}, []string{sendmailPath, "-i", "someone@example.org"}},
		{"own config 0644", func(t *testing.T) {
			if err := os.WriteFile(own, []byte(inline), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chmod(own, 0o644)
			os.Chown(own, int(www.uid), int(www.gid))
		}, []string{sendmailPath, "-C", own, "-i", "someone@example.org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			r := runAs(t, www, nil, testMessage, tc.argv...)
			t.Logf("%s", r)
			if r.code != 78 {
				t.Errorf("want exit 78, got %s", r)
			}
			if !strings.Contains(r.stderr, "readable by all users") {
				t.Errorf("refusal does not say why:\n%s", r.stderr)
			}
			assertNoSecret(t, "refusal", r.stdout+r.stderr, secret)
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages were sent with a world-readable secret", n)
	}
}

// walkFiles lists the regular files under dir (as root).
func walkFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	return files
}

// TestQueuedMessagePrivate: a message queued by one caller is group-owned,
// unreadable by other users (the caller included: the spool is not theirs
// to read), and delivered by the runner's identity (user relaymail, as the
// systemd unit runs it).
func TestQueuedMessagePrivate(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	nobody := lookupAccount(t, "nobody")
	runner := lookupAccount(t, "relaymail")
	secret := newSecret(t)
	s := startSmarthost(t, secret, "PLAIN")
	cfg := strings.Replace(configFor(s, fmt.Sprintf("password = %q", secret), "plain"), `mode = "never"`, `mode = "always"`, 1)
	writeFile(t, systemConfig, cfg, gid, 0o640)

	before := map[string]bool{}
	for _, f := range walkFiles(t, spoolDir) {
		before[f] = true
	}
	r := runAs(t, www, nil, testMessage, sendmailPath, "-i", "someone@example.org")
	if r.code != 0 {
		t.Fatalf("queueing as www-data: %s", r)
	}
	var queued []string
	for _, f := range walkFiles(t, spoolDir) {
		if !before[f] {
			queued = append(queued, f)
		}
	}
	if len(queued) == 0 {
		t.Fatalf(`mode = "always" did not queue (%d delivered at once): %s`, len(s.Messages()), r)
	}
	for _, f := range queued {
		st, err := os.Stat(f)
		if err != nil {
			continue // delivered or renamed meanwhile
		}
		if g := st.Sys().(*syscall.Stat_t).Gid; g != gid || st.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: mode %v group %d, want group relaymail (%d) and nothing for others", f, st.Mode(), g, gid)
		}
		for _, u := range []account{nobody, www} {
			if r := runAs(t, u, nil, "", "/bin/cat", f); r.code == 0 || strings.Contains(r.stdout, "hello from www-data") {
				t.Errorf("%s can read queued file %s: %s", u.name, f, r)
			}
		}
	}
	r = runAs(t, nobody, nil, "", "/usr/bin/mailq")
	t.Logf("mailq as nobody: %s", r)
	if strings.Contains(r.stdout, "hello from www-data") {
		t.Errorf("mailq shows the message body to another user:\n%s", r.stdout)
	}
	assertNoSecret(t, "mailq", r.stdout+r.stderr, secret)

	r = runAs(t, runner, nil, "", binaryPath, "-q")
	if r.code != 0 {
		t.Fatalf("relaymail -q as user relaymail: %s", r)
	}
	if m := s.WaitMessages(t, 1, 10*time.Second)[0]; m.AuthUser != smarthostUser {
		t.Errorf("queued message authenticated as %q, want %q", m.AuthUser, smarthostUser)
	}
}

// TestServiceIdentity: the systemd units run relaymail as user and group
// relaymail with NoNewPrivileges=yes; that identity reads the config
// without the setgid bit. A caller under no_new_privs does not get the
// group and is refused cleanly (exit 78), the pitfall the README names.
func TestServiceIdentity(t *testing.T) {
	gid := installed(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is missing")
	}
	secret := newSecret(t)
	s := startSmarthost(t, secret, "PLAIN")
	writeFile(t, systemConfig, configFor(s, fmt.Sprintf("password = %q", secret), "plain"), gid, 0o640)
	root := account{name: "root"}
	for _, tc := range []struct {
		user string
		want int
	}{
		{"relaymail", 0},
		{"www-data", 78},
	} {
		t.Run(tc.user, func(t *testing.T) {
			r := runAs(t, root, nil, "", "setpriv", "--no-new-privs", "--reuid", tc.user, "--regid", tc.user,
				"--clear-groups", binaryPath, "--check")
			t.Logf("%s", r)
			if r.code != tc.want {
				t.Errorf("relaymail --check as %s with no_new_privs: want exit %d, got %s", tc.user, tc.want, r)
			}
			assertNoSecret(t, "--check", r.stdout+r.stderr, secret)
		})
	}
}

// TestSMTPPersonalityAsWWWData: `sendmail -bs` (Symfony, Laravel) as
// www-data relays with the system's AUTH and shows no secret.
func TestSMTPPersonalityAsWWWData(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	secret := newSecret(t)
	s := startSmarthost(t, secret, "PLAIN")
	writeFile(t, systemConfig, configFor(s, fmt.Sprintf("password = %q", secret), "plain"), gid, 0o640)
	dialogue := "EHLO app.example.com\r\n" +
		"MAIL FROM:<app@example.com>\r\n" +
		"RCPT TO:<someone@example.org>\r\n" +
		"DATA\r\n" + testMessage + ".\r\n" +
		"QUIT\r\n"
	r := runAs(t, www, nil, dialogue, sendmailPath, "-bs")
	t.Logf("%s", r)
	if r.code != 0 || !strings.Contains(r.stdout, "221") {
		t.Fatalf("sendmail -bs as www-data: %s", r)
	}
	assertNoSecret(t, "-bs", r.stdout+r.stderr, secret)
	m := s.WaitMessages(t, 1, 10*time.Second)[0]
	if m.AuthUser != smarthostUser || m.From != "app@example.com" {
		t.Errorf("got from %q authenticated as %q, want app@example.com as %q", m.From, m.AuthUser, smarthostUser)
	}
}

// TestDeadLetterSymlinkAsWWWData: www-data, with the smarthost down and
// the queue off, cannot make the setgid sendmail write through a
// dead.letter symlink in its home: not to a file only the group may
// write, not to a new name in the spool, not to a queued body. It is
// told (exit 75), and a dead.letter of its own is its own, 0600.
func TestDeadLetterSymlinkAsWWWData(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	u, err := user.Lookup("www-data")
	if err != nil || u.HomeDir == "" || u.HomeDir == "/" {
		t.Skipf("www-data has no usable home (%v)", err)
	}
	home := u.HomeDir
	if _, err := os.Stat(home); err != nil {
		if err := os.MkdirAll(home, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(home) })
	}
	// The home must be www-data's for it to plant links there.
	st, _ := os.Stat(home)
	oldUID, oldGID := st.Sys().(*syscall.Stat_t).Uid, st.Sys().(*syscall.Stat_t).Gid
	if err := os.Chown(home, int(www.uid), int(www.gid)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chown(home, int(oldUID), int(oldGID)) })
	dead := filepath.Join(home, "dead.letter")
	if _, err := os.Lstat(dead); err == nil {
		t.Skipf("%s exists already; not touching it", dead)
	}
	t.Cleanup(func() { os.Remove(dead) })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := fmt.Sprintf("hostname = \"pkgtest.example.com\"\ndomain = \"example.com\"\nlog = \"none\"\n\n[smarthost]\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\ntimeout = \"5s\"\n\n[queue]\nmode = %%q\n", port)
	// A queued body of someone else's: queue one as nobody.
	writeFile(t, systemConfig, fmt.Sprintf(cfg, "always"), gid, 0o640)
	nobody := lookupAccount(t, "nobody")
	if r := runAs(t, nobody, nil, "Subject: nobody's\n\nnobody's mail\n", sendmailPath, "-i", "x@example.org"); r.code != 0 {
		t.Fatalf("queueing as nobody: %s", r)
	}
	bodies, _ := filepath.Glob(filepath.Join(spoolDir, "body", "*"))
	if len(bodies) == 0 {
		t.Fatal("nothing queued")
	}
	t.Cleanup(func() {
		for _, b := range bodies {
			id := filepath.Base(b)
			os.Remove(filepath.Join(spoolDir, "env", id))
			os.Remove(b)
		}
	})
	groupOnly := filepath.Join(spoolDir, "group-only.test")
	writeFile(t, groupOnly, "the group's\n", gid, 0o660)
	writeFile(t, systemConfig, fmt.Sprintf(cfg, "never"), gid, 0o640)

	sum := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "missing"
		}
		return string(b)
	}
	for _, target := range []string{groupOnly, filepath.Join(spoolDir, "env", "PLANTED"), bodies[0]} {
		before := sum(target)
		if err := os.Symlink(target, dead); err != nil {
			t.Fatal(err)
		}
		os.Lchown(dead, int(www.uid), int(www.gid))
		r := runAs(t, www, nil, testMessage, sendmailPath, "-i", "someone@example.org")
		if r.code != 75 || !strings.Contains(r.stderr, "dead.letter") {
			t.Errorf("dead.letter -> %s: want exit 75 naming dead.letter, got %s", target, r)
		}
		if after := sum(target); after != before {
			t.Errorf("%s was written through www-data's dead.letter symlink", target)
		}
		os.Remove(dead)
	}
	os.Remove(filepath.Join(spoolDir, "env", "PLANTED"))

	r := runAs(t, www, nil, testMessage, sendmailPath, "-i", "someone@example.org")
	if r.code != 75 {
		t.Errorf("no symlink: want exit 75, got %s", r)
	}
	st, err = os.Stat(dead)
	if err != nil {
		t.Fatalf("no dead.letter for www-data: %v", err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != www.uid || sys.Gid != www.gid || st.Mode().Perm() != 0o600 {
		t.Errorf("dead.letter is %v %d:%d, want 0600 www-data:www-data", st.Mode().Perm(), sys.Uid, sys.Gid)
	}
}
