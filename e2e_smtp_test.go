package main

import (
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// bsSession is a -bs dialogue from a client that sends HELO, as Symfony
// Mailer does, for one message to rcpts.
func bsSession(from string, rcpts ...string) []byte {
	var b strings.Builder
	b.WriteString("HELO [127.0.0.1]\r\nMAIL FROM:<" + from + ">\r\n")
	for _, r := range rcpts {
		b.WriteString("RCPT TO:<" + r + ">\r\n")
	}
	b.WriteString("DATA\r\nSubject: over smtp\r\n\r\n..stuffed line\r\n.\r\nQUIT\r\n")
	return []byte(b.String())
}

// TestSMTPPersonality: relaymail -bs answers each outcome with the reply
// code Symfony and SwiftMailer read (they ignore the exit status).
func TestSMTPPersonality(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		inject    func(*smtptest.Server)
		rcpts     []string
		wantReply string // regexp for the reply to the final dot
		wantMsgs  int    // messages at the smarthost, bounces included
		queued    int
	}{
		// Delivered live: the smarthost's own reply to the dot (go-smtp's).
		{"delivered", nil, []string{"a@example.com", "root"}, `^250 2\.0\.0 OK: queued$`, 1, 0},
		// A recipient the smarthost refuses is refused at RCPT (TestProxyBS);
		// the client then sends DATA for the others.
		{"one refused: 550 at RCPT, no bounce", func(s *smtptest.Server) {
			s.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no such user"))
		}, []string{"good@example.com", "bad@example.com"}, `^250 2\.0\.0 OK: queued$`, 1, 0},
		{"message refused: the smarthost's reply", func(s *smtptest.Server) {
			s.SetDataErr(smtptest.Reply(554, "5.7.1", "spam"))
		}, []string{"a@example.com"}, `^554 5\.7\.1 spam$`, 0, 0},
		{"smarthost busy: queued, 250", func(s *smtptest.Server) {
			s.SetGreetingErr(smtptest.Reply(421, "4.3.2", "busy"))
		}, []string{"a@example.com"}, `^250 2\.0\.0 OK: queued as \w+$`, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, smtptest.Options{}, "", "")
			if tt.inject != nil {
				tt.inject(h.srv)
			}
			res := h.run([]string{"/usr/sbin/sendmail", "-bs", "-i"}, bsSession("app@example.com", tt.rcpts...), stdinPipe)
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(res.stdout, "\r\n"), "\r\n")
			if len(lines) < 3 || lines[len(lines)-1] != "221 2.0.0 Bye" {
				t.Fatalf("dialogue does not end with QUIT's reply:\n%s", res.stdout)
			}
			if dot := lines[len(lines)-2]; !regexp.MustCompile(tt.wantReply).MatchString(dot) {
				t.Errorf("reply to the final dot %q, want %q\n%s", dot, tt.wantReply, res.stdout)
			}
			msgs := h.srv.Messages()
			if len(msgs) != tt.wantMsgs {
				t.Fatalf("smarthost got %d messages, want %d", len(msgs), tt.wantMsgs)
			}
			if tt.wantMsgs > 0 && !strings.Contains(string(msgs[0].Data), "\r\n.stuffed line\r\n") {
				t.Errorf("data not un-stuffed once: %q", msgs[0].Data)
			}
			if tt.wantMsgs == 2 {
				bounce := msgs[1]
				if bounce.From != "" || strings.Join(bounce.To, ",") != "app@example.com" ||
					!strings.Contains(string(bounce.Data), "multipart/report") || !strings.Contains(string(bounce.Data), "bad@example.com") {
					t.Errorf("bounce: from <%s> to %v:\n%s", bounce.From, bounce.To, bounce.Data)
				}
			}
			if n := h.spoolCount(""); n != tt.queued {
				t.Errorf("%d messages queued, want %d", n, tt.queued)
			}
		})
	}
}

// TestDaemon: relaymail -bd takes mail on loopback, relays it, and stops
// cleanly on SIGTERM; a non-loopback listen address is refused.
func TestDaemon(t *testing.T) {
	t.Parallel()
	port := listenAndClose(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	h := newHarness(t, smtptest.Options{}, "", "")
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, []byte(fmt.Sprintf("listen = [%q]\n", addr)+string(cfg)), 0o644)

	cmd := exec.Command(binary, "-bd", "-q1m")
	cmd.Env = []string{"PATH=/usr/bin:/bin", noExitSleep, "RELAYMAIL_CONFIG=" + h.config}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var c *smtp.Client
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err = smtp.Dial(addr); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("relaymail -bd did not listen on %s within 60s: %v (%s)", addr, err, stderr.String())
	}
	if err := c.Mail("app@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a@example.com", "root"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := c.Data()
	fmt.Fprintf(w, "Subject: via -bd\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("end of data: %v", err)
	}
	c.Quit()
	m := h.srv.WaitMessages(t, 1, 60*time.Second)[0]
	if strings.Join(m.To, ",") != "a@example.com,admin@example.com" {
		t.Errorf("delivered to %v", m.To)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("relaymail -bd did not stop within 60s of SIGTERM")
	}

	// A public address is refused unless listen_allow_remote.
	os.WriteFile(h.config, []byte("listen = [\"0.0.0.0:2525\"]\n"+string(cfg)), 0o644)
	res := h.run([]string{"sendmail", "-bd"}, nil, stdinNone)
	if res.code != 78 || !strings.Contains(res.stderr, "0.0.0.0:2525") {
		t.Errorf("non-loopback listen: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestSwaks drives relaymail -bs with swaks (--pipe), a real SMTP client
// that pipelines, when it is installed.
func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks is not installed (apt-get install swaks)")
	}
	h := newHarness(t, smtptest.Options{}, "", "")
	cmd := exec.Command(swaks, "--pipe", binary+" -bs", "--pipeline", "--from", "app@example.com",
		"--to", "a@example.com,b@example.com", "--header", "Subject: swaks", "--body", "line\n.\nafter dot")
	cmd.Env = []string{"PATH=/usr/bin:/bin", noExitSleep, "RELAYMAIL_CONFIG=" + h.config}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	m := h.srv.WaitMessages(t, 1, 5*time.Second)[0]
	if strings.Join(m.To, ",") != "a@example.com,b@example.com" || !strings.Contains(string(m.Data), "line\r\n.\r\nafter dot") {
		t.Errorf("got to %v:\n%s", m.To, m.Data)
	}
	if !strings.Contains(string(out), "<-  250 2.0.0 OK: queued\n") {
		t.Errorf("swaks did not see the smarthost's 250:\n%s", out)
	}
}
