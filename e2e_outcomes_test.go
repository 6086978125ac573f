package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

const simpleMail = "Subject: test\n\nhello\n"

// deadLetterMu serializes the tests that watch dead.letter: there is one
// for every test process (the passwd home of the user running the tests,
// which relaymail trusts and $HOME cannot move), and a parallel test's
// entry would land in another's view.
var deadLetterMu sync.Mutex

// deadLetter watches the caller's dead.letter (in the passwd home of the
// user running the tests) and puts it back as it was afterwards. It holds
// deadLetterMu until the test ends.
func deadLetter(t *testing.T) func() string {
	t.Helper()
	deadLetterMu.Lock()
	t.Cleanup(deadLetterMu.Unlock)
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		t.Skip("no passwd home for the test user")
	}
	path := filepath.Join(u.HomeDir, "dead.letter")
	before, err := os.ReadFile(path)
	existed := err == nil
	t.Cleanup(func() {
		if existed {
			os.WriteFile(path, before, 0o600)
		} else {
			os.Remove(path)
		}
	})
	return func() string {
		now, _ := os.ReadFile(path)
		if len(now) < len(before) {
			return string(now)
		}
		return string(now[len(before):])
	}
}

// Where an outcome leaves a message that did not reach every recipient.
const (
	keptNowhere = ""
	keptQueue   = "queue"  // in the queue, delivered by the next -q
	keptFailed  = "failed" // in the queue's failed/
	keptDead    = "dead"   // appended to dead.letter
)

