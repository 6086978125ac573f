package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// proxyStep is one thing a -bs client sends and the regexp the reply it
// gets must match; a DATA body is sent whole, with its final dot.
type proxyStep struct{ send, want string }

// runSteps runs relaymail -bs with the steps written at once (as a
// pipelining client would) and checks each reply in order.
func runSteps(t *testing.T, h *harness, steps []proxyStep) result {
	t.Helper()
	var in strings.Builder
	wants := []string{`^220 `}
	for _, s := range steps {
		in.WriteString(s.send)
		if s.want != "" {
			wants = append(wants, s.want)
		}
	}
	res := h.run([]string{"/usr/sbin/sendmail", "-bs"}, []byte(in.String()), stdinPipe)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	got := strings.Split(strings.TrimSuffix(res.stdout, "\r\n"), "\r\n")
	if len(got) != len(wants) {
		t.Fatalf("%d replies, want %d:\n%s", len(got), len(wants), res.stdout)
	}
	for i, w := range wants {
		if !regexp.MustCompile(w).MatchString(got[i]) {
			t.Errorf("reply %d = %q, want %q\n%s", i, got[i], w, res.stdout)
		}
	}
	return res
}

// message1 is one transaction to rcpts with the reply wanted for each RCPT
// and for the final dot.
func message1(rcpts []string, rcptWants []string, dotWant string) []proxyStep {
	steps := []proxyStep{{"MAIL FROM:<app@example.com>\r\n", `^250 `}}
	for i, r := range rcpts {
		steps = append(steps, proxyStep{"RCPT TO:<" + r + ">\r\n", rcptWants[i]})
	}
	return append(steps, proxyStep{"DATA\r\n", `^354 `},
		proxyStep{"Subject: live\r\n\r\nbody\r\n.\r\n", dotWant})
}

// TestProxyBS: in -bs the smarthost's verdict on each recipient is the
// reply to that RCPT (code, enhanced code and text), its verdict on the
// message the reply to the final dot, and a message the smarthost cannot
// take after its recipients were accepted is queued (250).
func TestProxyBS(t *testing.T) {
	ok := `^250 2\.1\.5 `
	tests := []struct {
		name      string
		down      bool
		extra     string // appended to the config, after [aliases]
		inject    func(*smtptest.Server)
		rcpts     []string
		rcptWants []string
		dotWant   string
		delivered []string // recipients the smarthost got a message for
		queued    int
		failed    int
		log       string // a log line that must be there
	}{
		{name: "550 at RCPT: the same reply, the others get the message", inject: func(s *smtptest.Server) {
			s.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no such user here"))
		}, rcpts: []string{"good@example.com", "bad@example.com", "root"},
			rcptWants: []string{ok, `^550 5\.1\.1 <bad@example\.com>: no such user here$`, ok},
			dotWant:   `^250 2\.0\.0 OK: queued$`, // go-smtp's own
			delivered: []string{"good@example.com", "admin@example.com"}},
		{name: "an alias with one target refused: 250, the smarthost's 250 to the dot, the sender told",
			extra: `team = ["good@example.com", "gone@example.com"]`, inject: func(s *smtptest.Server) {
				s.SetRcptErr("gone@example.com", smtptest.Reply(550, "5.1.1", "no such user here"))
			}, rcpts: []string{"team"}, rcptWants: []string{ok},
			dotWant:   `^250 2\.0\.0 OK: queued; some recipients refused, the sender is told$`,
			delivered: []string{"good@example.com", "app@example.com"}},
		{name: "452 at RCPT comes back as 452", inject: func(s *smtptest.Server) {
			s.SetRcptErr("full@example.com", smtptest.Reply(452, "4.2.2", "mailbox full"))
		}, rcpts: []string{"full@example.com", "good@example.com"},
			rcptWants: []string{`^452 4\.2\.2 <full@example\.com>: mailbox full$`, ok},
			dotWant:   `^250 2\.0\.0 OK: queued$`, delivered: []string{"good@example.com"}},
		{name: "554 at end of data comes back as 554, nothing kept", inject: func(s *smtptest.Server) {
			s.SetDataErr(smtptest.Reply(554, "5.7.1", "looks like spam"))
		}, rcpts: []string{"good@example.com"}, rcptWants: []string{ok},
			dotWant: `^554 5\.7\.1 looks like spam$`},
		{name: "the smarthost drops the connection mid-DATA: 250 and queued", inject: func(s *smtptest.Server) {
			s.DropMidData()
		}, rcpts: []string{"good@example.com"}, rcptWants: []string{ok},
			dotWant: `^250 2\.0\.0 OK: queued as \w+$`, queued: 1},
		{name: "smarthost down: 250 and queued, the log says so", down: true,
			rcpts: []string{"good@example.com", "other@example.com"}, rcptWants: []string{ok, ok},
			dotWant: `^250 2\.0\.0 OK: queued as \w+$`, queued: 1,
			log: `smarthost is unavailable; the message will be accepted locally and queued`},
		{name: "4xx at MAIL: 250 and queued", inject: func(s *smtptest.Server) {
			s.SetMailErr(smtptest.Reply(451, "4.3.0", "try later"))
		}, rcpts: []string{"good@example.com"}, rcptWants: []string{ok},
			dotWant: `^250 2\.0\.0 OK: queued as \w+$`, queued: 1,
			log: `smarthost did not take MAIL; the message will be accepted locally and queued`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, up := downHarness(t, tt.extra)
			if !tt.down {
				up()
			}
			if tt.inject != nil {
				tt.inject(h.srv)
			}
			steps := append([]proxyStep{{"EHLO app.test\r\n", `^250-`}, {"", `^250-PIPELINING`}, {"", `^250-8BITMIME`},
				{"", `^250-SIZE`}, {"", `^250-ENHANCEDSTATUSCODES`}, {"", `^250 SMTPUTF8`}},
				message1(tt.rcpts, tt.rcptWants, tt.dotWant)...)
			runSteps(t, h, append(steps, proxyStep{"QUIT\r\n", `^221 `}))
			var got []string
			for _, m := range h.srv.Messages() {
				got = append(got, m.To...)
			}
			if !slices.Equal(got, tt.delivered) {
				t.Errorf("delivered to %v, want %v", got, tt.delivered)
			}
			if n := h.spoolCount(""); n != tt.queued {
				t.Errorf("%d queued, want %d", n, tt.queued)
			}
			if n := h.spoolCount("failed"); n != tt.failed {
				t.Errorf("%d in failed/, want %d", n, tt.failed)
			}
			if tt.log != "" {
				data, _ := os.ReadFile(h.log)
				if !strings.Contains(string(data), tt.log) {
					t.Errorf("log lacks %q:\n%s", tt.log, data)
				}
			}
		})
	}
}

