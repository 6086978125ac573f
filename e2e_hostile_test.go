package main

// A hostile or broken smarthost (issue 20, issue 10 items 3, 4, 7, issue
// 19 items 2 and 3): the real binary against scripted raw servers. None of
// these may lose a message, count it as sent, send it in clear, hang the
// caller, or put raw control characters on its terminal.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// rawSMTP is a scripted smarthost: it greets, then answers each command
// with the reply configured for it (written as is, so a reply may carry
// extra lines or control characters). Empty fields get a plain success.
type rawSMTP struct {
	greet    string         // "": a 220
	ehlo     string         // reply to EHLO; "": 250 with STARTTLS
	starttls string         // reply to STARTTLS; a 220 is followed by the handshake
	cert     *smtptest.Cert // for STARTTLS
	tlsEHLO  string         // reply to EHLO after TLS; "": 250 with AUTH PLAIN
	auth     string         // reply to AUTH
	rcpt     string         // reply to RCPT
	data     string         // reply to DATA; one starting with 354 is followed by the message
	dot      string         // reply to the final dot
	// hang: after the greeting (or, when greet is "-", before it) read
	// nothing and answer nothing until the client leaves.
	hang bool

	conns atomic.Int32 // connections accepted
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// start runs the server on loopback and returns its address.
func (s *rawSMTP) start(t *testing.T) string {
	return smtptest.StartRaw(t, func(c net.Conn) {
		s.conns.Add(1)
		rc := smtptest.NewRawConn(c)
		if s.greet != "-" {
			fmt.Fprint(rc, or(s.greet, "220 mx.test ESMTP\r\n"))
		}
		if s.hang {
			rc.ReadLine() // until the client closes, or the raw server's deadline
			return
		}
		tlsUp := false
		for {
			line, err := rc.ReadLine()
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
			switch {
			case verb == "EHLO" && tlsUp:
				fmt.Fprint(rc, or(s.tlsEHLO, "250-mx.test\r\n250 AUTH PLAIN\r\n"))
			case verb == "EHLO":
				fmt.Fprint(rc, or(s.ehlo, "250-mx.test\r\n250 STARTTLS\r\n"))
			case verb == "STARTTLS":
				reply := or(s.starttls, "220 2.0.0 go ahead\r\n")
				fmt.Fprint(rc, reply)
				if strings.HasPrefix(reply, "220") {
					if rc.StartTLS(s.cert.ServerConfig()) != nil {
						return
					}
					tlsUp = true
				}
			case verb == "AUTH":
				fmt.Fprint(rc, or(s.auth, "235 2.7.0 ok\r\n"))
			case strings.HasPrefix(verb, "RCPT"):
				fmt.Fprint(rc, or(s.rcpt, "250 2.1.5 ok\r\n"))
			case verb == "DATA":
				reply := or(s.data, "354 go ahead\r\n")
				fmt.Fprint(rc, reply)
				if strings.HasPrefix(reply, "354") {
					if _, err := rc.ReadData(); err != nil {
						return
					}
					fmt.Fprint(rc, or(s.dot, "250 2.0.0 queued\r\n"))
				}
			case verb == "QUIT":
				fmt.Fprint(rc, "221 2.0.0 bye\r\n")
				return
			default: // MAIL, RSET, NOOP, HELO
				fmt.Fprint(rc, "250 2.0.0 ok\r\n")
			}
		}
	})
}

// rawHarness is a harness (config, log, spool) for a raw server at addr;
// smarthost is added to [smarthost] (tls = "none" unless it says), extra
// at the end. Its srv is nil.
func rawHarness(t *testing.T, addr, smarthost, extra string) *harness {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	h := &harness{t: t, dir: t.TempDir()}
	h.log = filepath.Join(h.dir, "relaymail.log")
	if !strings.Contains(smarthost, "tls =") {
		smarthost += "\ntls = \"none\""
	}
	spool := fmt.Sprintf("[queue]\ndir = %q\n", filepath.Join(h.dir, "spool"))
	if strings.Contains(extra, "[queue]\n") {
		extra = strings.Replace(extra, "[queue]\n", spool, 1)
	} else {
		extra += "\n" + spool
	}
	cfg := fmt.Sprintf("hostname = \"relaymail.test\"\ndomain = \"example.com\"\nlog = %q\n\n[smarthost]\nhost = %q\nport = %s\n%s\n%s",
		h.log, host, port, smarthost, extra)
	h.config = filepath.Join(h.dir, "relaymail.toml")
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// A man in the middle (or a broken server) that strips or refuses
// STARTTLS, or offers AUTH only before TLS, during a queue run: every
// message stays queued with the reason, no bounce is made, and the host
// is tried once in the pass (issue 20 item 1, issue 10 items 3, 4).
func TestQueueRunAgainstBrokenSTARTTLS(t *testing.T) {
	cert := smtptest.NewCert(t)
	tests := []struct {
		name   string
		srv    *rawSMTP
		auth   bool   // configure credentials
		reason string // in the log
		mailq  string // in mailq
	}{
		{"STARTTLS stripped", &rawSMTP{ehlo: "250-mx.test\r\n250 PIPELINING\r\n"}, false, `does not offer STARTTLS`, `does not offer STARTTLS`},
		{"STARTTLS 502", &rawSMTP{starttls: "502 5.5.1 not implemented\r\n"}, false, `code=502 dsn=5.5.1 msg="STARTTLS: not implemented"`, `STARTTLS: 502 5.5.1 not implemented`},
		{"STARTTLS 454", &rawSMTP{starttls: "454 4.7.0 TLS not available\r\n"}, false, `code=454 dsn=4.7.0 msg="STARTTLS: TLS not available"`, `STARTTLS: 454 4.7.0 TLS not available`},
		{"AUTH only before TLS", &rawSMTP{ehlo: "250-mx.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n", cert: cert,
			tlsEHLO: "250-mx.test\r\n250 PIPELINING\r\n"}, true, `only before it in clear \(offered PLAIN LOGIN\)`, `only before it in clear`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.srv.cert == nil {
				tt.srv.cert = cert
			}
			addr := tt.srv.start(t)
			sh := fmt.Sprintf("tls = \"starttls\"\nca_file = %q\ntls_server_name = \"localhost\"\ntimeout = \"10s\"", cert.WriteCAFile(t))
			if tt.auth {
				sh += "\nusername = \"relay-user\"\npassword = \"pw-123456\""
			}
			h := rawHarness(t, addr, sh, "")
			queueMessages(t, h, 10, "a@example.com")
			res := h.run([]string{"sendmail", "-q"}, nil, stdinNone)
			if res.code != 0 || res.stderr != "" {
				t.Errorf("-q: exit %d, stderr %q", res.code, res.stderr)
			}
			if q, f := h.spoolCount(""), h.spoolCount("failed"); q != 10 || f != 0 {
				t.Errorf("queued %d, failed %d; want 10 queued (no bounce), none failed", q, f)
			}
			if n := tt.srv.conns.Load(); n != 1 {
				t.Errorf("%d connections in the pass, want 1", n)
			}
			h.expectLog(`status=deferred .*` + tt.reason)
			log, _ := os.ReadFile(h.log)
			if n := strings.Count(string(log), "status=deferred"); n != 10 {
				t.Errorf("%d deferred lines, want 10:\n%s", n, log)
			}
			if strings.Contains(string(log), "status=bounced") || strings.Contains(string(log), "delivery status notification") {
				t.Errorf("a bounce was made:\n%s", log)
			}
			if mq := h.run([]string{"mailq"}, nil, stdinNone); !strings.Contains(mq.stdout, tt.mailq) {
				t.Errorf("mailq does not give the reason %q:\n%s", tt.mailq, mq.stdout)
			}
		})
	}
}

// The same failures when a caller sends: queued, exit 0 and silent; with
// the queue off, 75 with the message in dead.letter and stderr naming what
// happened, never 69 (issue 10 items 3, 4).
func TestSendAgainstBrokenPath(t *testing.T) {
	tests := []struct {
		name   string
		srv    *rawSMTP
		sh     string
		reason string
	}{
		{"STARTTLS stripped", &rawSMTP{ehlo: "250-mx.test\r\n250 PIPELINING\r\n"}, `tls = "starttls"`, `does not offer STARTTLS`},
		{"STARTTLS 502", &rawSMTP{starttls: "502 5.5.1 not implemented\r\n"}, `tls = "starttls"`, `STARTTLS: .*not implemented`},
		{"mechanism not offered", &rawSMTP{ehlo: "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n"},
			"username = \"u\"\npassword = \"pw-123456\"\nauth = \"cram-md5\"", `does not offer CRAM-MD5 \(it offers PLAIN LOGIN\)`},
		{"greeting 554 before TLS", &rawSMTP{greet: "554 5.3.2 go away\r\n"}, `tls = "starttls"`, `greeting: .*go away`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.srv.start(t)
			h := rawHarness(t, addr, tt.sh, "")
			res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
			if res.code != 0 || res.stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and silence", res.code, res.stderr)
			}
			if q, f := h.spoolCount(""), h.spoolCount("failed"); q != 1 || f != 0 {
				t.Errorf("queued %d, failed %d; want 1 queued", q, f)
			}
			h.expectLog(`status=queued .*` + tt.reason)

			dead := deadLetter(t)
			never := rawHarness(t, addr, tt.sh, "[queue]\nmode = \"never\"\n")
			res = never.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
			if res.code != 75 {
				t.Errorf("mode never: exit %d, want 75; stderr %q", res.code, res.stderr)
			}
			checkStderr(t, res.stderr, tt.reason)
			if !strings.Contains(dead(), "hello") {
				t.Error("the message is not in dead.letter")
			}
			if f := never.spoolCount("failed"); f != 0 {
				t.Errorf("failed/ holds %d messages", f)
			}
		})
	}
}

