package main

// End-to-end tests: the real relaymail binary, built once in TestMain,
// run with a temporary config against an in-process go-smtp smarthost.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// binary is the relaymail built for this test run.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "relaymail-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Other users (the unprivileged-caller tests) must reach the binary.
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "relaymail")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building relaymail:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// harness is one smarthost and one config pointing at it.
type harness struct {
	t      *testing.T
	dir    string
	srv    *smtptest.Server
	config string
	log    string
}

// newHarness starts a smarthost with so and writes a config for it;
// smarthost is added to [smarthost], and extra (tables) at the end. The
// queue is always the test's own: a [queue] table in extra gets its dir.
func newHarness(t *testing.T, so smtptest.Options, extra, smarthost string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), srv: smtptest.Start(t, so)}
	// An unprivileged caller must reach the config through both levels.
	os.Chmod(filepath.Dir(h.dir), 0o755)
	os.Chmod(h.dir, 0o755)
	h.log = filepath.Join(h.dir, "relaymail.log")
	os.WriteFile(h.log, nil, 0o666)
	os.Chmod(h.log, 0o666)
	tlsMode := map[smtptest.TLSMode]string{
		smtptest.TLSNone: "none", smtptest.TLSStartTLS: "starttls", smtptest.TLSImplicit: "implicit",
	}[so.TLS]
	caLine := ""
	if so.TLS != smtptest.TLSNone {
		ca := filepath.Join(h.dir, "ca.pem")
		if err := os.WriteFile(ca, h.srv.Cert().PEM, 0o644); err != nil {
			t.Fatal(err)
		}
		caLine = fmt.Sprintf("ca_file = %q", ca)
	}
	// Never the system's spool: one of the test's own.
	spool := fmt.Sprintf("[queue]\ndir = %q\n", filepath.Join(h.dir, "spool"))
	if strings.Contains(extra, "[queue]\n") {
		extra = strings.Replace(extra, "[queue]\n", spool, 1)
	} else {
		extra += "\n" + spool
	}
	cfg := fmt.Sprintf(`hostname = "relaymail.test"
domain = "example.com"
log = %q

[smarthost]
host = %q
port = %d
tls = %q
%s
timeout = "5s"
%s
[aliases]
root = "admin@example.com"
%s`, h.log, h.srv.Host(), h.srv.Port(), tlsMode, caLine, smarthost, extra)
	h.config = filepath.Join(h.dir, "relaymail.toml")
	// Readable by the unprivileged-caller tests unless it holds a secret,
	// which relaymail would refuse (SPEC §9).
	mode := os.FileMode(0o644)
	if strings.Contains(smarthost, "password") {
		mode = 0o640
	}
	if err := os.WriteFile(h.config, []byte(cfg), mode); err != nil {
		t.Fatal(err)
	}
	return h
}

// expectLog fails the test unless the log has a line matching pattern
// with the fields every delivery line carries (SPEC §8); a line about an
// attempt at a server also names the relay and the TLS version.
func (h *harness) expectLog(pattern string) {
	h.t.Helper()
	data, _ := os.ReadFile(h.log)
	re := regexp.MustCompile(pattern)
	for _, line := range strings.Split(string(data), "\n") {
		if re.MatchString(line) {
			keys := []string{"id=", "from=", "to=", "status=", "size=", "delay="}
			if regexp.MustCompile(`status=(sent|deferred)`).MatchString(line) {
				keys = append(keys, "relay=", "tls=")
			}
			for _, key := range keys {
				if !strings.Contains(line, key) {
					h.t.Errorf("log line lacks %s: %s", key, line)
				}
			}
			return
		}
	}
	h.t.Errorf("no log line matches %q in:\n%s", pattern, data)
}

// stdinKind is how the message reaches relaymail, as real callers do it.
type stdinKind string