// TestOutcomes checks each row of SPEC §6 that a smarthost can cause:
// exit status, the one stderr line, what the server got, and where a
// message that did not go is kept; a queued one is then delivered by
// relaymail -q, exactly once.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	const never = "[queue]\nmode = \"never\"\n"
	tests := []struct {
		name     string
		server   smtptest.Options
		inject   func(*smtptest.Server)
		extra    string // config tables
		args     []string
		wantCode int
		wantErr  string // regexp the stderr must match ("" = empty stderr)
		wantTo   []string
		kept     string
		later    []string // with keptQueue: who gets it from -q
	}{
		{
			name:     "delivered",
			args:     []string{"a@example.com", "b@example.com"},
			wantCode: 0, wantTo: []string{"a@example.com", "b@example.com"},
		},
		{
			name: "one recipient refused, the other still gets it",
			inject: func(s *smtptest.Server) {
				s.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no such user"))
			},
			args:     []string{"bad@example.com", "good@example.com"},
			wantCode: 67, wantErr: `^relaymail: refused <bad@example.com>: 550 5\.1\.1 no such user; delivered to the 1 other recipient\n$`,
			wantTo: []string{"good@example.com"},
		},
		{
			name: "every recipient refused",
			inject: func(s *smtptest.Server) {
				s.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no such user"))
			},
			args:     []string{"bad@example.com"},
			wantCode: 67, wantErr: `refused <bad@example.com>: 550 5\.1\.1 no such user\n$`,
		},
		{
			name: "one recipient deferred: queued for it alone",
			inject: func(s *smtptest.Server) {
				s.SetRcptErr("later@example.com", smtptest.Reply(450, "4.2.1", "mailbox busy"))
			},
			args:     []string{"later@example.com", "now@example.com"},
			wantCode: 0, wantTo: []string{"now@example.com"},
			kept: keptQueue, later: []string{"later@example.com"},
		},
		{
			name: "one recipient deferred, queue off",
			inject: func(s *smtptest.Server) {
				s.SetRcptErr("later@example.com", smtptest.Reply(450, "4.2.1", "mailbox busy"))
			},
			extra:    never,
			args:     []string{"later@example.com", "now@example.com"},
			wantCode: 75, wantErr: `deferred <later@example.com>: 450 4\.2\.1 mailbox busy; delivered to the 1 other recipient \(message saved in .*dead\.letter\)\n$`,
			wantTo: []string{"now@example.com"}, kept: keptDead,
		},
		{
			name: "message refused at MAIL: kept in failed/",
			inject: func(s *smtptest.Server) {
				s.SetMailErr(smtptest.Reply(553, "5.7.1", "sender rejected"))
			},
			args:     []string{"a@example.com"},
			wantCode: 69, wantErr: `MAIL FROM:<root@example.com>: 553 5\.7\.1 sender rejected \(message kept as \w+ in .*/failed\)`,
			kept: keptFailed,
		},
		{
			name: "temporary failure after the final dot: queued",
			inject: func(s *smtptest.Server) {
				s.SetDataErr(smtptest.Reply(451, "4.3.0", "try again"))
			},
			args:     []string{"a@example.com"},
			wantCode: 0, kept: keptQueue, later: []string{"a@example.com"},
		},
		{
			name: "temporary failure after the final dot, queue off",
			inject: func(s *smtptest.Server) {
				s.SetDataErr(smtptest.Reply(451, "4.3.0", "try again"))
			},
			extra:    never,
			args:     []string{"a@example.com"},
			wantCode: 75, wantErr: `451 4\.3\.0 try again.*saved in`, kept: keptDead,
		},
		{
			name:     "greeting 421: queued",
			inject:   func(s *smtptest.Server) { s.SetGreetingErr(smtptest.Reply(421, "4.3.2", "too busy")) },
			args:     []string{"a@example.com"},
			wantCode: 0, kept: keptQueue, later: []string{"a@example.com"},
		},
		{
			name:     "connection dropped mid-DATA: queued",
			inject:   func(s *smtptest.Server) { s.DropMidData() },
			args:     []string{"a@example.com"},
			wantCode: 0, kept: keptQueue, later: []string{"a@example.com"},
		},
		{
			name:     "a server that never answers: queued",
			inject:   func(s *smtptest.Server) { s.Hang() },
			args:     []string{"a@example.com"},
			wantCode: 0, kept: keptQueue, later: []string{"a@example.com"},
		},
		{
			name:     "a server that never answers, queue off",
			inject:   func(s *smtptest.Server) { s.Hang() },
			extra:    never,
			args:     []string{"a@example.com"},
			wantCode: 75, wantErr: `(?i)timeout|deadline`, kept: keptDead,
		},
		{
			name:     "message over the advertised SIZE",
			server:   smtptest.Options{MaxSize: 10},
			args:     []string{"a@example.com"},
			wantCode: 69, wantErr: `larger than the server.s limit`, kept: keptFailed,
		},
		{
			name:     "an address that needs SMTPUTF8 the smarthost lacks",
			args:     []string{"jürgen@example.com"},
			wantCode: 69, wantErr: `(?i)SMTPUTF8`, kept: keptFailed,
		},
		{
			name:     "an address that needs SMTPUTF8, offered",
			server:   smtptest.Options{SMTPUTF8: true},
			args:     []string{"jürgen@example.com"},
			wantCode: 0, wantTo: []string{"jürgen@example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dead := deadLetter(t)
			h := newHarness(t, tt.server, tt.extra, "")
			if tt.inject != nil {
				tt.inject(h.srv)
			}
			res := h.run(append([]string{"sendmail", "-i"}, tt.args...), []byte(simpleMail), stdinPipe)
			if res.code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", res.code, tt.wantCode, res.stderr)
			}
			checkStderr(t, res.stderr, tt.wantErr)
			if got := received(h.srv); strings.Join(got, ",") != strings.Join(tt.wantTo, ",") {
				t.Errorf("server got recipients %q, want %q", got, tt.wantTo)
			}
			entry := dead()
			if (tt.kept == keptDead) != (entry != "") {
				t.Errorf("dead.letter entry = %q, want one: %v", entry, tt.kept == keptDead)
			}
			if tt.kept == keptDead && !strings.Contains(entry, "\nSubject: test\n") {
				t.Errorf("dead.letter lacks the whole message: %q", entry)
			}
			queued, failed := h.spoolCount(""), h.spoolCount("failed")
			if want := tt.kept == keptQueue; (queued == 1) != want || queued > 1 {
				t.Errorf("%d messages queued, want one: %v", queued, want)
			}
			if want := tt.kept == keptFailed; (failed == 1) != want || failed > 1 {
				t.Errorf("%d messages in failed/, want one: %v", failed, want)
			}
			if tt.kept != keptQueue {
				return
			}
			h.expectLog(`status=queued`)
			mailq := h.run([]string{"mailq"}, nil, stdinNone)
			if !strings.Contains(mailq.stdout, tt.later[0]) {
				t.Errorf("mailq does not list the message for %s:\n%s", tt.later[0], mailq.stdout)
			}
			// The smarthost is back: -q delivers it, once.
			h.srv.ResetErrors()
			before := len(h.srv.Messages())
			if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 || res.stderr != "" {
				t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
			}
			msgs := h.srv.Messages()[before:]
			if len(msgs) != 1 || strings.Join(msgs[0].To, ",") != strings.Join(tt.later, ",") {
				t.Fatalf("-q delivered %+v, want one message to %q", msgs, tt.later)
			}
			if !strings.Contains(string(msgs[0].Data), "Subject: test\r\n") {
				t.Errorf("queued message lost its header: %q", msgs[0].Data)
			}
			if n := h.spoolCount(""); n != 0 {
				t.Errorf("%d messages still queued after -q", n)
			}
			if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 || len(h.srv.Messages()) != before+1 {
				t.Errorf("a second -q sent again or failed (exit %d)", res.code)
			}
		})
	}
}

