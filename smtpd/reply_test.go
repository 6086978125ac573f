package smtpd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

func TestReplyFormat(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{Reply{250, "2.0.0", "OK"}, "250 2.0.0 OK\r\n"},
		{Reply{250, "", "queued as X"}, "250 2.0.0 queued as X\r\n"},
		{Reply{550, "4.1.1", "wrong class"}, "550 5.0.0 wrong class\r\n"},
		{Reply{550, "5.1", "short"}, "550 5.0.0 short\r\n"},
		{Reply{550, "5.1.1000", "long detail"}, "550 5.0.0 long detail\r\n"},
		{Reply{550, "5.x.1", "letters"}, "550 5.0.0 letters\r\n"},
		{Reply{550, "5.1.1", ""}, "550 5.1.1\r\n"},
		{Reply{354, "2.0.0", "go ahead"}, "354 go ahead\r\n"},
		{Reply{451, "4.3.0", "a\nb\nc"}, "451-4.3.0 a\r\n451-4.3.0 b\r\n451 4.3.0 c\r\n"},
		{Reply{550, "5.7.1", "in\rjected\x00 \r\n250 OK"}, "550-5.7.1 injected\r\n550 5.7.1 250 OK\r\n"},
		{Reply{0, "", "no code"}, "451 4.3.0 Local error in processing\r\n"},
		{Reply{600, "", "too high"}, "451 4.3.0 Local error in processing\r\n"},
		{Reply{550, "5.0.0", strings.Repeat("é", 300)}, "550 5.0.0 " + strings.Repeat("é", 240) + "\r\n"},
	}
	for _, tc := range tests {
		if got := string(tc.r.normalize().format()); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestReplyError(t *testing.T) {
	r := &Reply{Code: 450, Enhanced: "4.2.0", Text: "busy\nlater"}
	var err error = r
	if got := err.Error(); got != "smtpd: 450 4.2.0 busy; later" {
		t.Errorf("Error() = %q", got)
	}
	if !r.Temporary() || (&Reply{Code: 550}).Temporary() || (&Reply{Code: 250}).Temporary() {
		t.Error("Temporary wrong")
	}
	if got := (&Reply{Code: 550}).Error(); got != "smtpd: 550" {
		t.Errorf("Error() = %q", got)
	}
}

func TestTransientAcceptError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("accept: %w", syscall.EMFILE), true},
		{fmt.Errorf("accept: %w", syscall.ECONNABORTED), true},
		{fmt.Errorf("accept: %w", syscall.EBADF), false},
		{io.EOF, false},
	} {
		if got := transientAcceptError(tc.err); got != tc.want {
			t.Errorf("%v: %v", tc.err, got)
		}
	}
}

// panicRcpt panics in Rcpt.
type panicRcpt struct{ nopHandler }

func (panicRcpt) Rcpt(context.Context, *Envelope, string) *Reply { panic("rcpt boom") }

// The log names the session and the envelope but never message content,
// and a panicking Handler is logged, not fatal.
func TestLogging(t *testing.T) {
	var logs bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := &Server{Hostname: "  bad host\r\n", Handler: panicRcpt{}, Logger: lg}
	in := "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nQUIT\r\n"
	out, err := runSession(t, srv, in)
	want := "220 bad ESMTP relaymail\r\n250 bad\r\n250 2.1.0 Sender OK\r\n451 4.3.0 Local error in processing\r\n221 2.0.0 Bye\r\n"
	if err != nil || out != want {
		t.Fatalf("got %q, %v; want %q", out, err, want)
	}
	if !strings.Contains(logs.String(), "rcpt boom") || !strings.Contains(logs.String(), "remote=stdio") {
		t.Errorf("log: %s", logs.String())
	}

	logs.Reset()
	srv = &Server{Handler: nopHandler{}, Logger: lg}
	out, _ = runSession(t, srv, "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSECRET-BODY-TEXT\r\n.\r\n")
	if !strings.HasPrefix(out, "220 localhost ESMTP relaymail\r\n250-localhost\r\n") {
		t.Errorf("default hostname: %q", out)
	}
	if strings.Contains(logs.String(), "SECRET-BODY-TEXT") || !strings.Contains(logs.String(), "from=a@x") {
		t.Errorf("log: %s", logs.String())
	}
}
