package main

// The setgid model (SPEC §9) with the real binary: a copy of relaymail
// installed setgid to a group of its own, run by unprivileged users whose
// passwd entries and the system config are laid over /etc in a private
// mount namespace, so that nothing on the machine changes. Root only.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// setgidWorld is one installation: the setgid binary, its group, a spool
// and the users who call it.
type setgidWorld struct {
	t      *testing.T
	dir    string
	binary string
	gid    int            // the binary's group: deliberately not named relaymail
	spool  string         // [queue] dir
	users  map[string]int // login -> uid (and gid)
	homes  map[string]string
	tmpdir string   // $TMPDIR as the callers set it: a directory only the group may write
	env    []string // more of the callers' environment
}

// Unprivileged test users, unknown to the machine's real /etc/passwd.
var setgidUsers = map[string]int{"alice": 64901, "bob": 64902}

func newSetgidWorld(t *testing.T) *setgidWorld {
	return newSetgidWorldOf(t, binary)
}

// newSetgidWorldOf installs the relaymail binary at path setgid.
func newSetgidWorldOf(t *testing.T, path string) *setgidWorld {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("setgid tests need root (to install a setgid binary and switch users)")
	}
	for _, tool := range []string{"unshare", "setpriv", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("setgid tests need %s: %v", tool, err)
		}
	}
	w := &setgidWorld{t: t, dir: t.TempDir(), users: setgidUsers, homes: map[string]string{}}
	os.Chmod(filepath.Dir(w.dir), 0o755)
	os.Chmod(w.dir, 0o755)
	w.gid = unusedGID(t)
	w.binary = filepath.Join(w.dir, "relaymail")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.binary, data, 0o755); err != nil {
		t.Fatal(err)
	}
	noErr(t, os.Chown(w.binary, 0, w.gid))
	noErr(t, os.Chmod(w.binary, 0o2755|os.ModeSetgid))
	// The spool's parent may be written by the group only, as
	// /var/spool is by root: relaymail creates the spool itself.
	parent := filepath.Join(w.dir, "var")
	noErr(t, os.Mkdir(parent, 0o770))
	noErr(t, os.Chown(parent, 0, w.gid))
	noErr(t, os.Chmod(parent, 0o770))
	w.spool = filepath.Join(parent, "spool")
	w.tmpdir = filepath.Join(w.dir, "group-tmp")
	noErr(t, os.Mkdir(w.tmpdir, 0o770))
	noErr(t, os.Chown(w.tmpdir, 0, w.gid))
	noErr(t, os.Chmod(w.tmpdir, 0o770))
	for login, uid := range w.users {
		home := filepath.Join(w.dir, "home", login)
		noErr(t, os.MkdirAll(home, 0o755))
		noErr(t, os.Chown(home, uid, uid))
		w.homes[login] = home
	}
	// Probe: can this machine lay a directory over /etc in a namespace?
	id, _ := exec.LookPath("id")
	probe := w.command("alice", "", id, []string{"-u"}, nil)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("no private mount namespace with an overlay on /etc here: %v: %s", err, out)
	}
	return w
}

// unusedGID returns a group id that /etc/group does not name.
func unusedGID(t *testing.T) int {
	data, _ := os.ReadFile("/etc/group")
	for gid := 64990; gid > 64900; gid-- {
		if !bytes.Contains(data, []byte(fmt.Sprintf(":%d:", gid))) {
			return gid
		}
	}
	t.Fatal("no free gid")
	return 0
}

// etc writes the files laid over /etc for one run: passwd with the test
// users, and relaymail.toml (mode 0640, root and the binary's group, as
// the package installs it) with config.
func (w *setgidWorld) etc(config string) string {
	upper := filepath.Join(w.t.TempDir(), "upper")
	noErr(w.t, os.Mkdir(upper, 0o755))
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		w.t.Fatal(err)
	}
	for login, uid := range w.users {
		passwd = fmt.Appendf(passwd, "%s:x:%d:%d:%s:%s:/bin/sh\n", login, uid, uid, login, w.homes[login])
	}
	noErr(w.t, os.WriteFile(filepath.Join(upper, "passwd"), passwd, 0o644))
	cfg := filepath.Join(upper, "relaymail.toml")
	noErr(w.t, os.WriteFile(cfg, []byte(config), 0o640))
	noErr(w.t, os.Chown(cfg, 0, w.gid))
	return upper
}

