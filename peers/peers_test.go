// Package peers runs the real relaymail binary against real smarthosts
// that nobody on this project wrote: Postfix 3.7 and Exim 4 from Debian's
// packages, unpacked (never installed) by peers/install, and Mailpit built
// from its Go module. Each test starts its peer on free loopback ports with
// a config, spool and certificate of its own, and stops it by PID.
//
// The same table of cases (cases_test.go) runs against every peer and each
// peer logs its case table; a case the peer cannot serve is skipped with
// the reason. Without the peers installed (RELAYMAIL_PEERS unset) every
// test skips, saying how to install them: `make peers`.
package peers

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// binary is relaymail, built once for the run; empty when the peers are
// not installed.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv("RELAYMAIL_PEERS") == "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "relaymail-peers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "relaymail")
	// Static, like the packages and the container ship it. No -race: the
	// point is what real servers make of it, and 20 MB under the race
	// detector would cost minutes on a loaded machine.
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building relaymail:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// peersDir is where peers/install put the peers, or a skip saying how to
// get them.
func peersDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RELAYMAIL_PEERS")
	if dir == "" {
		t.Skip("real smarthosts not installed: run `make peers` (as root), which installs them " +
			"under /var/cache/relaymail-peers and runs these tests with RELAYMAIL_PEERS set")
	}
	if os.Geteuid() != 0 {
		t.Skip("the peers run as root (their daemons drop to nobody themselves)")
	}
	return dir
}

// freePort returns a loopback port nothing listens on now. The peer binds
// it a moment later; a collision fails the peer's start loudly.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something answers on port, or the peer's process
// has exited, or a generous bound passed (the machine is loaded).
func waitPort(t *testing.T, port int, cmd *exec.Cmd, logs ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		t.Logf("%s:\n%s", l, b)
	}
	t.Fatalf("%s: nothing listens on 127.0.0.1:%d", cmd.Path, port)
}

// startDaemon starts cmd in a process group of its own and returns what
// stops it: SIGTERM to that group (by the PID it started), SIGKILL after
// a generous wait, then reaping it. The stop also runs at the end of the
// test; running it twice is harmless.
func startDaemon(t *testing.T, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			// Children that left the group are the daemon's own business;
			// those in it are gone with it.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		})
	}
	t.Cleanup(stop)
	return stop
}

// chown gives name to user (and group, when not "") by name.
func chown(t *testing.T, name, user, group string) {
	t.Helper()
	u, err := osuser.Lookup(user)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid := -1
	if group != "" {
		g, err := osuser.LookupGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(name, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// keyPair writes a fresh certificate for localhost and 127.0.0.1 with its
// key into dir: cert.pem (also the CA file relaymail trusts) and key.pem.
func keyPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	c := smtptest.NewCert(t, "localhost", "127.0.0.1")
	key, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, c.PEM, 0o644)
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	return certFile, keyFile
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

// worldDir is a temporary directory the peers' unprivileged processes
// (nobody) can reach: t.TempDir's parents are root's and 0700.
func worldDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return dir
}

// result is one relaymail run.
type result struct {
	code           int
	stdout, stderr string
	// logFile is relaymail's log for this run.
	logFile string
}

// relaymail runs the binary with config, args and stdin, as root: the
// caller whose home would get a dead.letter is root, so the cases never
// ask for one (no mode = "never" with a temporary failure).
func relaymail(t *testing.T, config string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Args[0] = "sendmail"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent-home", "RELAYMAIL_CONFIG=" + config}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("relaymail %q did not finish within 5 minutes", args)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// awaitRecipients calls fetch every 200 ms until the messages it returns
// (those with tag in their Subject, at where) hold n recipients in all,
// or for 3 minutes, and returns the last it got.
func awaitRecipients(t *testing.T, where, tag string, n int, fetch func() []delivered) []delivered {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := fetch()
		count := 0
		for _, d := range got {
			count += len(d.to)
		}
		if count >= n || time.Now().After(deadline) {
			if count < n {
				t.Errorf("after 3 minutes %s has %d of %d recipients of %s", where, count, n, tag)
			}
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stripAdded removes the header fields a peer puts in front of the message
// (Received:, Return-Path:, and their continuation lines), leaving what
// relaymail sent.
func stripAdded(data []byte, names ...string) []byte {
	for {
		i := bytes.IndexByte(data, ':')
		if i < 0 {
			return data
		}
		found := false
		for _, n := range names {
			if strings.EqualFold(string(data[:i]), n) {
				found = true
			}
		}
		if !found {
			return data
		}
		// Skip the field and its folded continuation lines.
		for {
			j := bytes.Index(data, []byte("\r\n"))
			if j < 0 {
				return nil
			}
			data = data[j+2:]
			if len(data) == 0 || (data[0] != ' ' && data[0] != '\t') {
				break
			}
		}
	}
}
