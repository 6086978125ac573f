// Package demo shows relaymail doing its job with nothing to configure:
// `make demo` builds the binary, starts a throwaway SMTP server on
// loopback, pipes in the message Debian's cron would send, and prints the
// command, the config and what the server received.
package demo

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

const cronMail = `From: root (Cron Daemon)
To: root
Subject: Cron <root@web1> /usr/local/bin/backup
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

backup finished: 3 files, 12 MB
.
a line holding only a dot did not end the message (-i)
`

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "relaymail")
	build := exec.Command("go", "build", "-o", bin, "relaymail")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}

	srv := smtptest.Start(t, smtptest.Options{
		TLS:          smtptest.TLSStartTLS,
		Users:        map[string]string{"demo": "demo-secret"},
		AuthRequired: true,
	})
	caFile := filepath.Join(dir, "smarthost-ca.pem")
	os.WriteFile(caFile, srv.Cert().PEM, 0o644)
	config := fmt.Sprintf(`hostname = "web1.example.com"
domain = "example.com"
log = "stderr"

[smarthost]
host = %q
port = %d
tls = "starttls"
ca_file = %q
username = "demo"
password = "demo-secret"

[aliases]
root = "ops@example.com"

[queue]
dir = %q
`, srv.Host(), srv.Port(), caFile, filepath.Join(dir, "spool"))
	cfgPath := filepath.Join(dir, "relaymail.toml")
	os.WriteFile(cfgPath, []byte(config), 0o600)

	args := []string{"-C", cfgPath, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(cronMail)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)

	fmt.Printf("\n== config (%s)\n%s", cfgPath, strings.Replace(config, "demo-secret", "********", 1))
	fmt.Printf("\n== the message, as cron pipes it in\n%s", cronMail)
	fmt.Printf("\n== relaymail %s < message\n", strings.Join(args, " "))
	fmt.Printf("exit status %d after %v; its log line:\n%s", cmd.ProcessState.ExitCode(), elapsed.Round(time.Millisecond), stderr.String())
	if err != nil {
		t.Fatalf("relaymail failed: %v", err)
	}
	msgs := srv.WaitMessages(t, 1, 5*time.Second)
	m := msgs[0]
	fmt.Printf("\n== what the smarthost received (TLS %v, AUTH as %q)\nMAIL FROM:<%s>\nRCPT TO:<%s>\n%s\n",
		m.TLS, m.AuthUser, m.From, strings.Join(m.To, ">, <"), m.Data)
	if len(m.To) != 1 || m.To[0] != "ops@example.com" || !m.TLS || m.AuthUser != "demo" {
		t.Errorf("unexpected delivery: %+v", m)
	}
}
