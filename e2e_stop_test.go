package main

// End-to-end tests of issue 19: how relaymail stops (SIGTERM to -q and
// -bd), what a full queue disk does to a retry, -bd's limits on idle and
// slow clients, and a queued envelope whose body is gone.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// holdFinalReply makes h's smarthost read each message whole and then
// keep its reply to the final dot until release is closed; held gets one
// value per message held.
func holdFinalReply(h *harness) (held <-chan struct{}, release func()) {
	ch := make(chan struct{}, 100)
	gate := make(chan struct{})
	h.srv.SetDataFunc(func(r io.Reader) error {
		io.Copy(io.Discard, r)
		ch <- struct{}{}
		<-gate
		return nil
	})
	var once sync.Once
	return ch, func() { once.Do(func() { close(gate) }) }
}

// startBinary starts relaymail with h's config and returns a channel with
// its exit status.
func startBinary(t *testing.T, h *harness, stderr *bytes.Buffer, args ...string) (*exec.Cmd, <-chan int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent-home", noExitSleep, "RELAYMAIL_CONFIG=" + h.config}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return cmd, done
}

// waitExit returns the exit status, failing the test after a generous
// bound.
func waitExit(t *testing.T, done <-chan int, what string) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not exit within 60s", what)
		return -1
	}
}

// queueMessages queues n messages with -odq, each with its own subject.
func queueMessages(t *testing.T, h *harness, n int, rcpts ...string) {
	t.Helper()
	for i := range n {
		msg := fmt.Sprintf("Subject: message %d\n\nbody %d\n", i, i)
		res := h.run(append([]string{"sendmail", "-odq", "-i"}, rcpts...), []byte(msg), stdinPipe)
		if res.code != 0 {
			t.Fatalf("queueing message %d: exit %d, stderr %q", i, res.code, res.stderr)
		}
	}
}

// subjectsOnce fails the test unless the smarthost got each of the n
// messages queued by queueMessages exactly once per recipient.
func subjectsOnce(t *testing.T, h *harness, n int) {
	t.Helper()
	count := make(map[string]int)
	for _, m := range h.srv.Messages() {
		for _, to := range m.To {
			subject, _, _ := strings.Cut(string(m.Data), "\r\n")
			count[subject+" to "+to]++
		}
	}
	if len(count) != n {
		t.Errorf("the smarthost got %d distinct messages, want %d: %v", len(count), n, count)
	}
	for k, c := range count {
		if c != 1 {
			t.Errorf("%s arrived %d times", k, c)
		}
	}
}

// TestStopRunnerHoldingFinalReply (issue 19.1): SIGTERM reaches -q while
// the smarthost holds its reply to the final dot. The transaction in
// flight is finished and recorded, no other starts, relaymail exits 0;
// a second -q delivers the rest, and every message arrives exactly once.
func TestStopRunnerHoldingFinalReply(t *testing.T) {
	for _, args := range [][]string{{"-q"}, {"-q30m"}} {
		t.Run(args[0], func(t *testing.T) {
			const n = 3
			h := newHarness(t, smtptest.Options{}, "", "")
			queueMessages(t, h, n, "a@example.com")
			held, release := holdFinalReply(h)
			defer release()
			var stderr bytes.Buffer
			cmd, done := startBinary(t, h, &stderr, args...)
			select {
			case <-held:
			case <-time.After(30 * time.Second):
				t.Fatal("the runner never reached the final dot")
			}
			cmd.Process.Signal(syscall.SIGTERM)
			// Give the signal time to arrive: the old code cancelled the
			// wait for the reply at once.
			time.Sleep(time.Second)
			release()
			if code := waitExit(t, done, "relaymail "+args[0]); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0; stderr %q", code, stderr.String())
			}
			if got := len(h.srv.Messages()); got != 1 {
				t.Errorf("the smarthost got %d messages before the stop took effect, want the 1 in flight", got)
			}
			if q := h.spoolCount(""); q != n-1 {
				t.Errorf("%d messages still queued, want %d", q, n-1)
			}
			h.srv.SetDataFunc(nil)
			if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
				t.Fatalf("second -q: exit %d, stderr %q", res.code, res.stderr)
			}
			subjectsOnce(t, h, n)
			if q := h.spoolCount(""); q != 0 {
				t.Errorf("%d messages left in the queue", q)
			}
		})
	}
}

