package sendmail

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"relaymail/config"
	"relaymail/relay"
)

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`hostname = "relay.example.com"
domain = "example.com"
`+extra+`
[smarthost]
host = "smtp.example.com"
[aliases]
root = ["admin@example.com", "ops"]
ops = "ops@example.net"
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestAcceptEnvelope(t *testing.T) {
	caller := Caller{UID: 1001, Login: "alice", Name: "Alice Liddell", Home: "/home/alice"}
	tests := []struct {
		name    string
		extra   string // config keys
		argv    []string
		stdin   string
		sender  string
		rcpts   []string
		invalid int
		errIs   error
		fromHdr string // the From: header that goes out
	}{
		{name: "sender from the caller", argv: []string{"sendmail", "bob@example.org"},
			stdin: "Subject: x\n\nhi\n", sender: "alice@example.com", rcpts: []string{"bob@example.org"},
			fromHdr: "From: Alice Liddell <alice@example.com>"},
		{name: "configured from", extra: `from = "robot@example.com"`, argv: []string{"sendmail", "bob@example.org"},
			stdin: "\nhi\n", sender: "robot@example.com", rcpts: []string{"bob@example.org"}},
		{name: "-f wins with from_override", extra: `from = "robot@example.com"`, argv: []string{"sendmail", "-f", "App <app@example.com>", "bob@example.org"},
			stdin: "\nhi\n", sender: "app@example.com", rcpts: []string{"bob@example.org"}},
		{name: "-f ignored without from_override", extra: "from = \"robot@example.com\"\nfrom_override = false", argv: []string{"sendmail", "-fapp@example.com", "bob@example.org"},
			stdin: "\nhi\n", sender: "robot@example.com", rcpts: []string{"bob@example.org"}},
		{name: "null sender", argv: []string{"sendmail", "-f", "<>", "bob@example.org"},
			stdin: "\nhi\n", sender: "", rcpts: []string{"bob@example.org"}, fromHdr: "From: Alice Liddell <MAILER-DAEMON@example.com>"},
		{name: "bare -f is qualified", argv: []string{"sendmail", "-f", "cron", "bob@example.org"},
			stdin: "\nhi\n", sender: "cron@example.com", rcpts: []string{"bob@example.org"}},
		{name: "-F names the added From", argv: []string{"sendmail", "-F", "Cron Daemon", "bob@example.org"},
			stdin: "\nhi\n", sender: "alice@example.com", rcpts: []string{"bob@example.org"}, fromHdr: `From: Cron Daemon <alice@example.com>`},
		{name: "aliases, recursion and qualification", argv: []string{"sendmail", "root", "carol"},
			stdin: "\nhi\n", sender: "alice@example.com", rcpts: []string{"admin@example.com", "ops@example.net", "carol@example.com"}},
		{name: "cron's comma list in one argument", argv: []string{"sendmail", "-i", "a@x.org,b@y.org"},
			stdin: "\nhi\n", sender: "alice@example.com", rcpts: []string{"a@x.org", "b@y.org"}},
		{name: "-t joins headers and operands, de-duplicated", argv: []string{"sendmail", "-t", "-i", "A@X.org", "root"},
			stdin: "To: a@x.org, Bob <b@y.org>\nCc: c@z.org\nBcc: root, hidden@z.org\n\nhi\n", sender: "alice@example.com",
			rcpts: []string{"A@X.org", "admin@example.com", "ops@example.net", "b@y.org", "c@z.org", "hidden@z.org"}},
		{name: "options after the first recipient are refused, not mailed", argv: []string{"sendmail", "[-i]", "-f", "x@example.com", "--", "bob@example.org"},
			stdin: "\nhi\n", sender: "alice@example.com", rcpts: []string{"x@example.com", "bob@example.org"}, invalid: 2},
		{name: "after -- an operand starting with - is an address", argv: []string{"sendmail", "-i", "--", "-list@example.com", "b@example.com"},
			stdin: "\nhi\n", sender: "alice@example.com", rcpts: []string{"-list@example.com", "b@example.com"}},
		{name: "-- after the first recipient", argv: []string{"sendmail", "a@example.com", "-odq", "--", "-list@example.com"},
			stdin: "\nhi\n", sender: "alice@example.com", rcpts: []string{"a@example.com", "-list@example.com"}, invalid: 1},
		{name: "no recipients", argv: []string{"sendmail", "-i"}, stdin: "Subject: x\n\nhi\n", errIs: ErrUsage},
		{name: "-t without any address header", argv: []string{"sendmail", "-t"}, stdin: "Subject: x\n\nhi\n", errIs: ErrUsage},
		{name: "unparsable To with -t", argv: []string{"sendmail", "-t"}, stdin: "To: <<<\n\nhi\n", errIs: ErrData},
		{name: "bad -f", argv: []string{"sendmail", "-f", "a@b@c", "bob@example.org"}, stdin: "\nhi\n", errIs: ErrUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseArgs(tt.argv)
			if err != nil {
				t.Fatal(err)
			}
			a := &Acceptor{Config: testConfig(t, tt.extra), Caller: caller,
				Now: func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) }}
			stdin := strings.NewReader(tt.stdin)
			m, err := a.Accept(stdin, o)
			if stdin.Len() != 0 {
				t.Errorf("%d bytes of stdin left unread", stdin.Len())
			}
			if tt.errIs != nil {
				if !errors.Is(err, tt.errIs) {
					t.Fatalf("err = %v, want %v", err, tt.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.From != tt.sender {
				t.Errorf("sender %q, want %q", m.From, tt.sender)
			}
			if strings.Join(m.To, " ") != strings.Join(tt.rcpts, " ") {
				t.Errorf("recipients %q, want %q", m.To, tt.rcpts)
			}
			if len(m.Invalid) != tt.invalid {
				t.Errorf("invalid %q, want %d of them", m.Invalid, tt.invalid)
			}
			content, _ := io.ReadAll(io.NewSectionReader(m.Content(), 0, m.Size()))
			if strings.Contains(strings.ToLower(string(content)), "\nbcc:") {
				t.Errorf("Bcc went out:\n%s", content)
			}
			if tt.fromHdr != "" && !strings.Contains(string(content), tt.fromHdr+"\n") {
				t.Errorf("content lacks %q:\n%s", tt.fromHdr, content)
			}
			if !strings.HasSuffix(string(content), "\nhi\n") {
				t.Errorf("body lost:\n%q", content)
			}
		})
	}
}

func TestAcceptSMTP(t *testing.T) {
	a := &Acceptor{Config: testConfig(t, ""), Caller: Caller{Login: "www-data"}}
	data := "From: App <app@example.com>\r\nTo: root\r\nBcc: x@y.org\r\n\r\n.line that was stuffed once\r\n"
	m, err := a.AcceptSMTP(strings.NewReader(data), &Options{}, "app@example.com", []string{"root", "x@y.org"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.From != "app@example.com" || strings.Join(m.To, ",") != "admin@example.com,ops@example.net,x@y.org" {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	content, _ := io.ReadAll(io.NewSectionReader(m.Content(), 0, m.Size()))
	for _, want := range []string{"To: root@example.com\r\n", "\r\n.line that was stuffed once\r\n"} {
		if !strings.Contains(string(content), want) {
			t.Errorf("content lacks %q:\n%q", want, content)
		}
	}
	if strings.Contains(string(content), "Bcc") {
		t.Errorf("Bcc went out")
	}
	if _, err := a.AcceptSMTP(strings.NewReader(data), &Options{}, "", nil); !errors.Is(err, ErrUsage) {
		t.Errorf("no recipients: err = %v", err)
	}
}

// TestAcceptWireSize: the intake counts the wire size (SIZE=) while it
// spools the body, and it is what relay.WireSize gives for the message as
// it will be sent (rewritten header block included), so relay.Deliver
// need not read the body again to measure it. Bodies past the memory
// limit spill to a file and are counted the same.
func TestAcceptWireSize(t *testing.T) {
	long := strings.Repeat("y", 3000)
	tests := []struct {
		name  string
		argv  []string
		stdin string
		known bool // the size is counted (else 0: Deliver measures it)
	}{
		{"LF", []string{"sendmail", "b@example.org"}, "Subject: x\n\nhi\n.dot\n", true},
		{"CRLF and stuffed dots", []string{"sendmail", "b@example.org"}, "Subject: x\r\n\r\n..a\r\n.\r\nafter\r\n", true},
		{"-i keeps the lone dot", []string{"sendmail", "-i", "b@example.org"}, "Subject: x\n\n.\n..\nend", true},
		{"lone CRs and long lines", []string{"sendmail", "b@example.org"}, "Subject: x\n\na\rb\r\r" + long + "\n." + long, true},
		{"no separator", []string{"sendmail", "b@example.org"}, "Subject: x\nnot a header line\n", true},
		{"header only", []string{"sendmail", "b@example.org"}, "Subject: x", true},
		{"-t drops Bcc", []string{"sendmail", "-t"}, "To: a@x.org\nBcc: c@z.org\n\nhi\n", true},
		{"spilled", []string{"sendmail", "-i", "b@example.org"}, "Subject: x\n\n" + strings.Repeat(".l\n"+long+"\r\n", DefaultSpoolMemory/3000+10), true},
		{"separator a lone CR", []string{"sendmail", "b@example.org"}, "Subject: x\n\rbody\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseArgs(tt.argv)
			if err != nil {
				t.Fatal(err)
			}
			a := &Acceptor{Config: testConfig(t, ""), Caller: Caller{Login: "alice"}}
			m, err := a.Accept(strings.NewReader(tt.stdin), o)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if tt.name == "spilled" && m.Spool().Spilled() == nil {
				t.Fatal("the body did not spill")
			}
			want, err := relay.WireSize(io.NewSectionReader(m.Content(), 0, m.Size()))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.known {
				want = 0
			}
			if m.Envelope.Size != want {
				t.Errorf("Envelope.Size = %d, want %d", m.Envelope.Size, want)
			}
		})
	}
}
