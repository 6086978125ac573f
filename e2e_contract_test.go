package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"relaymail/internal/smtptest"
)

// smuggle is the 2023 SMTP smuggling payload with lone CRs: a smarthost
// that took a bare CR for a line end would see the end of the data and
// a second transaction.
const smuggle = "line\r.\rMAIL FROM:<x@y>\r"

// checkNoBareCR fails unless every CR and LF in data is part of a CRLF
// and the payload arrived as three lines of one message.
func checkNoBareCR(t *testing.T, msgs []smtptest.Message) {
	t.Helper()
	if len(msgs) != 1 {
		t.Fatalf("smarthost got %d messages, want 1", len(msgs))
	}
	data := string(msgs[0].Data)
	for i := 0; i < len(data); i++ {
		if data[i] == '\r' && (i+1 == len(data) || data[i+1] != '\n') || data[i] == '\n' && (i == 0 || data[i-1] != '\r') {
			t.Fatalf("bare CR or LF at %d in %q", i, data)
		}
	}
	if !strings.Contains(data, "\r\nline\r\n.\r\nMAIL FROM:<x@y>\r\n") {
		t.Errorf("the lone CRs did not become line ends (the dot line stuffed on the wire, un-stuffed by the server): %q", data)
	}
}

// TestLoneCR: a lone CR is a line end (SPEC §3) in -bm, -bs and -bd: CRLF
// on the wire and the next line dot-stuffed, so "<CR>.<CR>" never ends
// the data early; in the header block it ends a field too, so a "Bcc:"
// after one is removed like any Bcc.
func TestLoneCR(t *testing.T) {
	t.Run("-bm", func(t *testing.T) {
		h := newHarness(t, smtptest.Options{}, "", "")
		res := h.run([]string{"sendmail", "-i", "a@example.com"}, []byte("Subject: s\n\n"+smuggle+"\nend\n"), stdinPipe)
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
		}
		checkNoBareCR(t, h.srv.Messages())
	})
	t.Run("-bm header", func(t *testing.T) {
		h := newHarness(t, smtptest.Options{}, "", "")
		res := h.run([]string{"sendmail", "-i", "-t"}, []byte("To: a@example.com\rBcc: hidden@example.com\rSubject: s\r\rbody\r"), stdinPipe)
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
		}
		msgs := h.srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		m := msgs[0]
		if got := strings.Join(m.To, ","); got != "a@example.com,hidden@example.com" {
			t.Errorf("recipients %s, want both To: and Bcc: (fields after lone CRs)", got)
		}
		if strings.Contains(string(m.Data), "hidden") || !strings.Contains(string(m.Data), "\r\nSubject: s\r\n") ||
			!strings.HasSuffix(string(m.Data), "\r\n\r\nbody\r\n") {
			t.Errorf("header block on the wire: %q", m.Data)
		}
	})
	t.Run("-bs", func(t *testing.T) {
		h := newHarness(t, smtptest.Options{}, "", "")
		in := "HELO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nSubject: s\r\n\r\n" + smuggle + "\r\n.\r\nQUIT\r\n"
		res := h.run([]string{"sendmail", "-bs"}, []byte(in), stdinPipe)
		if res.code != 0 || !strings.Contains(res.stdout, "250 2.0.0 OK: queued") {
			t.Fatalf("exit %d, stderr %q, dialogue:\n%s", res.code, res.stderr, res.stdout)
		}
		checkNoBareCR(t, h.srv.Messages())
	})
	t.Run("-bd", func(t *testing.T) {
		h := newHarness(t, smtptest.Options{}, "", "")
		d := clStartDaemon(t, h)
		c := clDial(t, d.addr)
		c.startData("app@example.com", "a@example.com")
		c.cmd("Subject: s\r\n\r\n"+smuggle+"\r\n.", "250")
		c.cmd("QUIT", "221")
		d.stop()
		checkNoBareCR(t, h.srv.Messages())
	})
}