// TestProxyOneSession: three messages in one -bs session (SwiftMailer's
// pattern) use one smarthost connection; a transaction the client resets
// and one it leaves in the middle of its data deliver nothing and queue
// nothing.
func TestProxyOneSession(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	var steps []proxyStep
	steps = append(steps, proxyStep{"HELO app.test\r\n", `^250 `})
	for i := range 3 {
		steps = append(steps, message1([]string{fmt.Sprintf("r%d@example.com", i)}, []string{`^250 `}, `^250 2\.0\.0 `)...)
	}
	steps = append(steps, proxyStep{"MAIL FROM:<app@example.com>\r\n", `^250 `},
		proxyStep{"RCPT TO:<reset@example.com>\r\n", `^250 `}, proxyStep{"RSET\r\n", `^250 `})
	runSteps(t, h, append(steps, proxyStep{"QUIT\r\n", `^221 `}))
	msgs := h.srv.Messages()
	if len(msgs) != 3 {
		t.Fatalf("smarthost got %d messages, want 3", len(msgs))
	}
	if n := h.srv.Sessions(); n != 1 {
		t.Errorf("%d smarthost connections for 3 messages, want 1", n)
	}

	// The client's input ends in the middle of the data.
	res := h.run([]string{"/usr/sbin/sendmail", "-bs"},
		[]byte("HELO app.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<cut@example.com>\r\nDATA\r\nSubject: cut\r\n\r\nhalf"), stdinPipe)
	if !strings.Contains(res.stdout, "354 ") {
		t.Fatalf("no 354:\n%s", res.stdout)
	}
	if n := len(h.srv.Messages()); n != 3 {
		t.Errorf("a message cut off mid-data was delivered (%d messages)", n)
	}
	if n := h.spoolCount(""); n != 0 {
		t.Errorf("%d queued, want 0", n)
	}
}