const (
	stdinPipe   stdinKind = "pipe"          // PHP, cron, git
	stdinFile   stdinKind = "deleted file"  // bsd-mailx, mutt, atd
	stdinSocket stdinKind = "unix socket"   // nodemailer
	stdinNone   stdinKind = "terminal-less" // no stdin at all (/dev/null)
)

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// run executes the binary with argv (argv[0] as the caller passed it),
// the harness config in $RELAYMAIL_CONFIG and stdin delivered as kind.
func (h *harness) run(argv []string, stdin []byte, kind stdinKind, env ...string) result {
	h.t.Helper()
	return runBinary(h.t, argv, stdin, kind, nil, append([]string{"RELAYMAIL_CONFIG=" + h.config}, env...)...)
}

func runBinary(t *testing.T, argv []string, stdin []byte, kind stdinKind, cred *syscall.Credential, env ...string) result {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Args = argv
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent-home", noExitSleep}, env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var cleanup func()
	switch kind {
	case stdinPipe:
		cmd.Stdin = bytes.NewReader(stdin)
	case stdinFile:
		f, err := os.CreateTemp(t.TempDir(), "stdin-")
		if err != nil {
			t.Fatal(err)
		}
		f.Write(stdin)
		f.Seek(0, 0)
		os.Remove(f.Name())
		cmd.Stdin = f
		cleanup = func() { f.Close() }
	case stdinSocket:
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
		go func() {
			ours.Write(stdin)
			c, _ := net.FileConn(ours)
			if uc, ok := c.(*net.UnixConn); ok {
				uc.CloseWrite()
				defer uc.Close()
			}
			ours.Close()
		}()
		cmd.Stdin = theirs
		cleanup = func() { theirs.Close() }
	case stdinNone:
	default:
		t.Fatalf("unknown stdin kind %q", kind)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	code := waitCmd(t, cmd, fmt.Sprintf("relaymail %q", argv))
	if cleanup != nil {
		cleanup()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// waitCmd waits for the started cmd and returns its exit status; it
// kills cmd and fails the test (naming it what) after 60 s.
func waitCmd(t *testing.T, cmd *exec.Cmd, what string) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not finish within 60s", what)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// ---- the captured callers ----

// capturesDir holds the real callers' captures (testdata/clients/INDEX.md
// says what each is). They are part of the repository: a missing capture
// is a failure, never a silent skip.
const capturesDir = "testdata/clients"

// capture is one recorded invocation of sendmail by a real program.
type capture struct {
	name  string // "php/001"
	argv  []string
	stdin []byte
	kind  stdinKind
	uid   int
}

func loadCaptures(t *testing.T) []capture {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(capturesDir, "*", "[0-9][0-9][0-9]"))
	if len(dirs) == 0 {
		t.Fatalf("no captures under %s: the replay needs the repository's testdata", capturesDir)
	}
	var out []capture
	for _, d := range dirs {
		rel, _ := filepath.Rel(capturesDir, d)
		c := capture{name: filepath.ToSlash(rel), kind: stdinPipe}
		argv, err := os.ReadFile(filepath.Join(d, "argv.nul"))
		if err != nil {
			t.Fatal(err)
		}
		c.argv = strings.Split(strings.TrimSuffix(string(argv), "\x00"), "\x00")
		if c.stdin, err = os.ReadFile(filepath.Join(d, "stdin.eml")); err != nil {
			t.Fatal(err)
		}
		info, _ := os.ReadFile(filepath.Join(d, "caller.txt"))
		switch {
		case bytes.Contains(info, []byte("stdin=regular file")):
			c.kind = stdinFile
		case bytes.Contains(info, []byte("stdin=unix socket")):
			c.kind = stdinSocket
		}
		if m := regexp.MustCompile(`(?m)^uid=(\d+)`).FindSubmatch(info); m != nil && string(m[1]) != "0" {
			c.uid = 65534 // an unprivileged user, as the capture's caller was
		}
		out = append(out, c)
	}
	return out
}

// TestCapturedCallers replays every capture in testdata/clients
// through the real binary, with the caller's argv and kind of stdin, and
// compares what the smarthost received with testdata/callers/NAME.golden.
func TestCapturedCallers(t *testing.T) {
	t.Parallel()
	for _, c := range loadCaptures(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if isSMTPPersonality(c.argv) {
				// The client's side of the captured dialogue, replayed.
				c.stdin = transcriptInput(t, c)
			}
			h := newHarness(t, smtptest.Options{}, "", "")
			var res result
			if c.uid != 0 {
				if os.Getuid() != 0 {
					t.Skip("needs root to run as another user")
				}
				res = runBinary(t, c.argv, c.stdin, c.kind, &syscall.Credential{Uid: 65534, Gid: 65534},
					"RELAYMAIL_CONFIG="+h.config)
			} else {
				res = h.run(c.argv, c.stdin, c.kind)
			}
			got := describe(res, h.srv.Messages(), c.stdin)
			if res.code == 0 {
				h.expectLog(`status=sent`)
			}
			compareGolden(t, filepath.Join("testdata", "callers", strings.ReplaceAll(c.name, "/", "-")+".golden"), got)
		})
	}
}