// received lists every recipient the server accepted a message for.
func received(srv *smtptest.Server) []string {
	var got []string
	for _, m := range srv.Messages() {
		got = append(got, m.To...)
	}
	return got
}

// spoolCount counts the messages in the harness queue ("") or failed/.
func (h *harness) spoolCount(sub string) int {
	entries, _ := os.ReadDir(filepath.Join(h.dir, "spool", sub, "env"))
	return len(entries)
}

func checkStderr(t *testing.T, stderr, pattern string) {
	t.Helper()
	if pattern == "" {
		if stderr != "" {
			t.Errorf("stderr = %q, want nothing", stderr)
		}
		return
	}
	if !regexp.MustCompile(pattern).MatchString(stderr) {
		t.Errorf("stderr = %q, want it to match %q", stderr, pattern)
	}
	if strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr has %d lines, want one: %q", strings.Count(stderr, "\n"), stderr)
	}
}

// TestAuthAndTLS runs the smarthost with STARTTLS and implicit TLS and
// AUTH, and checks that the password shows up nowhere the caller can see.
func TestAuthAndTLS(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55word"
	users := map[string]string{"relay-user": password}
	for _, tt := range []struct {
		name     string
		opts     smtptest.Options
		auth     string
		extra    string
		wantCode int
		wantErr  string
	}{
		{"starttls plain", smtptest.Options{TLS: smtptest.TLSStartTLS, Users: users, AuthRequired: true}, "plain", "", 0, ""},
		{"implicit login", smtptest.Options{TLS: smtptest.TLSImplicit, Users: users, AuthRequired: true}, "login", "", 0, ""},
		{"starttls cram-md5", smtptest.Options{TLS: smtptest.TLSStartTLS, Users: users, AuthRequired: true}, "cram-md5", "", 0, ""},
		{"starttls auto", smtptest.Options{TLS: smtptest.TLSStartTLS, Users: users, AuthRequired: true}, "auto", "", 0, ""},
		{"wrong password, queue off: 77", smtptest.Options{TLS: smtptest.TLSStartTLS, Users: map[string]string{"relay-user": "other"}},
			"plain", "[queue]\nmode = \"never\"\n", 77, `535`},
		{"wrong password, fallback: queued", smtptest.Options{TLS: smtptest.TLSStartTLS, Users: map[string]string{"relay-user": "other"}},
			"plain", "", 0, ``},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dead := deadLetter(t)
			h := newHarness(t, tt.opts, tt.extra, fmt.Sprintf("username = \"relay-user\"\npassword = %q\nauth = %q\n", password, tt.auth))
			res := h.run([]string{"sendmail", "-v", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
			if res.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", res.code, tt.wantCode, res.stderr)
			}
			if tt.wantErr != "" && !regexp.MustCompile(tt.wantErr).MatchString(res.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, res.stderr)
			}
			if !strings.Contains(res.stderr, "STARTTLS") && tt.opts.TLS == smtptest.TLSStartTLS {
				t.Errorf("-v trace lacks STARTTLS:\n%s", res.stderr)
			}
			logData, _ := os.ReadFile(h.log)
			for what, text := range map[string]string{"stderr (-v)": res.stderr, "stdout": res.stdout, "log": string(logData), "dead.letter": dead()} {
				if strings.Contains(text, password) || strings.Contains(text, "czNjcmV0") {
					t.Errorf("the password appears in %s", what)
				}
			}
			if tt.wantCode == 0 && strings.Contains(tt.name, "queued") {
				if n := h.spoolCount(""); n != 1 {
					t.Errorf("%d messages queued, want 1", n)
				}
				h.expectLog(`status=queued code=535`)
			} else if tt.wantCode == 0 {
				m := h.srv.WaitMessages(t, 1, 60*time.Second)[0]
				if !m.TLS || m.AuthUser != "relay-user" {
					t.Errorf("delivered with TLS=%v as %q", m.TLS, m.AuthUser)
				}
				h.expectLog(`tls=TLS1\.[23] .*status=sent`)
			}
		})
	}
}