// TestStopDaemonMidSession (issue 19.1): SIGTERM reaches -bd -q1m while
// its queue runner and a client's session both wait for the smarthost's
// reply to their final dot. Both transactions finish: the queued message
// is recorded as sent, the client gets its 250, relaymail exits 0, and a
// later -q sends nothing again.
func TestStopDaemonMidSession(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	queueMessages(t, h, 1, "a@example.com")
	held, release := holdFinalReply(h)
	defer release()
	d := clStartDaemon(t, h, "-q1m")
	wait := func(what string) {
		select {
		case <-held:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s never reached the final dot", what)
		}
	}
	wait("the queue runner")

	c := clDial(t, d.addr)
	c.startData("app@example.com", "b@example.com")
	if _, err := io.WriteString(c.c, "Subject: message 1\r\n\r\nbody 1\r\n.\r\n"); err != nil {
		t.Fatal(err)
	}
	wait("the client's message")

	d.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(time.Second) // let the signal arrive before the replies do
	release()
	c.expect("250 ")
	d.wait()

	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d messages queued after the stop, want 0", q)
	}
	h.srv.SetDataFunc(nil)
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
		t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
	}
	subjectsOnce(t, h, 2)
}

// spoolIDs returns the ids of the messages in the spool's sub/env.
func (h *harness) spoolIDs(sub string) []string {
	entries, _ := os.ReadDir(filepath.Join(h.dir, "spool", sub, "env"))
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

// TestBodilessEnvelope (issue 19.7): a queued envelope whose body file is
// gone is not listed by mailq as a message; a runner moves it to failed/
// with the reason and says so once; --delete removes one still queued.
// The messages are larger than what is held in memory, so that each has
// its own body file: a small one is a single file named env/ID and
// body/ID, which loses no body with body/ID (see TestBodyLinkLost).
func TestBodilessEnvelope(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("--delete is for root")
	}
	h := newHarness(t, smtptest.Options{}, "", "")
	big := strings.Repeat("a line of a body too large to stay in memory\n", 300<<10/45)
	for i := range 2 {
		msg := fmt.Sprintf("Subject: message %d\n\n%s", i, big)
		if res := h.run([]string{"sendmail", "-odq", "-i", "a@example.com"}, []byte(msg), stdinPipe); res.code != 0 {
			t.Fatalf("queueing message %d: exit %d, stderr %q", i, res.code, res.stderr)
		}
	}
	ids := h.spoolIDs("")
	if len(ids) != 2 {
		t.Fatalf("queued %v, want 2", ids)
	}
	for _, id := range ids {
		os.Remove(filepath.Join(h.dir, "spool", "body", id))
	}

	res := h.run([]string{"sendmail", "--delete", ids[0]}, nil, stdinNone)
	if res.code != 0 {
		t.Errorf("--delete %s: exit %d, stderr %q", ids[0], res.code, res.stderr)
	}
	res = h.run([]string{"mailq"}, nil, stdinNone)
	if strings.Contains(res.stdout, ids[1]) || strings.Contains(res.stdout, ids[0]) {
		t.Errorf("mailq lists a message without a body:\n%s", res.stdout)
	}
	if !strings.Contains(res.stderr, ids[1]) || !strings.Contains(res.stderr, "body") {
		t.Errorf("mailq does not name the envelope without a body on stderr: %q", res.stderr)
	}

	for range 2 {
		if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
			t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
		}
	}
	log, _ := os.ReadFile(h.log)
	n := 0
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, ids[1]) && !strings.Contains(line, "status=queued") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the log names %s %d times over two runs, want once:\n%s", ids[1], n, log)
	}
	h.expectLog(`id=` + ids[1] + `.*status=failed.*body`)
	if got := h.spoolIDs("failed"); len(got) != 1 || got[0] != ids[1] {
		t.Errorf("failed/ holds %v, want [%s]", got, ids[1])
	}
	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d envelopes still queued", q)
	}
	if len(h.srv.Messages()) != 0 {
		t.Errorf("the smarthost got %d messages", len(h.srv.Messages()))
	}
}

// TestBodyLinkLost (issue 13.4): a small message is queued as one file
// named env/ID and body/ID with two fsyncs, body/ not among them. When a
// power loss forgets body/ID, the message is still listed and delivered
// whole, once, from env/ID.
func TestBodyLinkLost(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	queueMessages(t, h, 1, "a@example.com")
	ids := h.spoolIDs("")
	if len(ids) != 1 {
		t.Fatalf("queued %v, want 1", ids)
	}
	if err := os.Remove(filepath.Join(h.dir, "spool", "body", ids[0])); err != nil {
		t.Fatal(err)
	}
	if res := h.run([]string{"mailq"}, nil, stdinNone); !strings.Contains(res.stdout, ids[0]) || res.stderr != "" {
		t.Errorf("mailq: stdout %q, stderr %q; want %s listed, no error", res.stdout, res.stderr, ids[0])
	}
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
		t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
	}
	subjectsOnce(t, h, 1)
	if m := h.srv.Messages(); len(m) == 1 && !strings.Contains(string(m[0].Data), "\r\n\r\nbody 0\r\n") {
		t.Errorf("the smarthost got %q", m[0].Data)
	}
	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d envelopes still queued", q)
	}
}

// fillDisk writes a file in dir until the filesystem is full and returns
// a function that removes it.
func fillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{4096, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return func() { os.Remove(path) }
}

