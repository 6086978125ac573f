package peers

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// postfix is one unpacked Postfix, configured in its own directory. It
// relays everything to an in-process recording server (next), so what it
// passed on can be compared byte for byte; mail for the UTF-8 domain goes
// to a second one (nextUTF8) that does not offer DSN: Postfix passes an
// RFC 6533 "utf-8" ORCPT on to a next hop with DSN, which go-smtp refuses
// as malformed.
type postfix struct {
	root, dir string
	// submission (STARTTLS, AUTH) and smtps (implicit TLS, AUTH) ports.
	submission, smtps int
	next, nextUTF8    *smtptest.Server
	stopMaster        func()
}

const (
	postfixUser = "alice"
	postfixPass = "s3cret-pf"
	// postfixRefused is rejected by a check_recipient_access map (5xx),
	// postfixLater answered 450 by the same map: a policy's 4xx.
	postfixRefused = "refused@example.net"
	postfixLater   = "later@example.net"
	postfixLimit   = 22 << 20
)

// startPostfix writes a config (main.cf, master.cf, Cyrus SASL with a
// sasldb, a recipient map, the queue directories) and starts master.
func startPostfix(t *testing.T) *postfix {
	root := filepath.Join(peersDir(t), "root")
	if _, err := os.Stat(filepath.Join(root, "usr/lib/postfix/sbin/master")); err != nil {
		t.Skipf("postfix not unpacked under %s (run peers/install): %v", root, err)
	}
	pf := &postfix{root: root, dir: worldDir(t), submission: freePort(t), smtps: freePort(t)}
	pf.next = smtptest.Start(t, smtptest.Options{DSN: true, SMTPUTF8: true, SkipLeakCheck: true})
	pf.nextUTF8 = smtptest.Start(t, smtptest.Options{SMTPUTF8: true, SkipLeakCheck: true})
	etc := filepath.Join(pf.dir, "etc")
	for _, d := range []string{"etc", "etc/sasl", "data", "spool"} {
		os.MkdirAll(filepath.Join(pf.dir, d), 0o755)
	}
	chown(t, filepath.Join(pf.dir, "data"), "nobody", "")
	cert, key := keyPair(t, etc)
	chown(t, key, "nobody", "")
	writeFile(t, filepath.Join(etc, "main.cf"), []byte(fmt.Sprintf(`compatibility_level = 3.6
config_directory = %[1]s/etc
meta_directory = %[1]s/etc
queue_directory = %[1]s/spool
data_directory = %[1]s/data
daemon_directory = %[2]s/usr/lib/postfix/sbin
command_directory = %[2]s/usr/sbin
shlib_directory = %[2]s/usr/lib/postfix
mail_owner = nobody
setgid_group = mail
default_privs = daemon
import_environment = LD_LIBRARY_PATH MAIL_CONFIG TZ
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydestination =
mynetworks = 127.0.0.1/32
local_header_rewrite_clients =
relayhost = [127.0.0.1]:%[3]d
transport_maps = texthash:%[1]s/etc/transport
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
smtpd_tls_cert_file = %[4]s
smtpd_tls_key_file = %[5]s
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = %[1]s/etc/sasl
smtpd_sasl_local_domain = postfix.test
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access texthash:%[1]s/etc/recipients
message_size_limit = %[6]d
`, pf.dir, root, pf.next.Port(), cert, key, postfixLimit)), 0o644)
	services := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes
127.0.0.1:%d inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes
`, pf.submission, pf.smtps)
	writeFile(t, filepath.Join(etc, "master.cf"), []byte(services+`pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`), 0o644)
	writeFile(t, filepath.Join(etc, "recipients"), []byte(
		postfixRefused+" REJECT 5.1.1 no such user here\n"+
			postfixLater+" 450 4.2.1 try again later (policy)\n"), 0o644)
	writeFile(t, filepath.Join(etc, "transport"), []byte(fmt.Sprintf("%s smtp:[127.0.0.1]:%d\n", utf8Domain, pf.nextUTF8.Port())), 0o644)
	sasldb := filepath.Join(etc, "sasldb2")
	writeFile(t, filepath.Join(etc, "sasl/smtpd.conf"), []byte(
		"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN CRAM-MD5\nsasldb_path: "+sasldb+"\n"), 0o644)
	saslpasswd := exec.Command(filepath.Join(root, "usr/sbin/saslpasswd2"), "-f", sasldb, "-p", "-c", "-u", "postfix.test", postfixUser)
	saslpasswd.Stdin = strings.NewReader(postfixPass)
	if out, err := saslpasswd.CombinedOutput(); err != nil {
		t.Skipf("Cyrus SASL: saslpasswd2 cannot make a sasldb here (%v: %s); Postfix's AUTH cases cannot run", err, out)
	}
	chown(t, sasldb, "nobody", "")
	// The queue directories as postfix-script would make them: the
	// daemons' (nobody) 0700; maildrop and public with the setgid group.
	spool := filepath.Join(pf.dir, "spool")
	for _, d := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		os.Mkdir(filepath.Join(spool, d), 0o700)
		chown(t, filepath.Join(spool, d), "nobody", "")
	}
	os.Mkdir(filepath.Join(spool, "pid"), 0o755)
	os.Mkdir(filepath.Join(spool, "maildrop"), 0o730)
	os.Mkdir(filepath.Join(spool, "public"), 0o710)
	chown(t, filepath.Join(spool, "maildrop"), "nobody", "mail")
	chown(t, filepath.Join(spool, "public"), "nobody", "mail")
	os.Chmod(filepath.Join(spool, "maildrop"), 0o730)
	os.Chmod(filepath.Join(spool, "public"), 0o710)
	pf.start(t)
	return pf
}

// start runs master in the foreground (-d), stopped by PID at the end.
func (pf *postfix) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pf.root, "usr/lib/postfix/sbin/master"), "-c", filepath.Join(pf.dir, "etc"), "-d")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=" + filepath.Join(pf.root, "usr/lib/postfix"),
		"MAIL_CONFIG=" + filepath.Join(pf.dir, "etc"), "TZ=UTC"}
	out, _ := os.Create(filepath.Join(pf.dir, "master.out"))
	cmd.Stdout, cmd.Stderr = out, out
	pf.stopMaster = startDaemon(t, cmd)
	waitPort(t, pf.submission, cmd, filepath.Join(pf.dir, "master.out"), filepath.Join(pf.dir, "maillog"))
	waitPort(t, pf.smtps, cmd)
}

// stop ends master and its children (SIGTERM to its process group).
func (pf *postfix) stop(t *testing.T) {
	t.Helper()
	pf.stopMaster()
}

func (pf *postfix) peer() *peer {
	return &peer{
		name: "Postfix", port: pf.submission, ca: filepath.Join(pf.dir, "etc/cert.pem"),
		user: postfixUser, pass: postfixPass, mechs: []string{"PLAIN", "LOGIN", "CRAM-MD5"},
		refused: postfixRefused, sizeLimit: postfixLimit, dsn: true, smtputf8: true,
		received: func(t *testing.T, tag string, n int) []delivered {
			return recorded(t, []*smtptest.Server{pf.next, pf.nextUTF8}, tag, n, "Received")
		},
	}
}

// recorded waits until the messages next recorded with tag in their
// Subject reached n recipients in all, then returns them with the header
// fields the peer put in front (names) removed.
func recorded(t *testing.T, next []*smtptest.Server, tag string, n int, names ...string) []delivered {
	t.Helper()
	return awaitRecipients(t, "the next hop", tag, n, func() []delivered {
		var got []delivered
		for _, s := range next {
			for _, m := range s.Messages() {
				if !bytes.Contains(m.Data, []byte("Subject: peers "+tag+"\r\n")) {
					continue
				}
				d := delivered{from: m.From, to: m.To, data: stripAdded(m.Data, names...), ret: string(m.MailOptions.Return)}
				for _, o := range m.RcptOptions {
					for _, n := range o.Notify {
						d.notify = append(d.notify, string(n))
					}
				}
				got = append(got, d)
			}
		}
		return got
	})
}

// TestPostfix runs the shared cases against Postfix's submission port,
// then what only Postfix is set up for here: SMTPS, a policy's 450, and
// Postfix stopped while messages wait.
func TestPostfix(t *testing.T) {
	pf := startPostfix(t)
	p := pf.peer()
	t.Run("cases", func(t *testing.T) { runCases(t, p) })

	t.Run("SMTPS", func(t *testing.T) {
		dir := t.TempDir()
		tag := fmt.Sprintf("postfix-smtps-%d", time.Now().UnixNano())
		in := []byte(header(tag, "ann@example.org") + "implicit TLS\n")
		r := relaymail(t, configFor(t, p, dir, conn{tls: "implicit", port: pf.smtps}), in, "-i", "ann@example.org")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		got := p.received(t, tag, 1)
		if len(got) != 1 || !bytes.Equal(got[0].data, crlf(in)) {
			t.Errorf("delivered %d messages, not the one sent", len(got))
		}
	})

	t.Run("policy 450", func(t *testing.T) {
		dir := t.TempDir()
		tag := fmt.Sprintf("postfix-450-%d", time.Now().UnixNano())
		in := []byte(header(tag, "ann@example.org") + "one deferred\n")
		config := configFor(t, p, dir, conn{})
		r := relaymail(t, config, in, "-i", "ann@example.org", postfixLater)
		r.logFile = filepath.Join(dir, "relaymail.log")
		// The recipient the policy defers waits in the queue; the other
		// has it: exit 0, nothing on stderr (SPEC §6).
		if r.code != 0 {
			t.Fatalf("exit %d, want 0 (queued for %s): %s", r.code, postfixLater, r.stderr)
		}
		p.received(t, tag, 1)
		log := readLog(t, r)
		if !strings.Contains(log, "code=450") {
			t.Errorf("log does not record the policy's 450:\n%s", log)
		}
		q := relaymail(t, config, nil, "-bp")
		if !strings.Contains(q.stdout, postfixLater) || strings.Contains(q.stdout, "ann@example.org") {
			t.Errorf("mailq should list only %s waiting:\n%s", postfixLater, q.stdout)
		}
	})

	t.Run("stopped while messages wait", func(t *testing.T) {
		dir := t.TempDir()
		config := configFor(t, p, dir, conn{})
		pf.stop(t)
		var tags []string
		for i := range 3 {
			tag := fmt.Sprintf("postfix-down-%d-%d", i, time.Now().UnixNano())
			tags = append(tags, tag)
			r := relaymail(t, config, []byte(header(tag, "ann@example.org")+"waited\n"), "-i", "ann@example.org")
			if r.code != 0 {
				t.Fatalf("with Postfix down: exit %d, want 0 (queued): %s", r.code, r.stderr)
			}
		}
		if q := relaymail(t, config, nil, "-bp"); strings.Count(q.stdout, "ann@example.org") != 3 {
			t.Fatalf("mailq with Postfix down should list 3 messages:\n%s", q.stdout)
		}
		pf.start(t)
		if r := relaymail(t, config, nil, "-q"); r.code != 0 {
			t.Fatalf("-q: exit %d: %s", r.code, r.stderr)
		}
		for _, tag := range tags {
			if got := p.received(t, tag, 1); len(got) != 1 {
				t.Errorf("%s arrived %d times", tag, len(got))
			}
		}
		if q := relaymail(t, config, nil, "-bp"); !strings.Contains(q.stdout, "Mail queue is empty") {
			t.Errorf("queue not drained:\n%s", q.stdout)
		}
		// Nothing doubled later either: another run finds nothing to send.
		relaymail(t, config, nil, "-q")
		time.Sleep(time.Second)
		for _, tag := range tags {
			if got := p.received(t, tag, 1); len(got) != 1 {
				t.Errorf("%s arrived %d times after a second -q", tag, len(got))
			}
		}
	})
}