// TestFallbackHost: the smarthost is down, the [[fallback]] takes it.
func TestFallbackHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	dead := smtptest.DeadPort(t)
	// Point [smarthost] at a closed port and make the real server the fallback.
	cfg, _ := os.ReadFile(h.config)
	text := strings.Replace(string(cfg), fmt.Sprintf("port = %d", h.srv.Port()), "port = "+strconv.Itoa(dead), 1)
	text = strings.Replace(text, "[aliases]", fmt.Sprintf("[[fallback]]\nhost = %q\nport = %d\ntls = \"none\"\n\n[aliases]", h.srv.Host(), h.srv.Port()), 1)
	os.WriteFile(h.config, []byte(text), 0o644)
	res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	if len(h.srv.Messages()) != 1 {
		t.Errorf("fallback got %d messages", len(h.srv.Messages()))
	}
	h.expectLog(`status=deferred`)
	h.expectLog(`status=sent`)
}

// listenAndClose returns a loopback port nobody listens on now, for a
// listener the test starts (a dead smarthost is smtptest.DeadPort: this
// port may be taken by anyone once closed).
func listenAndClose(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestUnexpectedReply: garbage from the server is exit 76 with the queue off.
func TestUnexpectedReply(t *testing.T) {
	t.Parallel()
	addr := smtptest.StartRaw(t, func(c net.Conn) {
		io.WriteString(c, "220 ok\r\n")
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "hello? this is not SMTP\r\n")
	})
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "r.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("hostname = \"relaymail.test\"\ndomain = \"example.com\"\nlog = \"none\"\n[smarthost]\nhost = %q\nport = %s\ntls = \"none\"\ntimeout = \"5s\"\n[queue]\nmode = \"never\"\ndir = %q\n", host, port, filepath.Join(dir, "spool"))), 0o644)
	res := runBinary(t, []string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe, nil, "RELAYMAIL_CONFIG="+cfg)
	if res.code != 76 {
		t.Errorf("exit %d, want 76; stderr %q", res.code, res.stderr)
	}
	checkStderr(t, res.stderr, `not SMTP`)
}

