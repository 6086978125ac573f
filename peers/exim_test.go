package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"relaymail/internal/smtptest"
)

const (
	eximUser    = "alice"
	eximPass    = "s3cret-exim"
	eximRefused = "refused@example.net"
	eximLimit   = 22 << 20
)

// TestExim runs the shared cases against Exim 4 from Debian, unpacked, with
// a config of its own: STARTTLS, AUTH PLAIN, LOGIN and CRAM-MD5 with fixed
// test credentials (plaintext and cram_md5 authenticators), DSN, SMTPUTF8,
// a size limit and an ACL refusing one recipient. It relays to recording
// servers, as Postfix does (the UTF-8 domain to one without DSN).
//
// Exim looks its compiled-in user, Debian-exim, up before it reads any
// config; that user exists only where the package was installed. Rather
// than add it to the machine, Exim runs in a mount namespace of its own
// (unshare -m) where /etc/passwd and /etc/group are copies with
// Debian-exim mapped to nobody's ids.
func TestExim(t *testing.T) {
	root := filepath.Join(peersDir(t), "root")
	exim := filepath.Join(root, "usr/sbin/exim4")
	if _, err := os.Stat(exim); err != nil {
		t.Skipf("exim not unpacked under %s (run peers/install): %v", root, err)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is missing: Exim's Debian-exim user cannot be provided without adding it to the machine")
	}
	dir := worldDir(t)
	next := smtptest.Start(t, smtptest.Options{DSN: true, SMTPUTF8: true, SkipLeakCheck: true})
	nextUTF8 := smtptest.Start(t, smtptest.Options{SMTPUTF8: true, SkipLeakCheck: true})
	port := freePort(t)
	for _, d := range []string{"spool", "log"} {
		os.Mkdir(filepath.Join(dir, d), 0o750)
		chown(t, filepath.Join(dir, d), "nobody", "")
	}
	cert, key := keyPair(t, dir)
	chown(t, key, "nobody", "")
	passwd, _ := os.ReadFile("/etc/passwd")
	group, _ := os.ReadFile("/etc/group")
	writeFile(t, filepath.Join(dir, "passwd"), append(passwd, "Debian-exim:x:65534:65534:exim under test:/nonexistent:/usr/sbin/nologin\n"...), 0o644)
	writeFile(t, filepath.Join(dir, "group"), append(group, "Debian-exim:x:65534:\n"...), 0o644)
	conf := filepath.Join(dir, "exim.conf")
	writeFile(t, conf, []byte(fmt.Sprintf(`primary_hostname = exim.test
exim_path = %[2]s
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
pid_file_path = %[1]s/exim.pid
notifier_socket = %[1]s/notify
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = %[3]d
acl_smtp_rcpt = acl_rcpt
dsn_advertise_hosts = *
smtputf8_advertise_hosts = *
message_size_limit = %[8]d
tls_advertise_hosts = *
tls_certificate = %[4]s
tls_privatekey = %[5]s
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}

begin acl
acl_rcpt:
  deny recipients = %[9]s
       message = no such user here
  accept authenticated = *
  deny message = relay not permitted

begin routers
utf8:
  driver = manualroute
  domains = %[11]s
  route_list = * 127.0.0.1
  transport = next_utf8
  self = send
next:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = next_smtp
  self = send

begin transports
next_smtp:
  driver = smtp
  port = %[6]d
  allow_localhost
next_utf8:
  driver = smtp
  port = %[7]d
  allow_localhost

begin retry
* * F,1m,5s

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{%[10]s}}{eq{$auth3}{%[12]s}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and{{eq{$auth1}{%[10]s}}{eq{$auth2}{%[12]s}}}}
  server_set_id = $auth1
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{%[10]s}{%[12]s}fail}
  server_set_id = $auth1
`, dir, exim, port, cert, key, next.Port(), nextUTF8.Port(), eximLimit, eximRefused, eximUser, utf8Domain, eximPass)), 0o644)
	cmd := exec.Command(unshare, "-m", "sh", "-c",
		`mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group && exec "$2" -C "$1/exim.conf" -bdf -q5s`,
		"sh", dir, exim)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TZ=UTC"}
	out, _ := os.Create(filepath.Join(dir, "exim.out"))
	cmd.Stdout, cmd.Stderr = out, out
	startDaemon(t, cmd)
	waitPort(t, port, cmd, filepath.Join(dir, "exim.out"), filepath.Join(dir, "log/mainlog"), filepath.Join(dir, "log/paniclog"))

	p := &peer{
		name: "Exim", port: port, ca: cert, user: eximUser, pass: eximPass,
		mechs: []string{"PLAIN", "LOGIN", "CRAM-MD5"}, refused: eximRefused,
		sizeLimit: eximLimit, dsn: true, smtputf8: true,
		received: func(t *testing.T, tag string, n int) []delivered {
			return recorded(t, []*smtptest.Server{next, nextUTF8}, tag, n, "Received")
		},
	}
	runCases(t, p)
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(dir, "log/mainlog"))
		t.Logf("exim mainlog:\n%s", b)
	}
}