// A greeting drip-fed an octet at a time cannot hold the caller past the
// timeout (issue 20 item 2): the deadline covers the whole reply.
func TestDripFedGreeting(t *testing.T) {
	const drip = 200 * time.Millisecond
	const octets = 100 // 20 s in all
	addr := smtptest.StartRaw(t, func(c net.Conn) {
		line := "220 " + strings.Repeat("x", octets) + "\r\n"
		for i := 0; i < len(line); i++ {
			if _, err := c.Write([]byte{line[i]}); err != nil {
				return
			}
			time.Sleep(drip)
		}
		c.Read(make([]byte, 512))
	})
	h := rawHarness(t, addr, `timeout = "2s"`, "")
	start := time.Now()
	res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
	took := time.Since(start)
	if res.code != 0 || h.spoolCount("") != 1 {
		t.Errorf("exit %d, stderr %q, %d queued; want 0 and queued", res.code, res.stderr, h.spoolCount(""))
	}
	// About 2 s; bounded generously for a loaded machine, and far below
	// the drip's 20 s.
	if took > 8*time.Second {
		t.Errorf("relaymail took %v with timeout = \"2s\"", took)
	}
	h.expectLog(`status=queued .*timeout`)
}

// A server that never answers the final dot holds the caller for
// data_timeout, not 10 minutes (issue 19 item 2).
func TestDataTimeout(t *testing.T) {
	addr := smtptest.StartRaw(t, func(c net.Conn) {
		rc := smtptest.NewRawConn(c)
		fmt.Fprint(rc, "220 mx.test\r\n")
		for {
			line, err := rc.ReadLine()
			if err != nil {
				return
			}
			switch strings.ToUpper(line) {
			case "DATA":
				fmt.Fprint(rc, "354 go ahead\r\n")
				rc.ReadData()
				rc.ReadLine() // and never answer: wait for the client to leave
				return
			default:
				fmt.Fprint(rc, "250 ok\r\n")
			}
		}
	})
	h := rawHarness(t, addr, "timeout = \"5s\"\ndata_timeout = \"2s\"", "")
	start := time.Now()
	res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
	took := time.Since(start)
	if res.code != 0 || h.spoolCount("") != 1 {
		t.Errorf("exit %d, stderr %q, %d queued; want 0 and queued", res.code, res.stderr, h.spoolCount(""))
	}
	if took > 15*time.Second {
		t.Errorf("relaymail took %v with data_timeout = \"2s\"", took)
	}
	h.expectLog(`status=queued .*end of data`)
}