// TestUsageAndConfigErrors: the caller's mistakes, each with its status,
// one line on stderr, and stdin read to its end.
func TestUsageAndConfigErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[smarthost]\nhost = \"x.example\"\ntsl = \"none\"\n"), 0o644)
	big := bytes.Repeat([]byte("x\n"), 1<<20) // 2 MB: more than a pipe holds
	tests := []struct {
		name    string
		argv    []string
		env     []string
		stdin   []byte
		code    int
		wantErr string
	}{
		{"no recipients", []string{"sendmail", "-i"}, nil, big, 64, `no recipients`},
		{"line break in -f", []string{"sendmail", "-f", "a@x\nRCPT TO:<evil@x>", "b@example.com"}, nil, big, 64, `line break`},
		{"unsupported -bt", []string{"sendmail", "-bt"}, nil, big, 64, `-bt`},
		{"bad address in To with -t", []string{"sendmail", "-t"}, nil, []byte("To: <<broken\n\nx\n"), 65, `To`},
		{"8 MB of header", []string{"sendmail", "-i", "a@example.com"}, nil,
			append([]byte("Subject: x\n"), bytes.Repeat([]byte("X-Long: "+strings.Repeat("y", 70)+"\n"), 8<<20/80)...), 65, `header`},
		{"unknown config key", []string{"sendmail", "-C", bad, "a@example.com"}, nil, big, 78, `bad\.toml:3:1: .*tsl`},
		{"missing config", []string{"sendmail", "a@example.com"}, []string{"RELAYMAIL_CONFIG=/nonexistent/relaymail.toml"}, big, 78, `/nonexistent/relaymail\.toml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = []string{"RELAYMAIL_CONFIG=" + h.config}
			}
			cmd := exec.Command(binary)
			cmd.Args = tt.argv
			cmd.Env = append([]string{"PATH=/usr/bin:/bin", noExitSleep}, env...)
			stdin, _ := cmd.StdinPipe()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// A writer that is cut off (EPIPE) would lose its mail: every
			// byte must be taken.
			_, werr := stdin.Write(tt.stdin)
			stdin.Close()
			cmd.Wait()
			if werr != nil {
				t.Errorf("writing stdin: %v (relaymail stopped reading)", werr)
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr.String())
			}
			checkStderr(t, stderr.String(), tt.wantErr)
		})
	}
	if n := len(h.srv.Messages()); n != 0 {
		t.Errorf("the server got %d messages", n)
	}
}

// TestInformationalModes: --version, -d0.1, -bi, mailq, -bv, --dry-run.
func TestInformationalModes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	tests := []struct {
		name  string
		argv  []string
		stdin string
		want  string // regexp for stdout
	}{
		{"version", []string{"sendmail", "--version"}, "", `^relaymail \S+( \([0-9a-f]{12}(\+modified)?( \S+)?\))?\n$`},
		{"-d0.1 probe", []string{"/usr/sbin/sendmail", "-d0.1", "-bv", "root"}, "", `^relaymail `},
		{"newaliases", []string{"newaliases"}, "", `^$`},
		{"-bi", []string{"sendmail", "-bi"}, "", `^$`},
		{"mailq", []string{"/usr/bin/mailq"}, "", `Mail queue is empty`},
		{"-bp", []string{"sendmail", "-bp"}, "", `Mail queue is empty`},
		{"-bv alias", []string{"sendmail", "-bv", "root", "bob", "x@example.org"}, "",
			`root -> admin@example.com[\s\S]*bob -> bob@example\.com[\s\S]*x@example\.org`},
		{"dry run", []string{"sendmail", "--dry-run", "-t", "-i"}, "To: root, .dot@example.com\nBcc: hidden@example.com\n\n.leading dot\n",
			`^MAIL FROM:<root@example\.com>\r\nRCPT TO:<admin@example\.com>\r\nRCPT TO:<\.dot@example\.com>\r\nRCPT TO:<hidden@example\.com>\r\nDATA\r\nTo: root@example\.com, \.dot@example\.com\r\nDate: .*\r\nMessage-ID: <.*@relaymail\.test>\r\nFrom: .*<root@example\.com>\r\n\r\n\.\.leading dot\r\n\.\r\n$`},
		{"help", []string{"sendmail", "--help"}, "", `usage: sendmail`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.run(tt.argv, []byte(tt.stdin), stdinPipe)
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			if !regexp.MustCompile(tt.want).MatchString(res.stdout) {
				t.Errorf("stdout = %q, want %q", res.stdout, tt.want)
			}
		})
	}
	if n := len(h.srv.Messages()); n != 0 {
		t.Errorf("informational modes sent %d messages", n)
	}
}

// TestCheck: --check shows the capabilities and the TLS certificate.
func TestCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{TLS: smtptest.TLSStartTLS, Users: map[string]string{"u": "pw-123456"}},
		"", "username = \"u\"\npassword = \"pw-123456\"\n")
	res := h.run([]string{"sendmail", "--check"}, nil, stdinNone)
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"capability: PIPELINING", "tls: TLS 1.3", "sha256: ", "auth: accepted for u"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("--check output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout+res.stderr, "pw-123456") {
		t.Error("--check shows the password")
	}
}
