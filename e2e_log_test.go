package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// withoutLogKey removes the log = line from the harness config: the log
// goes where relaymail picks by default.
func (h *harness) withoutLogKey() {
	h.t.Helper()
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg = regexp.MustCompile(`(?m)^log = .*\n`).ReplaceAll(cfg, nil)
	if err := os.WriteFile(h.config, cfg, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// TestLogDefault: with log unset and no syslog socket (a container), a
// message delivered or queued prints nothing (SPEC §6: callers read any
// stderr as a failure), while the services -q and -bd log to stderr. With
// a syslog socket, the line goes there and stderr stays silent.
func TestLogDefault(t *testing.T) {
	t.Parallel()
	noSyslog := "RELAYMAIL_SYSLOG_SOCKET=" + filepath.Join(t.TempDir(), "no-such-socket")

	t.Run("no syslog", func(t *testing.T) {
		t.Parallel()
		h, up := downHarness(t, "")
		h.withoutLogKey()
		res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe, noSyslog)
		if res.code != 0 || res.stderr != "" {
			t.Errorf("queued: exit %d, stderr %q; want 0 and nothing", res.code, res.stderr)
		}
		if n := h.spoolCount(""); n != 1 {
			t.Fatalf("%d messages queued, want 1", n)
		}
		up() // the config as it was: log it back
		h.withoutLogKey()
		res = h.run([]string{"sendmail", "-i", "b@example.com"}, []byte(simpleMail), stdinPipe, noSyslog)
		if res.code != 0 || res.stderr != "" {
			t.Errorf("delivered: exit %d, stderr %q; want 0 and nothing", res.code, res.stderr)
		}
		// -q is a service: its supervisor collects stderr.
		res = h.run([]string{"sendmail", "-q"}, nil, stdinNone, noSyslog)
		if res.code != 0 || !regexp.MustCompile(`to=a@example\.com .*status=sent`).MatchString(res.stderr) {
			t.Errorf("-q: exit %d, stderr %q; want the sent line", res.code, res.stderr)
		}
		if n := len(h.srv.Messages()); n != 2 {
			t.Errorf("smarthost got %d messages, want 2", n)
		}
	})

	t.Run("syslog socket", func(t *testing.T) {
		t.Parallel()
		// A short path: a unix socket's name has at most 107 bytes.
		dir, err := os.MkdirTemp("", "rm-log-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, "log")
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Writable by the uid relaymail runs as (the test's own here).
		os.Chmod(sock, 0o666)
		h, _ := downHarness(t, "")
		h.withoutLogKey()
		res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail), stdinPipe, "RELAYMAIL_SYSLOG_SOCKET="+sock)
		if res.code != 0 || res.stderr != "" {
			t.Errorf("queued: exit %d, stderr %q; want 0 and nothing", res.code, res.stderr)
		}
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("nothing arrived at the syslog socket: %v", err)
		}
		line := string(buf[:n])
		// <22> is facility mail (2), severity info (6).
		if !strings.HasPrefix(line, "<22>") || !strings.Contains(line, "relaymail[") || !strings.Contains(line, "status=queued") {
			t.Errorf("syslog got %q", line)
		}
	})

}

// TestIgnoredOptionsLog: cron's documented no-op -oem (on every cron
// mail) is not logged; a letter no sendmail defines is, once.
func TestIgnoredOptionsLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	cron := []string{"/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-odi", "-G", "-x", "-h", "5", "root"}
	if res := h.run(cron, []byte(simpleMail), stdinPipe); res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	h.expectLog(`status=sent`)
	if log, _ := os.ReadFile(h.log); strings.Contains(string(log), "option") {
		t.Errorf("documented no-ops were logged:\n%s", log)
	}
	if res := h.run([]string{"sendmail", "-i", "-y", "root"}, []byte(simpleMail), stdinPipe); res.code != 0 || res.stderr != "" {
		t.Fatalf("-y: exit %d, stderr %q", res.code, res.stderr)
	}
	if log, _ := os.ReadFile(h.log); strings.Count(string(log), "unknown_option=-y") != 1 || strings.Contains(string(log), "-oem") {
		t.Errorf("want one unknown_option=-y line and no -oem:\n%s", log)
	}
}