// TestRetryOnFullDisk (issue 19.5): the queue's disk is full when a retry
// delivers to one recipient and the other is deferred. The runner cannot
// write a new envelope, so it records the retry in place: the attempt
// count and backoff grow, and the recipient that has the message is
// never sent it again.
func TestRetryOnFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	h := newHarness(t, smtptest.Options{}, "", "")
	spool := filepath.Join(h.dir, "spool")
	os.MkdirAll(spool, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", spool).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", spool).Run()

	queueMessages(t, h, 1, "a@example.com", "b@example.com")
	h.srv.SetRcptErr("b@example.com", smtptest.Reply(451, "4.2.0", "mailbox busy, try later"))
	free := fillDisk(t, spool)
	res := h.run([]string{"sendmail", "-q"}, nil, stdinNone)
	free()
	if res.code != 0 {
		t.Fatalf("-q on a full disk: exit %d, stderr %q", res.code, res.stderr)
	}
	if got := len(h.srv.Messages()); got != 1 {
		t.Fatalf("the smarthost got %d messages, want 1 (for a)", got)
	}
	ids := h.spoolIDs("")
	if len(ids) != 1 {
		t.Fatalf("queued %v, want the message still there for b", ids)
	}
	data, _ := os.ReadFile(filepath.Join(spool, "env", ids[0]))
	line, _, _ := strings.Cut(string(data), "\n")
	for _, want := range []string{`"recipients":["b@example.com"]`, `"attempts":1`} {
		if !strings.Contains(line, want) {
			t.Errorf("the envelope lacks %s: %s", want, line)
		}
	}
	if strings.Contains(line, `"next_attempt":"0001-`) {
		t.Errorf("no backoff recorded: %s", line)
	}

	h.srv.SetRcptErr("b@example.com", nil)
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
		t.Fatalf("second -q: exit %d, stderr %q", res.code, res.stderr)
	}
	subjectsOnce(t, h, 2)
	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d messages left in the queue", q)
	}
}

// prependConfig puts top-level keys at the start of h's config, before
// any table.
func prependConfig(t *testing.T, h *harness, lines string) {
	t.Helper()
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.config, append([]byte(lines), cfg...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonIdleClients (issue 19.6): -bd with listen_max_sessions
// clients sitting idle. A new client is told 421 4.3.2 once it has waited
// listen_wait_timeout for a session, instead of waiting without an
// answer; once listen_command_timeout drops the idle ones (421 4.4.2), a
// new client is served.
func TestDaemonIdleClients(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	prependConfig(t, h, "listen_max_sessions = 2\nlisten_wait_timeout = \"1s\"\nlisten_command_timeout = \"4s\"\n")
	d := clStartDaemon(t, h)
	idle := []*clConn{clDial(t, d.addr), clDial(t, d.addr)}
	for _, c := range idle {
		c.cmd("EHLO idle.test", "250")
	}

	late, err := net.DialTimeout("tcp", d.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.SetDeadline(time.Now().Add(20 * time.Second))
	if line, err := bufio.NewReader(late).ReadString('\n'); !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Errorf("a client over the limit got %q (%v), want 421 4.3.2", line, err)
	}

	for _, c := range idle {
		if line, err := c.reply(); !strings.HasPrefix(line, "421 4.4.2 ") {
			t.Errorf("an idle client got %q (%v), want 421 4.4.2", line, err)
		}
	}
	c := clDial(t, d.addr) // greeted: a session is free again
	c.startData("app@example.com", "a@example.com")
	c.cmd("Subject: after the idle ones\r\n\r\nbody\r\n.", "250")
	c.cmd("QUIT", "221")
	d.stop()
	if got := len(h.srv.Messages()); got != 1 {
		t.Errorf("the smarthost got %d messages, want 1", got)
	}
}

// TestDaemonClientLeavesBeforeReply (issue 19.2): a -bd client gives up
// while the smarthost holds its reply to the final dot. relaymail drops
// the transaction and keeps no copy: the client never heard its message
// accepted and will send it again, so a queued copy would make two.
func TestDaemonClientLeavesBeforeReply(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	held := make(chan struct{}, 1)
	gate := make(chan struct{})
	h.srv.SetDataFunc(func(r io.Reader) error {
		io.Copy(io.Discard, r)
		held <- struct{}{}
		<-gate
		return smtptest.Reply(451, "4.3.0", "could not decide")
	})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release()
	d := clStartDaemon(t, h)

	c := clDial(t, d.addr)
	c.startData("app@example.com", "a@example.com")
	io.WriteString(c.c, "Subject: impatient\r\n\r\nbody\r\n.\r\n")
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the message never reached the smarthost's final dot")
	}
	c.c.Close() // the client's own timeout
	// relaymail gives the transaction up once it sees the client gone;
	// the old code waited for the reply, then queued the message.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if log, _ := os.ReadFile(h.log); bytes.Contains(log, []byte("client left")) {
			break
		}
	}
	release()
	d.stop()
	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d messages queued for a client that never heard a reply", q)
	}
}