// TestProxyDaemon: relaymail -bd relays the smarthost's refusal of one
// recipient at RCPT time (net/smtp sees the 550 with its text) and the
// others get the message.
func TestProxyDaemon(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	h.srv.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no such user here"))
	d := clStartDaemon(t, h)
	defer d.stop()
	c, err := smtp.Dial(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("app@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("good@example.com"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("bad@example.com")
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 || te.Msg != "5.1.1 <bad@example.com>: no such user here" {
		t.Fatalf("RCPT bad: %v, want the smarthost's 550", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "Subject: via -bd\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("end of data: %v", err)
	}
	c.Quit()
	m := h.srv.WaitMessages(t, 1, 10*time.Second)[0]
	if strings.Join(m.To, ",") != "good@example.com" {
		t.Errorf("delivered to %v", m.To)
	}
}

// TestProxySmtplib: Python's smtplib against -bd gets the smarthost's 550
// for the refused recipient only (returned by sendmail, then raised as
// SMTPRecipientsRefused when it is the only one); the other gets the
// message.
func TestProxySmtplib(t *testing.T) {
	python := clLookTool(t, "python3", "python3")
	h := newHarness(t, smtptest.Options{}, "", "")
	h.srv.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no such user here"))
	d := clStartDaemon(t, h)
	defer d.stop()
	host, port, _ := strings.Cut(d.addr, ":")
	out := clRunTool(t, nil, python, filepath.Join(clScripts, "smtplib_refused.py"), host, port)
	var res struct {
		Refused map[string][]any `json:"refused"`
		Raised  map[string][]any `json:"raised"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("smtplib_refused.py printed %q: %v", out, err)
	}
	want := map[string][]any{"bad@example.com": {float64(550), "5.1.1 <bad@example.com>: no such user here"}}
	if !reflect.DeepEqual(res.Refused, want) || !reflect.DeepEqual(res.Raised, want) {
		t.Errorf("refused %v, raised %v; want %v for both", res.Refused, res.Raised, want)
	}
	m := h.srv.WaitMessages(t, 1, 10*time.Second)
	if len(m) != 1 || strings.Join(m[0].To, ",") != "good@example.com" {
		t.Errorf("smarthost got %d messages, the first to %v", len(m), m[0].To)
	}
}

// TestProxySwaks: swaks driving -bs shows the smarthost's own reply to a
// refused recipient.
func TestProxySwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks is not installed (apt-get install swaks)")
	}
	h := newHarness(t, smtptest.Options{}, "", "")
	h.srv.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.7.1", "relaying denied for this one"))
	cmd := exec.Command(swaks, "--pipe", binary+" -bs", "--from", "app@example.com", "--to", "bad@example.com")
	cmd.Env = []string{"PATH=/usr/bin:/bin", noExitSleep, "RELAYMAIL_CONFIG=" + h.config}
	out, _ := cmd.CombinedOutput() // swaks exits non-zero for the refusal
	if !strings.Contains(string(out), "<** 550 5.7.1 <bad@example.com>: relaying denied for this one") {
		t.Errorf("swaks does not show the smarthost's 550:\n%s", out)
	}
}

// TestProxyUndeclared8Bit: an 8-bit body the client did not declare with
// BODY=8BITMIME reaches the smarthost under BODY=8BITMIME (the
// transaction is opened again before DATA), on the same connection.
func TestProxyUndeclared8Bit(t *testing.T) {
	h := newHarness(t, smtptest.Options{}, "", "")
	runSteps(t, h, []proxyStep{{"HELO app.test\r\n", `^250 `},
		{"MAIL FROM:<app@example.com>\r\n", `^250 `}, {"RCPT TO:<a@example.com>\r\n", `^250 `},
		{"DATA\r\n", `^354 `}, {"Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.\r\n", `^250 2\.0\.0 `},
		{"QUIT\r\n", `^221 `}})
	msgs := h.srv.Messages()
	if len(msgs) != 1 || msgs[0].MailOptions.Body != "8BITMIME" || strings.Join(msgs[0].To, ",") != "a@example.com" {
		t.Fatalf("smarthost got %d messages: %+v", len(msgs), msgs)
	}
	if n := h.srv.Sessions(); n != 1 {
		t.Errorf("%d smarthost connections, want 1", n)
	}
}

// TestProxyDotReply: a message the smarthost took live is answered with
// the smarthost's own reply to the final dot (code, enhanced code, its
// lines joined), cleaned of control characters so that the smarthost's
// text cannot forge a line of the client's dialogue; a message queued
// instead is answered with our 250 and its queue id.
func TestProxyDotReply(t *testing.T) {
	tests := []struct {
		name string
		dot  string // the smarthost's reply to the final dot
		want string // regexp for the client's
	}{
		{"one line", "250 2.6.0 Ok: queued as SMART1\r\n", `^250 2\.6\.0 Ok: queued as SMART1$`},
		{"several lines, joined", "250-2.0.0 Ok\r\n250 2.0.0 queued as SMART2\r\n", `^250 2\.0\.0 Ok queued as SMART2$`},
		{"control characters dropped", "250 2.0.0 queued\x1b[2J as\rSMART3\x07\r\n", `^250 2\.0\.0 queued\[2J asSMART3$`},
		{"no enhanced code: ours", "250 queued as SMART4\r\n", `^250 2\.0\.0 queued as SMART4$`},
		{"4xx: queued, our 250 and id", "451 4.3.0 try again\r\n", `^250 2\.0\.0 OK: queued as \w+$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &rawSMTP{ehlo: "250-mx.test\r\n250 PIPELINING\r\n", dot: tt.dot}
			h := rawHarness(t, srv.start(t), "", "")
			runSteps(t, h, []proxyStep{{"HELO app.test\r\n", `^250 `},
				{"MAIL FROM:<app@example.com>\r\n", `^250 `}, {"RCPT TO:<a@example.com>\r\n", `^250 `},
				{"DATA\r\n", `^354 `}, {"Subject: x\r\n\r\nhello\r\n.\r\n", tt.want},
				{"QUIT\r\n", `^221 `}})
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("%d smarthost connections, want 1", n)
			}
		})
	}
}

// TestProxyPipelinedRcpts: fifty RCPTs a client pipelines reach a
// smarthost that offers PIPELINING in one write (a round trip or so, not
// fifty), and the client's replies stay in the order of its commands,
// the smarthost's 550 for the one in the middle in its place.
func TestProxyPipelinedRcpts(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	var rcpts []string
	trips := 0 // RCPT lines the smarthost had to wait for: a round trip each
	addr := smtptest.StartRaw(t, func(c net.Conn) {
		rc := smtptest.NewRawConn(c)
		fmt.Fprint(rc, "220 mx.test ESMTP\r\n")
		for {
			waited := rc.Buffered() == 0
			line, err := rc.ReadLine()
			if err != nil {
				return
			}
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "EHLO":
				fmt.Fprint(rc, "250-mx.test\r\n250 PIPELINING\r\n")
			case "RCPT":
				mu.Lock()
				rcpts = append(rcpts, arg)
				if waited {
					trips++
				}
				mu.Unlock()
				if strings.Contains(arg, "<r25@") {
					fmt.Fprint(rc, "550 5.1.1 no such user\r\n")
				} else {
					fmt.Fprint(rc, "250 2.1.5 ok\r\n")
				}
			case "DATA":
				fmt.Fprint(rc, "354 go ahead\r\n")
				if _, err := rc.ReadData(); err != nil {
					return
				}
				fmt.Fprint(rc, "250 2.0.0 queued as S1\r\n")
			case "QUIT":
				fmt.Fprint(rc, "221 2.0.0 bye\r\n")
				return
			default:
				fmt.Fprint(rc, "250 2.0.0 ok\r\n")
			}
		}
	})
	h := rawHarness(t, addr, "", "")
	steps := []proxyStep{{"HELO app.test\r\n", `^250 `}, {"MAIL FROM:<app@example.com>\r\n", `^250 `}}
	var want []string
	for i := range n {
		w := `^250 2\.1\.5 `
		if i == 25 {
			w = `^550 5\.1\.1 <r25@example\.com>: no such user$`
		} else {
			want = append(want, fmt.Sprintf("TO:<r%d@example.com>", i))
		}
		steps = append(steps, proxyStep{fmt.Sprintf("RCPT TO:<r%d@example.com>\r\n", i), w})
	}
	steps = append(steps, proxyStep{"DATA\r\n", `^354 `}, proxyStep{"Subject: x\r\n\r\nhello\r\n.\r\n", `^250 2\.0\.0 queued as S1$`},
		proxyStep{"QUIT\r\n", `^221 `})
	runSteps(t, h, steps)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d RCPTs reached the smarthost in %d round trips", len(rcpts), trips)
	if got := slices.DeleteFunc(slices.Clone(rcpts), func(s string) bool { return strings.Contains(s, "<r25@") }); !slices.Equal(got, want) {
		t.Errorf("smarthost got RCPT %q, want %q (and r25)", rcpts, want)
	}
	if trips > 3 {
		t.Errorf("%d RCPTs took %d round trips to the smarthost, want 1 (3 at most)", len(rcpts), trips)
	}
}