// command is argv run as login, in a mount namespace whose /etc has the
// overlay for config, with the environment a hostile caller might pass.
func (w *setgidWorld) command(login, config, prog string, argv []string, stdin []byte) *exec.Cmd {
	upper := w.etc(config)
	work := filepath.Join(filepath.Dir(upper), "work")
	noErr(w.t, os.Mkdir(work, 0o755))
	uid := w.users[login]
	script := `mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc || exit 99
shift 2
exec setpriv --reuid="$1" --regid="$1" --clear-groups -- "$2" "${@:3}"`
	args := append([]string{"-m", "--propagation", "private", "bash", "-c", script, "bash",
		upper, work, fmt.Sprint(uid), prog}, argv...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/root", "TMPDIR=" + w.tmpdir, noExitSleep}, w.env...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd
}

// run runs relaymail as login with config as /etc/relaymail.toml.
func (w *setgidWorld) run(login, config string, argv []string, stdin []byte) result {
	w.t.Helper()
	cmd := w.command(login, config, w.binary, argv[1:], stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	noErr(w.t, cmd.Start())
	code := waitCmd(w.t, cmd, fmt.Sprintf("relaymail %q as %s", argv, login))
	if code == 99 {
		w.t.Fatalf("the overlay on /etc failed: %s", stderr.String())
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// config is a system config for the smarthost on port, with queue mode.
func (w *setgidWorld) config(port int, mode string) string {
	return fmt.Sprintf(`hostname = "relaymail.test"
domain = "example.com"
log = "none"

[smarthost]
host = "127.0.0.1"
port = %d
tls = "none"
timeout = "5s"

[queue]
dir = %q
mode = %q
`, port, w.spool, mode)
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestSetgidQueueGroup: the first caller of a setgid relaymail whose
// group is not called relaymail creates the spool 2770 with that group,
// so that the next user can queue too (SPEC §7).
func TestSetgidQueueGroup(t *testing.T) {
	w := newSetgidWorld(t)
	down := w.config(smtptest.DeadPort(t), "always")
	for _, login := range []string{"alice", "bob"} {
		res := w.run(login, down, []string{"sendmail", "-i", "a@example.com"}, []byte("Subject: from "+login+"\n\nhi\n"))
		if res.code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", login, res.code, res.stderr)
		}
		if _, err := os.Stat(filepath.Join(w.homes[login], "dead.letter")); err == nil {
			t.Errorf("%s's message went to dead.letter", login)
		}
	}
	for _, sub := range []string{"", "tmp", "env", "body", "failed", "failed/env", "failed/body"} {
		st, err := os.Stat(filepath.Join(w.spool, sub))
		if err != nil {
			t.Fatal(err)
		}
		gid := int(st.Sys().(*syscall.Stat_t).Gid)
		if st.Mode()&(os.ModePerm|os.ModeSetgid) != 0o770|os.ModeSetgid || gid != w.gid {
			t.Errorf("spool/%s is %v group %d, want 2770 group %d", sub, st.Mode(), gid, w.gid)
		}
	}
	envs, _ := os.ReadDir(filepath.Join(w.spool, "env"))
	if len(envs) != 2 {
		t.Errorf("%d messages queued, want 2", len(envs))
	}
}

// TestSetgidDeadLetter: with the smarthost down and the queue off, the
// message goes to dead.letter in the caller's home, written without the
// group: a new one is the caller's, 0600; a dead.letter the caller made a
// symlink to a group-only file, to a new name in the spool or to another
// user's queued body is not written through. The caller is told (75).
func TestSetgidDeadLetter(t *testing.T) {
	w := newSetgidWorld(t)
	port := smtptest.DeadPort(t)
	// Bob queues a message first: his body file is a target.
	res := w.run("bob", w.config(port, "always"), []string{"sendmail", "-i", "b@example.com"}, []byte("Subject: bob's\n\nbob's mail\n"))
	if res.code != 0 {
		t.Fatalf("bob: exit %d, stderr %q", res.code, res.stderr)
	}
	bodies, _ := filepath.Glob(filepath.Join(w.spool, "body", "*"))
	if len(bodies) != 1 {
		t.Fatalf("%d bodies queued, want 1", len(bodies))
	}
	groupOnly := filepath.Join(w.dir, "group-only")
	noErr(t, os.WriteFile(groupOnly, []byte("the group's\n"), 0o660))
	noErr(t, os.Chown(groupOnly, 0, w.gid))
	noErr(t, os.Chmod(groupOnly, 0o660))

	never := w.config(port, "never")
	dead := filepath.Join(w.homes["alice"], "dead.letter")
	mail := []byte("Subject: alice's\n\nalice's mail\n")

	res = w.run("alice", never, []string{"sendmail", "-i", "a@example.com"}, mail)
	if res.code != 75 {
		t.Errorf("no symlink: exit %d, want 75; stderr %q", res.code, res.stderr)
	}
	st, err := os.Stat(dead)
	if err != nil {
		t.Fatalf("no dead.letter: %v; stderr %q", err, res.stderr)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if uid := w.users["alice"]; int(sys.Uid) != uid || int(sys.Gid) != uid || st.Mode().Perm() != 0o600 {
		t.Errorf("dead.letter is %v %d:%d, want 0600 %d:%d", st.Mode().Perm(), sys.Uid, sys.Gid, uid, uid)
	}
	if data, _ := os.ReadFile(dead); !bytes.Contains(data, []byte("alice's mail")) {
		t.Errorf("dead.letter lacks the message: %q", data)
	}
	noErr(t, os.Remove(dead))

	targets := []struct{ name, path string }{
		{"a group-only file", groupOnly},
		{"a new name in the spool", filepath.Join(w.spool, "env", "PLANTED")},
		{"bob's queued body", bodies[0]},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			var before [32]byte
			_, statErr := os.Stat(target.path)
			if statErr == nil {
				before = fileSum(t, target.path)
			}
			noErr(t, os.Symlink(target.path, dead))
			defer os.Remove(dead)
			res := w.run("alice", never, []string{"sendmail", "-i", "a@example.com"}, mail)
			if res.code != 75 {
				t.Errorf("exit %d, want 75; stderr %q", res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, "dead.letter") || !strings.Contains(res.stderr, "not") {
				t.Errorf("stderr does not say the message was not saved: %q", res.stderr)
			}
			if statErr != nil {
				if _, err := os.Lstat(target.path); err == nil {
					t.Errorf("%s was created through the symlink", target.path)
				}
			} else if fileSum(t, target.path) != before {
				t.Errorf("%s was changed through the symlink", target.path)
			}
		})
	}
	// Bob's message is still whole for a runner (one file, envelope and
	// header first: a small message is queued combined).
	if data, _ := os.ReadFile(bodies[0]); !strings.HasSuffix(string(data), "\n\nbob's mail\n") {
		t.Errorf("bob's body is now %q", data)
	}
}

// noErr fails the test at once on err.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSetgidTmpdir: a message too big for memory is spilled to a
// temporary file, never in the caller's $TMPDIR (here a directory only
// the group may write). The dynamic loader already hides $TMPDIR from a
// setgid program linked with libc; a static build (CGO_ENABLED=0, as a
// container image ships it) relies on relaymail alone, so that is what
// runs here.
func TestSetgidTmpdir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("setgid tests need root (to install a setgid binary and switch users)")
	}
	static := filepath.Join(t.TempDir(), "relaymail-static")
	build := exec.Command("go", "build", "-o", static, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	w := newSetgidWorldOf(t, static)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	noErr(t, os.Chtimes(w.tmpdir, old, old))
	big := append([]byte("Subject: big\n\n"), bytes.Repeat([]byte("padding line of a big message\n"), 20000)...)
	res := w.run("alice", w.config(smtptest.DeadPort(t), "never"), []string{"sendmail", "-i", "a@example.com"}, big)
	if res.code != 75 {
		t.Errorf("exit %d, want 75; stderr %q", res.code, res.stderr)
	}
	if st, err := os.Stat(w.tmpdir); err != nil || !st.ModTime().Equal(old) {
		t.Errorf("relaymail wrote in the caller's $TMPDIR with its group")
	}
}

// TestSetgidCallerCannotChooseRoots: the caller's SSL_CERT_FILE and
// SSL_CERT_DIR do not decide which certificates the setgid relaymail
// trusts for the system's smarthost: a smarthost whose certificate only
// the caller's file vouches for is a TLS failure (75 with the queue
// off), and nothing is sent.
func TestSetgidCallerCannotChooseRoots(t *testing.T) {
	w := newSetgidWorld(t)
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS})
	ca := filepath.Join(w.dir, "callers-ca.pem")
	noErr(t, os.WriteFile(ca, srv.Cert().PEM, 0o644))
	w.env = []string{"SSL_CERT_FILE=" + ca, "SSL_CERT_DIR=" + w.dir}
	config := strings.Replace(w.config(srv.Port(), "never"), `tls = "none"`, `tls = "starttls"`, 1)
	res := w.run("alice", config, []string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail))
	if res.code != 75 {
		t.Errorf("exit %d, want 75 (certificate not trusted); stderr %q", res.code, res.stderr)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages sent over TLS verified with the caller's roots", n)
	}
}