// TestSizeAsTransmitted: SIZE= declares the message as it goes on the
// wire, CRLF line ends and no dot-stuffing (RFC 1870 §3), so a message
// read with LF ends that is one octet over the server's limit on the wire
// is refused before DATA, and one right at the limit goes with SIZE=
// equal to what the server counts. The server is scripted: go-smtp's own
// check refuses a message of exactly its limit.
func TestSizeAsTransmitted(t *testing.T) {
	const limit = 2000
	// No header relaymail adds, so the wire size is known: every LF
	// becomes CRLF and nothing else changes.
	head := "From: app@example.com\nTo: a@example.com\nDate: Mon, 2 Jan 2006 15:04:05 +0000\nMessage-ID: <size@test>\nSubject: size\n\n"
	message := func(wire int) string {
		msg := head + ".dot line\n" // a stuffed dot is not counted
		for wireLen(msg) < wire-13 {
			msg += "0123456789\n"
		}
		for wireLen(msg) < wire-2 {
			msg += "x"
		}
		msg += "\n"
		if wireLen(msg) != wire {
			t.Fatalf("built %d octets on the wire, want %d", wireLen(msg), wire)
		}
		return msg
	}
	tests := []struct {
		name     string
		wire     int
		wantCode int
		wantErr  string
	}{
		{"at the limit", limit, 0, ""},
		{"one over", limit + 1, 69, `larger than the server's limit of 2000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var mail []string
			var data []string
			addr := smtptest.StartRaw(t, func(c net.Conn) {
				rc := smtptest.NewRawConn(c)
				rc.WriteLine("220 raw")
				for {
					line, err := rc.ReadLine()
					if err != nil {
						return
					}
					cmd := strings.ToUpper(line)
					switch {
					case strings.HasPrefix(cmd, "EHLO"):
						rc.WriteLine(fmt.Sprintf("250-raw\r\n250 SIZE %d", limit))
					case strings.HasPrefix(cmd, "MAIL"):
						mu.Lock()
						mail = append(mail, line)
						mu.Unlock()
						rc.WriteLine("250 ok")
					case strings.HasPrefix(cmd, "DATA"):
						rc.WriteLine("354 go on")
						d, err := rc.ReadData()
						if err != nil {
							return
						}
						mu.Lock()
						data = append(data, d)
						mu.Unlock()
						rc.WriteLine("250 taken")
					case strings.HasPrefix(cmd, "QUIT"):
						rc.WriteLine("221 bye")
						return
					default:
						rc.WriteLine("250 ok")
					}
				}
			})
			host, port, _ := net.SplitHostPort(addr)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "r.toml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("hostname = \"relaymail.test\"\ndomain = \"example.com\"\nlog = \"none\"\n[smarthost]\nhost = %q\nport = %s\ntls = \"none\"\ntimeout = \"5s\"\n[queue]\ndir = %q\n", host, port, filepath.Join(dir, "spool"))), 0o644)
			in := message(tt.wire)
			if len(in) > limit {
				t.Fatalf("input of %d octets: the test needs one that fits as read", len(in))
			}
			res := runBinary(t, []string{"sendmail", "-i", "-f", "app@example.com", "a@example.com"}, []byte(in), stdinPipe, nil, "RELAYMAIL_CONFIG="+cfg)
			if res.code != tt.wantCode || !regexp.MustCompile(tt.wantErr).MatchString(res.stderr) || (tt.wantErr == "") != (res.stderr == "") {
				t.Fatalf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, tt.wantCode, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantCode != 0 {
				if len(mail)+len(data) != 0 {
					t.Errorf("a message over the limit was offered: %q", mail)
				}
				return
			}
			if len(mail) != 1 || len(data) != 1 {
				t.Fatalf("MAIL %q, %d messages", mail, len(data))
			}
			unstuffed := strings.ReplaceAll("\r\n"+data[0], "\r\n..", "\r\n.")[2:]
			if want := fmt.Sprintf("MAIL FROM:<app@example.com> SIZE=%d", tt.wire); mail[0] != want || len(unstuffed) != tt.wire {
				t.Errorf("%s with %d octets, want %s", mail[0], len(unstuffed), want)
			}
		})
	}
}

// wireLen is the RFC 1870 size of msg, which has LF line ends only.
func wireLen(msg string) int { return len(msg) + strings.Count(msg, "\n") }

// TestDashDash: after "--" every operand is a recipient, even one that
// starts with "-"; before it such an operand is refused alone (SPEC §2).
func TestDashDash(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
		wantTo   []string
	}{
		{"operand with a dash after --", []string{"-i", "--", "-list@example.com", "b@example.com"}, 0, "",
			[]string{"-list@example.com", "b@example.com"}},
		{"-- after the first recipient", []string{"-i", "a@example.com", "-odq", "--", "-list@example.com"}, 67, `"-odq": an option after the first recipient`,
			[]string{"a@example.com", "-list@example.com"}},
		{"no --: refused alone", []string{"-i", "a@example.com", "-list@example.com"}, 67, `"-list@example.com": an option after the first recipient`,
			[]string{"a@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, smtptest.Options{}, "", "")
			res := h.run(append([]string{"sendmail"}, tt.args...), []byte(simpleMail), stdinPipe)
			if res.code != tt.wantCode || !regexp.MustCompile(tt.wantErr).MatchString(res.stderr) || (tt.wantErr == "") != (res.stderr == "") {
				t.Fatalf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, tt.wantCode, tt.wantErr)
			}
			msgs := h.srv.Messages()
			if len(msgs) != 1 || strings.Join(msgs[0].To, " ") != strings.Join(tt.wantTo, " ") {
				t.Fatalf("smarthost got %v, want one message to %v", received(h.srv), tt.wantTo)
			}
		})
	}
}

// TestUncarriableAddress: an address no RCPT TO can carry (not UTF-8, an
// angle bracket in a quoted local part, a path over 256 octets) is
// refused at intake alone, named on stderr (67), and the others get the
// message; -t header recipients too; -bs answers it at RCPT; a sender
// the wire cannot carry is a usage error (64).
func TestUncarriableAddress(t *testing.T) {
	long := strings.Repeat("x", 10000) + "@example.com"
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{"angle brackets", []string{"-i", "good@example.com", `"a<b>c"@example.com`}, simpleMail, 67, `"\\"a<b>c\\"@example.com": address the wire cannot carry: an angle bracket`},
		{"not UTF-8", []string{"-i", "good@example.com", "j\xf6rg@example.com"}, simpleMail, 67, `not valid UTF-8`},
		{"10 kB address", []string{"-i", "good@example.com", long}, simpleMail, 67, `a path of 10014 octets`},
		{"-t header", []string{"-i", "-t"}, "To: good@example.com, \"a<b>c\"@example.com\nSubject: s\n\nhi\n", 67, `an angle bracket`},
		{"sender", []string{"-i", "-f", `"a<b>"@example.com`, "good@example.com"}, simpleMail, 64, `-f .*an angle bracket`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, smtptest.Options{SMTPUTF8: true}, "", "")
			res := h.run(append([]string{"sendmail"}, tt.args...), []byte(tt.stdin), stdinPipe)
			if res.code != tt.wantCode || !regexp.MustCompile(tt.wantErr).MatchString(res.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, tt.wantCode, tt.wantErr)
			}
			if len(res.stderr) > 500 || strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("stderr is not one short line: %d octets", len(res.stderr))
			}
			got := received(h.srv)
			if tt.wantCode == 64 {
				if len(got) != 0 {
					t.Errorf("sent %v with a bad sender", got)
				}
				return
			}
			if strings.Join(got, " ") != "good@example.com" {
				t.Errorf("smarthost got %v, want the message for good@example.com alone", got)
			}
		})
	}
	t.Run("-bs", func(t *testing.T) {
		h := newHarness(t, smtptest.Options{SMTPUTF8: true}, "", "")
		in := "EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<good@example.com>\r\nRCPT TO:<\"a<b>c\"@example.com>\r\n" +
			"RCPT TO:<j\xf6rg@example.com>\r\nDATA\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n"
		res := h.run([]string{"sendmail", "-bs"}, []byte(in), stdinPipe)
		replies := regexp.MustCompile(`(?m)^\d{3} `).FindAllString(res.stdout, -1)
		want := "220 ,250 ,250 ,250 ,553 ,501 ,354 ,250 ,221 " // smtpd itself answers non-UTF-8 as syntax
		if strings.Join(replies, ",") != want {
			t.Errorf("replies %q, want %q:\n%s", strings.Join(replies, ","), want, res.stdout)
		}
		if got := received(h.srv); strings.Join(got, " ") != "good@example.com" {
			t.Errorf("smarthost got %v, want the message for good@example.com alone", got)
		}
	})
}

// TestLongHeaderLine: a header line over 998 octets is folded as
// continuation lines (at the last white space before the limit, else at
// the limit), so the header block arrives whole and each field unfolds
// to its value; a long body line is still broken as before.
func TestLongHeaderLine(t *testing.T) {
	subject := strings.TrimSpace(strings.Repeat("word ", 400))
	solid := strings.Repeat("x", 2500)
	body := strings.Repeat("b", 1500)
	h := newHarness(t, smtptest.Options{}, "", "")
	in := "Subject: " + subject + "\nX-Data: " + solid + "\nTo: a@example.com\n\n" + body + "\n"
	res := h.run([]string{"sendmail", "-i", "-t"}, []byte(in), stdinPipe)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	msgs := h.srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	head, gotBody, ok := strings.Cut(string(msgs[0].Data), "\r\n\r\n")
	if !ok {
		t.Fatalf("no header block end in %q", msgs[0].Data)
	}
	fields := map[string]string{}
	var name string
	for _, l := range strings.Split(head, "\r\n") {
		if len(l) > 998 {
			t.Errorf("header line of %d octets", len(l))
		}
		if l != "" && (l[0] == ' ' || l[0] == '\t') && name != "" {
			fields[name] += l // unfold: drop the CRLF only
			continue
		}
		n, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("header line without a colon (a field was cut): %.60q", l)
		}
		name = n
		fields[name] = v
	}
	if got := strings.TrimSpace(fields["Subject"]); got != subject {
		t.Errorf("Subject unfolds to %d octets, want the original %d", len(got), len(subject))
	}
	if got := strings.ReplaceAll(fields["X-Data"], " ", ""); got != solid {
		t.Errorf("X-Data unfolds to %d octets (spaces removed), want the original %d", len(got), len(solid))
	}
	if want := body[:998] + "\r\n" + body[998:] + "\r\n"; gotBody != want {
		t.Errorf("body line not broken at 998 as before: %d octets", len(gotBody))
	}
}

// TestMailqLayout: mailq lists only the messages waiting, in Postfix's
// layout with the last lines monitoring parses; a failed message is not
// counted there but listed by mailq --failed, with how to requeue or
// delete it and no next try.
func TestMailqLayout(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	h.srv.SetDataErr(smtptest.Reply(554, "5.7.1", "spam"))
	if res := h.run([]string{"sendmail", "-i", "failed@example.com"}, []byte(simpleMail), stdinPipe); res.code != 69 {
		t.Fatalf("exit %d, want 69 (kept in failed/); stderr %q", res.code, res.stderr)
	}
	failedID := regexp.MustCompile(`^\w+`).FindString(strings.Join(listDir(t, h, "failed/env"), ""))

	mailq := h.run([]string{"mailq"}, nil, stdinNone)
	if mailq.code != 0 || mailq.stdout != "Mail queue is empty\n" {
		t.Errorf("with only a failed message, mailq printed (exit %d):\n%s", mailq.code, mailq.stdout)
	}
	failed := h.run([]string{"mailq", "--failed"}, nil, stdinNone)
	if failed.code != 0 || !strings.Contains(failed.stdout, failedID) || !strings.Contains(failed.stdout, "--requeue ID") ||
		!strings.Contains(failed.stdout, "--delete ID") || strings.Contains(failed.stdout, "next try") ||
		!strings.Contains(failed.stdout, "failed@example.com") {
		t.Errorf("mailq --failed (exit %d):\n%s", failed.code, failed.stdout)
	}

	h.srv.SetGreetingErr(smtptest.Reply(421, "4.3.2", "busy"))
	if res := h.run([]string{"sendmail", "-i", "waiting@example.com"}, []byte(simpleMail), stdinPipe); res.code != 0 {
		t.Fatalf("exit %d, want 0 (queued); stderr %q", res.code, res.stderr)
	}
	for _, argv := range [][]string{{"mailq"}, {"sendmail", "-bp"}} {
		out := h.run(argv, nil, stdinNone).stdout
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) < 5 {
			t.Fatalf("%v:\n%s", argv, out)
		}
		if !regexp.MustCompile(`^----Queue ID-----\s+--Size-- ---Arrival Time---- --Sender/Recipient------$`).MatchString(lines[0]) ||
			!regexp.MustCompile(`^\w{17,} +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d root@example\.com$`).MatchString(lines[1]) ||
			!regexp.MustCompile(`^ +\(.*421 4\.3\.2 busy.*\)$`).MatchString(lines[2]) ||
			!regexp.MustCompile(`^ {47,}waiting@example\.com$`).MatchString(lines[3]) ||
			lines[len(lines)-2] != "" || lines[len(lines)-1] != "-- 0 Kbytes in 1 Request." ||
			strings.Contains(out, failedID) {
			t.Errorf("%v is not Postfix's layout of the one waiting message:\n%s", argv, out)
		}
	}
}

// listDir names the entries of the spool's sub directory.
func listDir(t *testing.T, h *harness, sub string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(h.dir, "spool", sub))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
