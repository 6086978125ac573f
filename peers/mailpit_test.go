package peers

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	mailpitUser    = "alice"
	mailpitPass    = "s3cret-mp"
	mailpitRefused = "refused@example.net"
	// mailpitLimitMB is --max-message-size, in MiB.
	mailpitLimitMB = 22
)

// TestMailpit runs the shared cases against Mailpit, the development
// mail catcher, built from its Go module by peers/install: STARTTLS
// required, AUTH from an htpasswd file, --smtp-allowed-recipients refusing
// one recipient, --max-message-size. Mailpit never offers PIPELINING (its
// EHLO reply has no such line, and no flag adds it), so this is the peer
// that has relaymail send one command at a time; it offers neither DSN nor
// CRAM-MD5 once a password file is set, and those cases skip saying so.
// What it received is read back through its HTTP API.
func TestMailpit(t *testing.T) {
	bin := filepath.Join(peersDir(t), "bin/mailpit")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("mailpit not built under %s (run peers/install): %v", filepath.Dir(bin), err)
	}
	dir := worldDir(t)
	cert, key := keyPair(t, dir)
	sum := sha1.Sum([]byte(mailpitPass))
	users := filepath.Join(dir, "users")
	writeFile(t, users, []byte(mailpitUser+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600)
	smtpPort, httpPort := freePort(t), freePort(t)
	cmd := exec.Command(bin,
		"--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls",
		"--smtp-auth-file", users,
		"--smtp-allowed-recipients", `@(example\.org|`+strings.ReplaceAll(utf8Domain, ".", `\.`)+`)$`,
		"--max-message-size", fmt.Sprint(mailpitLimitMB),
		"--smtp-disable-rdns", "--disable-version-check", "--max", "0")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "TZ=UTC"}
	out, _ := os.Create(filepath.Join(dir, "mailpit.out"))
	cmd.Stdout, cmd.Stderr = out, out
	startDaemon(t, cmd)
	waitPort(t, smtpPort, cmd, filepath.Join(dir, "mailpit.out"))
	waitPort(t, httpPort, cmd, filepath.Join(dir, "mailpit.out"))
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/", httpPort)

	p := &peer{
		name: "Mailpit", port: smtpPort, ca: cert, user: mailpitUser, pass: mailpitPass,
		mechs: []string{"PLAIN", "LOGIN"}, refused: mailpitRefused,
		sizeLimit: mailpitLimitMB << 20, smtputf8: true,
		received: func(t *testing.T, tag string, n int) []delivered {
			return mailpitReceived(t, api, tag, n)
		},
	}
	runCases(t, p)
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(dir, "mailpit.out"))
		t.Logf("mailpit output:\n%s", b)
	}
}

// mailpitReceived waits until Mailpit holds messages with tag in their
// Subject for n recipients in all (To, Cc and Bcc of its summary, where it
// lists the envelope recipients the header lacks) and returns their raw
// octets without the fields Mailpit puts in front: Received:, and Bcc:
// naming the envelope recipients the header block lacks.
func mailpitReceived(t *testing.T, api, tag string, n int) []delivered {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(url string) []byte {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("mailpit API: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("mailpit API %s: %s %v", url, resp.Status, err)
		}
		return b
	}
	type addr struct{ Address string }
	return awaitRecipients(t, "Mailpit", tag, n, func() []delivered {
		var list struct {
			Messages []struct {
				ID          string
				Subject     string
				To, Cc, Bcc []addr
			}
		}
		if err := json.Unmarshal(get(api+"messages?limit=1000"), &list); err != nil {
			t.Fatalf("mailpit API: %v", err)
		}
		var got []delivered
		for _, m := range list.Messages {
			if m.Subject != "peers "+tag {
				continue
			}
			d := delivered{data: stripAdded(get(api+"message/"+m.ID+"/raw"), "Received", "Return-Path", "Bcc")}
			for _, a := range append(append(m.To, m.Cc...), m.Bcc...) {
				d.to = append(d.to, a.Address)
			}
			got = append(got, d)
		}
		return got
	})
}