// transcriptInput rebuilds what a -bs caller wrote: the C: lines of
// smtp-transcript.txt, with the captured DATA payload in its place.
func transcriptInput(t *testing.T, c capture) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(capturesDir, c.name, "smtp-transcript.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, line := range strings.Split(string(text), "\n") {
		rest, ok := strings.CutPrefix(line, "C: ")
		switch {
		case !ok:
		case strings.HasPrefix(rest, "(DATA "):
			in.Write(c.stdin) // still dot-stuffed, as captured
			in.WriteString(".\r\n")
		default:
			cmd, err := strconv.Unquote(rest)
			if err != nil {
				t.Fatalf("transcript line %q: %v", line, err)
			}
			in.WriteString(cmd)
		}
	}
	return in.Bytes()
}

func isSMTPPersonality(argv []string) bool {
	for _, a := range argv[1:] {
		if a == "-bs" {
			return true
		}
	}
	return false
}

// describe renders a run and what the smarthost got, with the Date and
// Message-ID that relaymail generated masked (they change every run).
func describe(res result, msgs []smtptest.Message, input []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit: %d\n", res.code)
	fmt.Fprintf(&b, "stdout: %q\n", queueIDs.ReplaceAllString(res.stdout, "queued as <id>"))
	fmt.Fprintf(&b, "stderr: %q\n", res.stderr)
	for i, m := range msgs {
		fmt.Fprintf(&b, "--- message %d\n", i+1)
		fmt.Fprintf(&b, "MAIL FROM:<%s>%s\n", m.From, mailParams(m))
		for j, to := range m.To {
			notify := ""
			if n := m.RcptOptions[j].Notify; len(n) > 0 {
				notify = fmt.Sprintf(" NOTIFY=%v", n)
			}
			fmt.Fprintf(&b, "RCPT TO:<%s>%s\n", to, notify)
		}
		b.WriteString("DATA\n")
		b.Write(maskGenerated(m.Data, input))
	}
	return b.String()
}

func mailParams(m smtptest.Message) string {
	var p []string
	o := m.MailOptions
	if o.Body != "" {
		p = append(p, "BODY="+string(o.Body))
	}
	if o.Size != 0 {
		p = append(p, "SIZE=<set>")
	}
	if o.UTF8 {
		p = append(p, "SMTPUTF8")
	}
	if o.Return != "" {
		p = append(p, "RET="+string(o.Return))
	}
	if o.EnvelopeID != "" {
		p = append(p, "ENVID="+o.EnvelopeID)
	}
	if len(p) == 0 {
		return ""
	}
	return " " + strings.Join(p, " ")
}

var (
	queueIDs = regexp.MustCompile(`queued as [0-9A-Z]+`)
	dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r\n`)
	msgIDRe  = regexp.MustCompile(`(?m)^Message-ID: <[^@>]+@relaymail\.test>\r\n`)
)

// maskGenerated hides the Date and Message-ID values relaymail added (it
// adds them only when the input had none).
func maskGenerated(data, input []byte) []byte {
	head := bytes.ToLower(input)
	if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i]
	}
	if !bytes.Contains(head, []byte("\ndate:")) && !bytes.HasPrefix(head, []byte("date:")) {
		data = dateLine.ReplaceAll(data, []byte("Date: <generated>\r\n"))
	}
	data = msgIDRe.ReplaceAll(data, []byte("Message-ID: <generated@relaymail.test>\r\n"))
	return data
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
