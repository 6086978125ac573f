package logging

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHandlerLine(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string
	}{
		{"plain pairs", func(l *slog.Logger) {
			l.Info("", "id", "ABC", "status", "sent", "code", 250)
		}, "id=ABC status=sent code=250\n"},
		{"quoted values", func(l *slog.Logger) {
			l.Info("", "msg", "2.0.0 Ok: queued as X", "to", "a@x,b@y", "empty", "")
		}, `msg="2.0.0 Ok: queued as X" to=a@x,b@y empty=""` + "\n"},
		{"message and warning level", func(l *slog.Logger) {
			l.Warn("aliases: /etc/aliases:3: bad line", "file", "/etc/aliases")
		}, "level=warn aliases: /etc/aliases:3: bad line file=/etc/aliases\n"},
		{"newline in a value stays on one line", func(l *slog.Logger) {
			l.Info("", "msg", "a\nb")
		}, `msg="a\nb"` + "\n"},
		{"with attrs", func(l *slog.Logger) {
			l.With("id", "Q1").Info("", "status", "queued")
		}, "id=Q1 status=queued\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(slog.New(NewHandler(&buf, false)))
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenTargets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relaymail.log")
	l, c, err := Open(path, "relaymail", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("", "status", "sent")
	c.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(data), " status=sent\n") {
		t.Errorf("file log = %q", data)
	}

	var stderr bytes.Buffer
	l, _, _ = Open("stderr", "relaymail", &stderr)
	l.Info("", "status", "queued")
	if !strings.Contains(stderr.String(), "status=queued") {
		t.Errorf("stderr log = %q", stderr.String())
	}

	l, _, _ = Open("none", "relaymail", &stderr)
	if l.Enabled(context.Background(), slog.LevelError) {
		t.Error("none logger is enabled")
	}

	if _, _, err := Open("/nonexistent-dir/x.log", "relaymail", nil); err == nil {
		t.Error("want an error for an unwritable log file")
	}
}

// TestDefault: with log unset, syslog when its socket exists; else stderr
// for a service and nothing for the other modes.
func TestDefault(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	saved, savedOverride := syslogSockets, syslogOverride
	defer func() { syslogSockets, syslogOverride = saved, savedOverride }()
	tests := []struct {
		socket  string
		service bool
		want    string
	}{
		{sock, false, "syslog"},
		{sock, true, "syslog"},
		{filepath.Join(dir, "missing"), false, "none"},
		{filepath.Join(dir, "missing"), true, "stderr"},
		{dir, false, "none"}, // a directory is not a socket
	}
	for _, tt := range tests {
		SetSyslogSocket(tt.socket)
		if got := Default(tt.service); got != tt.want {
			t.Errorf("Default(%v) with %s = %q, want %q", tt.service, tt.socket, got, tt.want)
		}
	}
}
