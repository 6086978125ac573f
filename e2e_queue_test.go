package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
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

// downHarness is a harness whose smarthost port is closed: the "down"
// smarthost of the queue tests. up() points the config at the server.
func downHarness(t *testing.T, extra string) (h *harness, up func()) {
	h = newHarness(t, smtptest.Options{}, extra, "")
	return h, h.smarthostDown()
}

// smarthostDown points h's config at a closed port instead of its
// server; up() points it back.
func (h *harness) smarthostDown() (up func()) {
	cfg, _ := os.ReadFile(h.config)
	live := fmt.Sprintf("port = %d", h.srv.Port())
	os.WriteFile(h.config, bytes.Replace(cfg, []byte(live), []byte(fmt.Sprintf("port = %d", smtptest.DeadPort(h.t))), 1), 0o644)
	return func() { os.WriteFile(h.config, cfg, 0o644) }
}

// TestConcurrentQueueing: 200 relaymail processes at once with the
// smarthost down, then two runners started together: every message is
// delivered exactly once, byte for byte.
func TestConcurrentQueueing(t *testing.T) {
	t.Parallel()
	const n = 200
	h, up := downHarness(t, "")
	want := make(map[[32]byte]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range n {
		text := fmt.Sprintf("body of message %d\n%s", i, strings.Repeat("some line of text\n", i))
		body := "Subject: message " + fmt.Sprint(i) + "\n\n" + text
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res := runBinary(t, []string{"sendmail", "-i", "a@example.com"}, []byte(body), stdinPipe, nil, "RELAYMAIL_CONFIG="+h.config)
			if res.code != 0 || res.stderr != "" {
				t.Errorf("message %d: exit %d, stderr %q", i, res.code, res.stderr)
			}
			mu.Lock()
			want[sha256.Sum256([]byte(strings.ReplaceAll(text, "\n", "\r\n")))]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if q := h.spoolCount(""); q != n {
		t.Fatalf("%d messages queued, want %d", q, n)
	}
	up()
	var runners sync.WaitGroup
	for range 2 {
		runners.Add(1)
		go func() {
			defer runners.Done()
			if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
				t.Errorf("-q: exit %d, stderr %q", res.code, res.stderr)
			}
		}()
	}
	runners.Wait()
	got := make(map[[32]byte]int)
	for _, m := range h.srv.Messages() {
		_, body, _ := bytes.Cut(m.Data, []byte("\r\n\r\n"))
		got[sha256.Sum256(body)]++
	}
	if len(h.srv.Messages()) != n {
		t.Errorf("smarthost got %d messages, want %d", len(h.srv.Messages()), n)
	}
	for sum, c := range want {
		if got[sum] != c {
			t.Errorf("a message arrived %d times, want %d", got[sum], c)
		}
	}
	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d messages left in the queue", q)
	}
}

// TestKilledWhileQueueing: relaymail killed with SIGKILL at random points
// while it reads and queues a message leaves either a whole message, or
// nothing a runner would send.
//
// The kill points follow relaymail's progress, not the clock: after it
// has taken a random number of 64 KiB chunks of stdin (a pipe holds 64
// KiB, so each write returns only once relaymail read the one before),
// or, once it has all of it, a few ms into the commit. A fixed window
// after start would, on a loaded machine, kill every run before it read
// a byte.
func TestKilledWhileQueueing(t *testing.T) {
	t.Parallel()
	h, up := downHarness(t, "")
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 16<<10) // 1 MiB
	msg := append([]byte("Subject: big\n\n"), body...)
	const chunk = 64 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	completed, midBody, spared := 0, 0, 0
	for range 30 {
		cmd := exec.Command(binary, "-odq", "-i", "a@example.com")
		cmd.Env = []string{"PATH=/usr/bin:/bin", noExitSleep, "RELAYMAIL_CONFIG=" + h.config}
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A third of the runs are killed mid-body, a third a few ms
		// after the last byte (inside the commit, or after it), and a
		// third are not killed: they must exit 0 with the message queued.
		how := rng.IntN(3)
		chunks := len(msg)/chunk + 1
		if how == 0 {
			chunks = rng.IntN(len(msg) / chunk)
		}
		written := make(chan bool, 1)
		go func() {
			for i := 0; i < chunks; i++ {
				if _, err := stdin.Write(msg[i*chunk : min((i+1)*chunk, len(msg))]); err != nil {
					break
				}
			}
			if how != 0 {
				stdin.Close()
			}
			written <- true
		}()
		select {
		case <-written:
		case <-time.After(60 * time.Second):
			t.Errorf("relaymail took no stdin for 60s")
		}
		switch how {
		case 0:
			midBody++
		case 1:
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		case 2:
			kill := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
			if err := cmd.Wait(); err != nil {
				t.Errorf("relaymail -odq, not killed: %v", err)
			} else {
				completed++
			}
			kill.Stop()
			spared++
			continue
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		stdin.Close()
		if err == nil {
			completed++ // exit 0 came before the kill: it must be queued
		}
	}
	queued := h.spoolCount("")
	if queued < completed {
		t.Fatalf("%d runs exited 0 but only %d messages are queued", completed, queued)
	}
	up()
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
		t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
	}
	for _, m := range h.srv.Messages() {
		if !bytes.HasSuffix(m.Data, bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))) {
			t.Errorf("a partial message was sent (%d bytes)", len(m.Data))
		}
	}
	if len(h.srv.Messages()) != queued {
		t.Errorf("%d queued, %d sent", queued, len(h.srv.Messages()))
	}
	t.Logf("30 runs: %d killed mid-body, %d not killed, %d exited 0, %d queued whole, %d sent", midBody, spared, completed, queued, len(h.srv.Messages()))
}