// A hung smarthost costs one timeout per -q pass, not one per message
// (issue 19 item 3); the fallback is still tried for each message.
func TestQueueRunAgainstHungSmarthost(t *testing.T) {
	t.Run("no fallback", func(t *testing.T) {
		hung := &rawSMTP{greet: "-", hang: true}
		h := rawHarness(t, hung.start(t), `timeout = "2s"`, "")
		queueMessages(t, h, 20, "a@example.com")
		start := time.Now()
		res := h.run([]string{"sendmail", "-q"}, nil, stdinNone)
		took := time.Since(start)
		if res.code != 0 || h.spoolCount("") != 20 || h.spoolCount("failed") != 0 {
			t.Errorf("exit %d, stderr %q, %d queued, %d failed; want all 20 queued", res.code, res.stderr, h.spoolCount(""), h.spoolCount("failed"))
		}
		if n := hung.conns.Load(); n != 1 {
			t.Errorf("%d connections to the hung host, want 1", n)
		}
		// One 2 s timeout; 20 would be 40 s.
		if took > 8*time.Second {
			t.Errorf("-q took %v", took)
		}
		if mq := h.run([]string{"mailq"}, nil, stdinNone); !strings.Contains(mq.stdout, "greeting") {
			t.Errorf("mailq does not give the reason:\n%s", mq.stdout)
		}
	})
	t.Run("fallback takes them", func(t *testing.T) {
		hung := &rawSMTP{greet: "-", hang: true}
		fb := smtptest.Start(t, smtptest.Options{})
		h := rawHarness(t, hung.start(t), `timeout = "2s"`,
			fmt.Sprintf("[[fallback]]\nhost = %q\nport = %d\ntls = \"none\"\n", fb.Host(), fb.Port()))
		queueMessages(t, h, 5, "a@example.com")
		if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
			t.Errorf("-q: exit %d, stderr %q", res.code, res.stderr)
		}
		if n := len(fb.Messages()); n != 5 || h.spoolCount("") != 0 {
			t.Errorf("fallback got %d, %d still queued; want 5 and 0", n, h.spoolCount(""))
		}
		if n := hung.conns.Load(); n != 1 {
			t.Errorf("%d connections to the hung host, want 1", n)
		}
	})
}