// TestQueueDiskFull: with the queue on a full filesystem and the
// smarthost down, relaymail exits 75, says why, and appends the message
// to dead.letter; nothing half-queued is left for a runner.
func TestQueueDiskFull(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	h, _ := downHarness(t, "")
	spool := filepath.Join(h.dir, "spool")
	os.MkdirAll(spool, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", spool).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", spool).Run()
	dead := deadLetter(t)
	msg := append([]byte("Subject: too big for the disk\n\n"), bytes.Repeat([]byte("y"), 512<<10)...)
	res := h.run([]string{"sendmail", "-i", "a@example.com"}, msg, stdinPipe)
	if res.code != 75 {
		t.Errorf("exit %d, want 75; stderr %q", res.code, res.stderr)
	}
	checkStderr(t, res.stderr, `(?i)no space left on device.*saved in .*dead\.letter`)
	if entry := dead(); !strings.Contains(entry, "Subject: too big for the disk") || len(entry) < 512<<10 {
		t.Errorf("dead.letter has %d bytes, want the whole message", len(entry))
	}
	if q := h.spoolCount(""); q != 0 {
		t.Errorf("%d messages queued on a full disk", q)
	}
}

// TestExpiry: a message older than max_age is bounced to its sender with
// an RFC 3464 report and kept in failed/; a bounce that fails in turn is
// never bounced again.
func TestExpiry(t *testing.T) {
	t.Parallel()
	h, up := downHarness(t, "[queue]\nmax_age = \"1s\"\n")
	res := h.run([]string{"sendmail", "-i", "-f", "app@example.com", "a@example.com"}, []byte(simpleMail), stdinPipe)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	time.Sleep(1100 * time.Millisecond)
	up()
	h.srv.SetRcptErr("app@example.com", smtptest.Reply(550, "5.1.1", "the sender is gone too"))
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 {
		t.Fatalf("-q: exit %d, stderr %q", res.code, res.stderr)
	}
	// The bounce itself was refused: it is kept, and nothing more is sent.
	if n := len(h.srv.Messages()); n != 0 {
		t.Errorf("smarthost got %d messages, want none", n)
	}
	if q, f := h.spoolCount(""), h.spoolCount("failed"); q != 0 || f != 2 {
		t.Errorf("queued %d, failed %d; want 0 and 2 (the message and its bounce)", q, f)
	}
	h.expectLog(`status=expired`)
	h.expectLog(`from="" to=app@example.com .*status=bounced`)
	if res := h.run([]string{"sendmail", "-q"}, nil, stdinNone); res.code != 0 || len(h.srv.Messages()) != 0 {
		t.Errorf("a second run sent something: exit %d, %d messages", res.code, len(h.srv.Messages()))
	}

	// Once the sender can take it, the bounce arrives as a report.
	h2, up2 := downHarness(t, "[queue]\nmax_age = \"1s\"\n")
	h2.run([]string{"sendmail", "-i", "-f", "app@example.com", "a@example.com"}, []byte(simpleMail), stdinPipe)
	time.Sleep(1100 * time.Millisecond)
	up2()
	h2.run([]string{"sendmail", "-q"}, nil, stdinNone)
	msgs := h2.srv.Messages()
	if len(msgs) != 1 || msgs[0].From != "" || strings.Join(msgs[0].To, ",") != "app@example.com" {
		t.Fatalf("want one bounce from <> to the sender, got %+v", msgs)
	}
	for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; a@example.com",
		"Action: failed", "Status: 5.4.7", "Subject: test"} {
		if !strings.Contains(string(msgs[0].Data), want) {
			t.Errorf("bounce lacks %q:\n%s", want, msgs[0].Data)
		}
	}
}