// Control characters a server sends (here in a refusal and in the
// greeting) never reach stderr or the -v trace raw (issue 20 item 3).
func TestServerTextCleaned(t *testing.T) {
	srv := &rawSMTP{
		greet: "220 mx.test \x1b]0;owned\x07 ESMTP\r\n",
		ehlo:  "250 mx.test\r\n",
		rcpt:  "550 5.1.1 \x1b[2J\x1b[Hfake: status=sent\rno such user\x07\r\n",
	}
	h := rawHarness(t, srv.start(t), "", "")
	res := h.run([]string{"sendmail", "-v", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
	if res.code != 67 {
		t.Errorf("exit %d, want 67; stderr %q", res.code, res.stderr)
	}
	if strings.ContainsAny(res.stderr, "\x1b\x07\r") {
		t.Errorf("stderr carries raw control characters: %q", res.stderr)
	}
	for _, want := range []string{"<-- 220 mx.test  ]0;owned  ESMTP\n", "fake: status=sent no such user"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q: %q", want, res.stderr)
		}
	}
}

// A reply queued behind the 354 (the server's real answer to the dot
// would be read as the reply to QUIT) and a 221 to the final dot are not
// a delivery: the message stays queued, 76 with the queue off (issue 20
// items 4, 5).
func TestDesynchronisedDataReplies(t *testing.T) {
	tests := []struct {
		name   string
		srv    *rawSMTP
		reason string
	}{
		{"354 and 250 together", &rawSMTP{ehlo: "250 mx.test\r\n", data: "354 go ahead\r\n250 2.0.0 fake\r\n",
			dot: "554 5.7.1 the real answer\r\n"}, `after its 354 reply`},
		{"221 to the final dot", &rawSMTP{ehlo: "250 mx.test\r\n", dot: "221 2.0.0 closing\r\n"}, `code=221 dsn=2.0.0 msg=closing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.srv.start(t)
			h := rawHarness(t, addr, "", "")
			res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
			if res.code != 0 || h.spoolCount("") != 1 {
				t.Errorf("exit %d, stderr %q, %d queued; want 0 and queued", res.code, res.stderr, h.spoolCount(""))
			}
			h.expectLog(`status=queued .*` + tt.reason)
			if log, _ := os.ReadFile(h.log); strings.Contains(string(log), "status=sent") {
				t.Errorf("counted as sent:\n%s", log)
			}
			never := rawHarness(t, addr, "", "[queue]\nmode = \"never\"\n")
			res = never.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe)
			if res.code != 76 {
				t.Errorf("mode never: exit %d, want 76; stderr %q", res.code, res.stderr)
			}
		})
	}
}

// The log names the TLS version negotiated before a failure, e.g. AUTH
// refused after STARTTLS, in a direct send and in a queue run (issue 10
// item 7).
func TestLogTLSAfterFailure(t *testing.T) {
	cert := smtptest.NewCert(t)
	srv := &rawSMTP{cert: cert, auth: "535 5.7.8 bad credentials\r\n"}
	addr := srv.start(t)
	sh := fmt.Sprintf("tls = \"starttls\"\nca_file = %q\ntls_server_name = \"localhost\"\nusername = \"u\"\npassword = \"pw-123456\"", cert.WriteCAFile(t))
	h := rawHarness(t, addr, sh, "")
	if res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe); res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	h.expectLog(`tls=TLS1\.[23] status=queued code=535`)
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
		t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
	}
	h.expectLog(`tls=TLS1\.[23] status=deferred code=535`)
}
